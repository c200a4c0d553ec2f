#!/usr/bin/env bash
# Runs the grpcurl commands of README.md (the blocks between the
# "grpcurl-commands" and the "grpcurl-operator" markers), exactly as written
# but for dtmd's address, against a dtmd started here, and checks what they
# print.
#
#   client_stubs/go/grpcurl_readme_test.sh DTMD_BIN GRPCURL
set -euo pipefail
dtmd=${1:?usage: $0 DTMD_BIN GRPCURL}
grpcurl=${2:?usage: $0 DTMD_BIN GRPCURL}
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
pid=
cleanup() {
  [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

"$dtmd" --listen_address=127.0.0.1 --grpc_port=0 --port_file="$work/port" \
  --data_dir="$work/data" --retry_interval=1 --cron_interval=1 \
  --max_retry_interval=2 --metrics_port=0 --http_port=0 >"$work/dtmd.log" 2>&1 &
pid=$!
for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.1; done
port=$(cat "$work/port")

# The commands: the fenced block between a pair of markers, without the
# fences. Runs them; the output goes to $work/out.<block>.
run_block() {
  local block=$1
  awk -v b="<!-- $block:begin -->" -v e="<!-- $block:end -->" \
    '$0==b{on=1; next} $0==e{on=0} on && !/^```/' "$root/README.md" >"$work/$block.sh"
  grep -q '^grpcurl' "$work/$block.sh" || { echo "grpcurl: no $block commands found in README.md" >&2; exit 1; }
  sed -i "s/localhost:36790/127.0.0.1:$port/g" "$work/$block.sh"
  PATH="$work/bin:$PATH" bash -euo pipefail "$work/$block.sh" >"$work/out.$block" 2>&1 || {
    cat "$work/out.$block"; echo "grpcurl: the README's $block commands failed" >&2; exit 1; }
  commands=$((commands + $(grep -c '^grpcurl' "$work/$block.sh")))
}
mkdir -p "$work/bin" && ln -s "$(cd "$(dirname "$grpcurl")" && pwd)/$(basename "$grpcurl")" "$work/bin/grpcurl"
commands=0
run_block grpcurl-commands
run_block grpcurl-operator

failed=0
expect() {
  local block=$1 want=$2
  if ! grep -qF -- "$want" "$work/out.$block"; then
    echo "grpcurl: $block output lacks $want" >&2
    cat "$work/out.$block" >&2
    failed=$((failed + 1))
  fi
}
for want in 'dtmgimp.Dtm' 'grpc.reflection' '"gid": "' '"status": "succeed"'; do
  expect grpcurl-commands "$want"
done
# The stuck saga: listed as submitted, its branch's attempts and last error
# shown, then force-stopped.
for want in 'rpc ForceStop' '"gid": "order-2"' '"status": "submitted"' \
    '"last_code": "UNAVAILABLE"' '"last_error": "' '"call_count": "' \
    '"status": "failed"' 'force stopped: stock service retired'; do
  expect grpcurl-operator "$want"
done
[ "$failed" = 0 ] || exit 1
echo "ran the $commands grpcurl commands of README.md"
echo "grpcurl: 12 passed, 0 failed"
