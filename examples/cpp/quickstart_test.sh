#!/usr/bin/env bash
# The quick start as a test: runs run_quickstart.sh and checks what README
# promises, exactly: the first saga calls the three actions and succeeds; the
# second has Charge answer ABORTED "insufficient balance", then dtmd
# compensates in reverse order (Refund, RestoreStock, CancelOrder), and the
# client's Submit returns ABORTED with the reason, the failing branch and its
# message.
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

# The gid of the saga that bought for `amount`.
gid_of() {
  sed -n "s/^saga \([^ :]*\): [^ ]* buys 1 apple for $1\$/\1/p" "$log"
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

ok_gid=$(gid_of 30)
failing_gid=$(gid_of 1000)
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

if [ "$failures" -ne 0 ]; then
  echo "quickstart_test: $failures check(s) failed" >&2
  exit 1
fi
echo "quickstart_test: ok"
