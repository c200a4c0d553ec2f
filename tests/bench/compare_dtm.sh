#!/usr/bin/env bash
# dtmd against DTM's own server, same load, interleaved rounds. DTM is not
# part of this repository: build it yourself (its sources, `go build`) and
# pass the binary. Runs DTM on its embedded store (boltdb) and, if
# redis-server is installed, on Redis (without persistence) as well.
# Shapes: saga-empty and saga over gRPC, http-saga over DTM's HTTP API
# (dtmd's --http_port, DTM's HttpPort) and grpc-saga-http-branches (DTM, as
# dtmd, calls http:// URLs over HTTP whatever the protocol of the submit).
#
# Usage: tests/bench/compare_dtm.sh DTM_BINARY [BUILD_DIR]
# Environment: DURATION (s per round, 5), ROUNDS (3), CONCURRENCY (64),
#   SHAPES (default: saga-empty saga http-saga grpc-saga-http-branches).
set -euo pipefail

dtm=$(realpath "${1:?usage: $0 DTM_BINARY [BUILD_DIR]}")
build=$(cd "${2:-build}" && pwd)
duration=${DURATION:-5}
rounds=${ROUNDS:-3}
concurrency=${CONCURRENCY:-64}
shapes=${SHAPES:-saga-empty saga http-saga grpc-saga-http-branches}
# shellcheck source=tests/bench/lib.sh
source "$(dirname "$0")/lib.sh"

bench_start_dtmd dtmd

compare() {  # compare NAME GRPC_PORT PID (DTM's HTTP port: GRPC_PORT + 1)
  for shape in $shapes; do
    echo "== $shape: dtmd vs $1"
    "$build/tests/bench/dtmd-bench" --shape="$shape" \
      --concurrency="$concurrency" --duration="$duration" --rounds="$rounds" \
      --target="$dtmd_addr" --http_target="$dtmd_http" \
      --target_pid="$dtmd_pid" --baseline="127.0.0.1:$2" \
      --baseline_http="127.0.0.1:$(($2 + 1))" --baseline_pid="$3" \
      --baseline_name="$1"
  done
}

bench_start_dtm boltdb 36896 '  Driver: boltdb'
compare dtm-boltdb 36896 "$dtm_pid"

if command -v redis-server > /dev/null; then
  redis-server --port 36899 --bind 127.0.0.1 --save "" --appendonly no \
    > "$bench_work/redis.log" 2>&1 &
  bench_pids+=("$!")
  bench_wait_port 36899
  bench_start_dtm redis 36906 "$(printf '  Driver: redis\n  Host: 127.0.0.1\n  Port: 36899\n  User: \"\"\n  Password: \"\"')"
  compare dtm-redis 36906 "$dtm_pid"
fi
