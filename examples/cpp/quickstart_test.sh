#!/usr/bin/env bash
# The quick start as a test: runs run_quickstart.sh and checks what README
# promises, exactly: the first saga calls the three actions and succeeds; the
# second has Charge answer ABORTED "insufficient balance", then dtmd
# compensates in reverse order (Refund, RestoreStock, CancelOrder), and the
# client's Submit returns ABORTED with the reason, the failing branch and its
# message. The first TCC tries both branches and dtmd confirms them in reverse
# order; the second fails at TryCharge and dtmd cancels both in reverse order.
# The msg places the order (branch 00, op msg) and dtmd then calls AddPoints.
#
# Usage: examples/cpp/quickstart_test.sh BUILD_DIR (ports as run_quickstart.sh)
set -euo pipefail

if [ $# -ne 1 ]; then
  echo "usage: $0 BUILD_DIR" >&2
  exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# The pipeline ends when busi_server's output has been written in full.
status=0
"$here/run_quickstart.sh" "$1" 2>&1 | tee "$log" || status=$?
failures=0
fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}
[ "$status" -eq 0 ] || fail "run_quickstart.sh exited $status"

# The gid of the transaction of mode $1 (saga, tcc, msg) that bought for $2.
gid_of() {
  sed -n "s/^$1 \([^ :]*\): [^ ]* buys 1 apple for $2\$/\1/p" "$log"
}
# What busi_server answered for gid $1, one "method branch op -> answer" line
# per call in arrival order, without its notes.
calls_of() {
  sed -n "s/^\[busi_server\] \(\/busi\.Busi\/[A-Za-z]*\) gid=$1 /\1 /p" "$log" |
    sed 's/ (.*)$//'
}
# Compares $2 (actual) with $3 (expected), naming them $1.
expect_equal() {
  if [ "$2" != "$3" ]; then
    fail "$1"
    diff <(echo "$3") <(echo "$2") >&2 || true
  fi
}

ok_gid=$(gid_of saga 30)
failing_gid=$(gid_of saga 1000)
[ -n "$ok_gid" ] || fail "no line for the saga of 30"
[ -n "$failing_gid" ] || fail "no line for the saga of 1000"

expect_equal "calls of the saga that succeeds" "$(calls_of "$ok_gid")" \
  "/busi.Busi/CreateOrder branch=01 op=action -> OK
/busi.Busi/DeductStock branch=02 op=action -> OK
/busi.Busi/Charge branch=03 op=action -> OK"
expect_equal "outcome of the saga that succeeds" \
  "$(grep "^saga $ok_gid: succeed\$" "$log" || true)" "saga $ok_gid: succeed"

expect_equal "calls of the saga that fails (compensations in reverse order)" \
  "$(calls_of "$failing_gid")" \
  "/busi.Busi/CreateOrder branch=01 op=action -> OK
/busi.Busi/DeductStock branch=02 op=action -> OK
/busi.Busi/Charge branch=03 op=action -> ABORTED \"insufficient balance\"
/busi.Busi/Refund branch=03 op=compensate -> OK
/busi.Busi/RestoreStock branch=02 op=compensate -> OK
/busi.Busi/CancelOrder branch=01 op=compensate -> OK"
expected_reason="saga $failing_gid: failed, compensated (reason: transaction \
$failing_gid failed: insufficient balance (branch 03 action answered: \
insufficient balance))"
expect_equal "Submit's answer for the saga that fails" \
  "$(grep "^saga $failing_gid: failed" "$log" || true)" "$expected_reason"

tcc_ok_gid=$(gid_of tcc 30)
tcc_failing_gid=$(gid_of tcc 1000)
msg_gid=$(gid_of msg 30)
[ -n "$tcc_ok_gid" ] || fail "no line for the TCC of 30"
[ -n "$tcc_failing_gid" ] || fail "no line for the TCC of 1000"
[ -n "$msg_gid" ] || fail "no line for the msg"

expect_equal "calls of the TCC that succeeds (confirms in reverse order)" \
  "$(calls_of "$tcc_ok_gid")" \
  "/busi.Busi/TryDeductStock branch=01 op=try -> OK
/busi.Busi/TryCharge branch=02 op=try -> OK
/busi.Busi/ConfirmCharge branch=02 op=confirm -> OK
/busi.Busi/ConfirmDeductStock branch=01 op=confirm -> OK"
expect_equal "outcome of the TCC that succeeds" \
  "$(grep "^tcc $tcc_ok_gid: succeed\$" "$log" || true)" \
  "tcc $tcc_ok_gid: succeed"

expect_equal "calls of the TCC that fails (cancels in reverse order)" \
  "$(calls_of "$tcc_failing_gid")" \
  "/busi.Busi/TryDeductStock branch=01 op=try -> OK
/busi.Busi/TryCharge branch=02 op=try -> ABORTED \"insufficient balance\"
/busi.Busi/CancelCharge branch=02 op=cancel -> OK
/busi.Busi/CancelDeductStock branch=01 op=cancel -> OK"
expect_equal "outcome of the TCC that fails" \
  "$(grep "^tcc $tcc_failing_gid: failed" "$log" || true)" \
  "tcc $tcc_failing_gid: failed, cancelled (the client's answer: \
insufficient balance)"

expect_equal "calls of the msg (local transaction, then its action)" \
  "$(calls_of "$msg_gid")" \
  "/busi.Busi/PlaceOrder branch=00 op=msg -> OK
/busi.Busi/AddPoints branch=01 op=action -> OK"
expect_equal "outcome of the msg" \
  "$(grep "^msg $msg_gid: succeed\$" "$log" || true)" "msg $msg_gid: succeed"

if [ "$failures" -ne 0 ]; then
  echo "quickstart_test: $failures check(s) failed" >&2
  exit 1
fi
echo "quickstart_test: ok"
