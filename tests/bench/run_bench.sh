#!/usr/bin/env bash
# The benchmark suite behind `make bench`: storage probe, dtmd against
# dtmd-relay for each shape, the two scale runs, micro-benchmarks; then one
# table. Everything runs on loopback; every figure is measured in this run.
#
# Usage: tests/bench/run_bench.sh BUILD_DIR
# Environment: DURATION (s per run, default 5), ROUNDS (dtmd/relay
#   alternations, 3), WARMUP (s, 2), CONCURRENCY (64),
#   PRELOAD (stored transactions, 1000000), RETRYING (unfinished, 100000),
#   RETRYING_INTERVAL (their RetryInterval, s, 10), OUT (result dir).
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
work=$(mktemp -d)
out=${OUT:-$work/results}
mkdir -p "$out"

bench="$build/tests/bench/dtmd-bench"
dtmd="$build/server/dtmd"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work/data-"*
}
trap cleanup EXIT

# start_dtmd NAME DATA_DIR [FLAGS...]: sets dtmd_pid and dtmd_addr.
start_dtmd() {
  local name=$1 data=$2
  shift 2
  rm -f "$work/$name.port"
  "$dtmd" --listen_address=127.0.0.1 --grpc_port=0 \
    --port_file="$work/$name.port" --data_dir="$data" "$@" \
    > "$work/$name.log" 2>&1 &
  dtmd_pid=$!
  pids+=("$dtmd_pid")
  for _ in $(seq 200); do
    [ -s "$work/$name.port" ] && break
    sleep 0.1
  done
  dtmd_addr="127.0.0.1:$(cat "$work/$name.port")"
}
stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

run_bench() {  # run_bench OUTFILE ARGS...
  local file=$1
  shift
  "$bench" --json --concurrency="$concurrency" --duration="$duration" \
    --warmup="$warmup" "$@" > "$out/$file"
}

echo "== storage probe"
"$build/tests/bench/dtmd-storage-probe" --data_dir="$work" \
  --writers="$concurrency" --duration=3 --json > "$out/storage.json"

echo "== dtmd vs dtmd-relay, empty store"
"$build/tests/bench/dtmd-relay" --grpc_port=0 \
  --port_file="$work/relay.port" > "$work/relay.log" 2>&1 &
relay_pid=$!
pids+=("$relay_pid")
for _ in $(seq 100); do [ -s "$work/relay.port" ] && break; sleep 0.1; done
relay_addr="127.0.0.1:$(cat "$work/relay.port")"
start_dtmd empty "$work/data-empty"
for shape in saga-empty saga; do
  run_bench "$shape.json" --shape="$shape" --target="$dtmd_addr" \
    --target_pid="$dtmd_pid" --relay="$relay_addr" --relay_pid="$relay_pid" \
    --rounds="$rounds"
done
stop "$dtmd_pid"
stop "$relay_pid"

echo "== $preload stored transactions"
"$build/tests/bench/dtmd-preload" --data_dir="$work/data-full" \
  --count="$preload" --json > "$out/preload.json"
start_dtmd full "$work/data-full"
full_pid=$dtmd_pid
full_addr=$dtmd_addr
start_dtmd empty2 "$work/data-empty2"
# The full store against an empty one, interleaved, so that the ratio
# compares like with like on a noisy machine.
run_bench saga-full.json --shape=saga --target="$full_addr" \
  --target_pid="$full_pid" --baseline="$dtmd_addr" --baseline_pid="$dtmd_pid" \
  --baseline_name=empty --rounds="$rounds"
stop "$full_pid"
stop "$dtmd_pid"

echo "== $retrying unfinished transactions retrying"
start_dtmd retrying "$work/data-retrying"
"$bench" --json --shape=saga-retrying --count="$retrying" \
  --concurrency="$concurrency" --retry_interval="$retrying_interval" \
  --target="$dtmd_addr" --target_pid="$dtmd_pid" > "$out/retrying-load.json"
run_bench saga-retrying.json --shape=saga --target="$dtmd_addr" \
  --target_pid="$dtmd_pid"
stop "$dtmd_pid"

echo "== micro-benchmarks"
"$build/tests/bench/dtmd_micro_bench" --benchmark_format=json \
  --benchmark_min_time=0.1 > "$out/micro.json" 2> /dev/null

python3 "$here/report.py" "$out" "$preload" "$retrying"
echo "(raw results: $out)"
