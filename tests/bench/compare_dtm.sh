#!/usr/bin/env bash
# dtmd against DTM's own server, same load, interleaved rounds. DTM is not
# part of this repository: build it yourself (its sources, `go build`) and
# pass the binary. Runs DTM on its embedded store (boltdb) and, if
# redis-server is installed, on Redis (without persistence) as well.
#
# Usage: tests/bench/compare_dtm.sh DTM_BINARY [BUILD_DIR]
# Environment: DURATION (s per round, 5), ROUNDS (3), CONCURRENCY (64).
set -euo pipefail

dtm=$(realpath "${1:?usage: $0 DTM_BINARY [BUILD_DIR]}")
build=$(cd "${2:-build}" && pwd)
duration=${DURATION:-5}
rounds=${ROUNDS:-3}
concurrency=${CONCURRENCY:-64}
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

wait_port() {
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on port $1" >&2
  return 1
}

"$build/server/dtmd" --listen_address=127.0.0.1 --grpc_port=36890 \
  --data_dir="$work/dtmd" > "$work/dtmd.log" 2>&1 &
dtmd_pid=$!
pids+=("$dtmd_pid")
wait_port 36890

# start_dtm NAME GRPC_PORT STORE_YAML
start_dtm() {
  mkdir -p "$work/$1"
  printf 'Store:\n%s\nGrpcPort: %s\nHttpPort: %s\nJsonRpcPort: %s\nLogLevel: warn\n' \
    "$3" "$2" $(($2 + 1)) $(($2 + 2)) > "$work/$1/conf.yml"
  (cd "$work/$1" && exec "$dtm" -c conf.yml > dtm.log 2>&1) &
  dtm_pid=$!
  pids+=("$dtm_pid")
  wait_port "$2"
}

compare() {  # compare NAME PORT PID
  for shape in saga-empty saga; do
    echo "== $shape: dtmd vs $1"
    "$build/tests/bench/dtmd-bench" --shape="$shape" \
      --concurrency="$concurrency" --duration="$duration" --rounds="$rounds" \
      --target=127.0.0.1:36890 --target_pid="$dtmd_pid" \
      --baseline="127.0.0.1:$2" --baseline_pid="$3" --baseline_name="$1"
  done
}

start_dtm boltdb 36896 '  Driver: boltdb'
compare dtm-boltdb 36896 "$dtm_pid"

if command -v redis-server > /dev/null; then
  redis-server --port 36899 --bind 127.0.0.1 --save "" --appendonly no \
    > "$work/redis.log" 2>&1 &
  pids+=("$!")
  wait_port 36899
  start_dtm redis 36906 "$(printf '  Driver: redis\n  Host: 127.0.0.1\n  Port: 36899\n  User: \"\"\n  Password: \"\"')"
  compare dtm-redis 36906 "$dtm_pid"
fi
