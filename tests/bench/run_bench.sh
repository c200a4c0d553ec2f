#!/usr/bin/env bash
# The benchmark suite behind `make bench`: storage probe, dtmd against
# dtmd-relay for each shape (gRPC and HTTP), the two scale runs, micro-benchmarks; then one
# table. Everything runs on loopback; every figure is measured in this run.
#
# Usage: tests/bench/run_bench.sh BUILD_DIR
# Environment: DURATION (s per run, default 5), ROUNDS (dtmd/relay
#   alternations, 3), WARMUP (s, 2), CONCURRENCY (64),
#   PRELOAD (stored transactions, 1000000), RETRYING (unfinished, 100000),
#   RETRYING_INTERVAL (their RetryInterval, s, 10).
set -euo pipefail

build=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
duration=${DURATION:-5}
rounds=${ROUNDS:-3}
warmup=${WARMUP:-2}
concurrency=${CONCURRENCY:-64}
preload=${PRELOAD:-1000000}
retrying=${RETRYING:-100000}
retrying_interval=${RETRYING_INTERVAL:-10}
BENCH_KEEP_RESULTS=1
# shellcheck source=tests/bench/lib.sh
source "$here/lib.sh"
out=$bench_work/results
mkdir -p "$out"
bench="$build/tests/bench/dtmd-bench"

run_bench() {  # run_bench OUTFILE ARGS...
  local file=$1
  shift
  "$bench" --json --concurrency="$concurrency" --duration="$duration" \
    --warmup="$warmup" "$@" > "$out/$file"
}

echo "== storage probe"
"$build/tests/bench/dtmd-storage-probe" --data_dir="$bench_work" \
  --writers="$concurrency" --duration=3 --json > "$out/storage.json"

echo "== dtmd vs dtmd-relay, empty store"
bench_start_relay
bench_start_dtmd empty
for shape in saga-empty saga tcc msg http-saga grpc-saga-http-branches; do
  run_bench "$shape.json" --shape="$shape" --target="$dtmd_addr" \
    --http_target="$dtmd_http" --target_pid="$dtmd_pid" \
    --relay="$relay_addr" --relay_http="$relay_http" --relay_pid="$relay_pid" \
    --rounds="$rounds"
done
bench_stop "$dtmd_pid"
bench_stop "$relay_pid"

echo "== $preload stored transactions"
"$build/tests/bench/dtmd-preload" --data_dir="$bench_work/data-full" \
  --count="$preload" --json > "$out/preload.json"
bench_start_dtmd full
full_pid=$dtmd_pid
full_addr=$dtmd_addr
bench_start_dtmd empty2
# The full store against an empty one, interleaved, so that the ratio
# compares like with like on a noisy machine.
run_bench saga-full.json --shape=saga --target="$full_addr" \
  --target_pid="$full_pid" --baseline="$dtmd_addr" --baseline_pid="$dtmd_pid" \
  --baseline_name=empty --rounds="$rounds"
bench_stop "$full_pid"
bench_stop "$dtmd_pid"

echo "== $retrying unfinished transactions retrying"
bench_start_dtmd retrying
"$bench" --json --shape=saga-retrying --count="$retrying" \
  --concurrency="$concurrency" --retry_interval="$retrying_interval" \
  --target="$dtmd_addr" --target_pid="$dtmd_pid" > "$out/retrying-load.json"
run_bench saga-retrying.json --shape=saga --target="$dtmd_addr" \
  --target_pid="$dtmd_pid"
bench_stop "$dtmd_pid"

echo "== micro-benchmarks"
"$build/tests/bench/dtmd_micro_bench" --benchmark_format=json \
  --benchmark_min_time=0.1 > "$out/micro.json" 2> /dev/null

python3 "$here/report.py" "$out" "$preload" "$retrying"
echo "(raw results: $out)"
