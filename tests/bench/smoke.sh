#!/usr/bin/env bash
# Runs each benchmark tool once, briefly, and checks that it works: answers
# without errors, JSON that parses, figures present. Asserts no timing.
# Usage: tests/bench/smoke.sh BUILD_DIR
set -euo pipefail

build=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)
bench="$build/tests/bench"
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

wait_file() {
  for _ in $(seq 200); do [ -s "$1" ] && return 0; sleep 0.05; done
  echo "no $1" >&2
  return 1
}

"$build/server/dtmd" --listen_address=127.0.0.1 --grpc_port=0 \
  --port_file="$work/dtmd.port" --data_dir="$work/data" \
  > "$work/dtmd.log" 2>&1 &
dtmd_pid=$!
pids+=("$dtmd_pid")
"$bench/dtmd-relay" --grpc_port=0 --port_file="$work/relay.port" \
  > "$work/relay.log" 2>&1 &
relay_pid=$!
pids+=("$relay_pid")
wait_file "$work/dtmd.port"
wait_file "$work/relay.port"

check() {  # check FILE PYTHON_EXPRESSION_ON_r
  python3 -c "import json,sys; r=json.load(open('$1')); sys.exit(0 if ($2) else 1)" ||
    { echo "smoke: $1 fails: $2"; cat "$1"; exit 1; }
}

for shape in saga-empty saga; do
  "$bench/dtmd-bench" --json --shape="$shape" --concurrency=8 --count=200 \
    --target="127.0.0.1:$(cat "$work/dtmd.port")" --target_pid="$dtmd_pid" \
    --relay="127.0.0.1:$(cat "$work/relay.port")" --relay_pid="$relay_pid" \
    > "$work/$shape.json"
  check "$work/$shape.json" "r['errors'] == {} and r['relay']['errors'] == {} \
    and r['tps'] > 0 and r['relay']['tps'] > 0 and r['p99_ms'] > 0 \
    and r['rss_mib'] > 0 and r['cpu_s_per_1k'] >= 0"
done
"$bench/dtmd-bench" --json --shape=saga-retrying --concurrency=8 --count=50 \
  --target="127.0.0.1:$(cat "$work/dtmd.port")" > "$work/retrying.json"
check "$work/retrying.json" "r['errors'] == {} and r['tps'] > 0"

"$bench/dtmd-storage-probe" --data_dir="$work" --writers=8 --duration=0.2 \
  --json > "$work/storage.json"
check "$work/storage.json" "r['fsync_writes_per_s'] > 0 and \
  r['group_commit_writes_per_s'] > 0"
"$bench/dtmd-preload" --data_dir="$work/preload" --count=1000 --json \
  > "$work/preload.json"
check "$work/preload.json" "r['count'] == 1000"
"$bench/dtmd_micro_bench" --benchmark_filter=ParseSaga \
  --benchmark_min_time=0.01 --benchmark_format=json > "$work/micro.json" \
  2> /dev/null
check "$work/micro.json" "len(r['benchmarks']) == 1"
echo "bench smoke: 1 passed, 0 failed"
