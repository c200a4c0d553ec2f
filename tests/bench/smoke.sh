#!/usr/bin/env bash
# Runs each benchmark tool once, briefly, and checks that it works: answers
# without errors, JSON that parses, figures present. Asserts no timing.
# Usage: tests/bench/smoke.sh BUILD_DIR
set -euo pipefail

build=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)
bench="$build/tests/bench"
# shellcheck source=tests/bench/lib.sh
source "$(dirname "$0")/lib.sh"
work=$bench_work

bench_start_dtmd smoke
bench_start_relay

check() {  # check FILE PYTHON_EXPRESSION_ON_r
  python3 -c "import json,sys; r=json.load(open('$1')); sys.exit(0 if ($2) else 1)" ||
    { echo "smoke: $1 fails: $2"; cat "$1"; exit 1; }
}

for shape in saga-empty saga tcc msg http-saga grpc-saga-http-branches; do
  "$bench/dtmd-bench" --json --shape="$shape" --concurrency=8 --count=200 \
    --target="$dtmd_addr" --http_target="$dtmd_http" --target_pid="$dtmd_pid" \
    --relay="$relay_addr" --relay_http="$relay_http" --relay_pid="$relay_pid" \
    > "$work/$shape.json"
  check "$work/$shape.json" "r['errors'] == {} and r['relay']['errors'] == {} \
    and r['tps'] > 0 and r['relay']['tps'] > 0 and r['p99_ms'] > 0 \
    and r['rss_mib'] > 0 and r['cpu_s_per_1k'] >= 0"
done
"$bench/dtmd-bench" --json --shape=saga-retrying --concurrency=8 --count=50 \
  --target="$dtmd_addr" > "$work/retrying.json"
check "$work/retrying.json" "r['errors'] == {} and r['tps'] > 0"

"$bench/dtmd-storage-probe" --data_dir="$work" --writers=8 --duration=0.2 \
  --json > "$work/storage.json"
check "$work/storage.json" "r['fsync_writes_per_s'] > 0 and \
  r['group_commit_writes_per_s'] > 0"
"$bench/dtmd-preload" --data_dir="$work/data-preload" --count=1000 --json \
  > "$work/preload.json"
check "$work/preload.json" "r['count'] == 1000"
"$bench/dtmd_micro_bench" --benchmark_filter=ParseSaga \
  --benchmark_min_time=0.01 --benchmark_format=json > "$work/micro.json" \
  2> /dev/null
check "$work/micro.json" "len(r['benchmarks']) == 1"
echo "bench smoke: 1 passed, 0 failed"
