#!/usr/bin/env bash
# Runs the grpcurl commands of README.md (the block between the
# "grpcurl-commands" markers), exactly as written but for dtmd's address,
# against a dtmd started here, and checks what they print.
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
  --max_retry_interval=2 --metrics_port=0 >"$work/dtmd.log" 2>&1 &
pid=$!
for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.1; done
port=$(cat "$work/port")

# The commands: the fenced block after the begin marker, without the fences.
awk '/<!-- grpcurl-commands:begin -->/{on=1; next} /<!-- grpcurl-commands:end -->/{on=0} on && !/^```/' \
  "$root/README.md" >"$work/commands.sh"
grep -q '^grpcurl' "$work/commands.sh" || { echo "grpcurl: no commands found in README.md" >&2; exit 1; }
sed -i "s/localhost:36790/127.0.0.1:$port/g" "$work/commands.sh"
mkdir -p "$work/bin" && ln -s "$(cd "$(dirname "$grpcurl")" && pwd)/$(basename "$grpcurl")" "$work/bin/grpcurl"
PATH="$work/bin:$PATH" bash -euo pipefail "$work/commands.sh" >"$work/out" 2>&1 || {
  cat "$work/out"; echo "grpcurl: the README commands failed" >&2; exit 1; }

failed=0
for want in 'dtmgimp.Dtm' 'grpc.reflection' '"gid": "' '"status": "succeed"'; do
  if ! grep -qF "$want" "$work/out"; then
    echo "grpcurl: output lacks $want" >&2
    failed=1
  fi
done
if [ "$failed" != 0 ]; then cat "$work/out"; exit 1; fi
echo "ran the $(grep -c '^grpcurl' "$work/commands.sh") grpcurl commands of README.md"
echo "grpcurl: 4 passed, 0 failed"
