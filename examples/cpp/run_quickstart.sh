#!/usr/bin/env bash
# Runs the C++ quick start: starts busi_server, uses the dtmd listening on
# localhost:36790 or starts a temporary one, runs quickstart, and stops what it
# started. Exit code: quickstart's.
#
# Usage: examples/cpp/run_quickstart.sh BUILD_DIR
# Ports: DTM_PORT (default 36790) and BUSI_PORT (default 36791).
set -euo pipefail

if [ $# -ne 1 ]; then
  echo "usage: $0 BUILD_DIR" >&2
  exit 2
fi
build_dir=$(cd "$1" && pwd)
dtm_port=${DTM_PORT:-36790}
busi_port=${BUSI_PORT:-36791}

busi_server="$build_dir/examples/cpp/busi_server"
quickstart="$build_dir/examples/cpp/quickstart"
dtmd="$build_dir/server/dtmd"
for binary in "$busi_server" "$quickstart"; do
  if [ ! -x "$binary" ]; then
    echo "missing $binary: build first (make build)" >&2
    exit 1
  fi
done

started_pids=()
temp_dirs=()
cleanup() {
  for pid in "${started_pids[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  for dir in "${temp_dirs[@]}"; do
    rm -rf "$dir"
  done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# True if something accepts TCP connections on localhost:$1.
listening() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Waits up to 10 s for localhost:$1 to accept connections while process $2
# is alive.
await_port() {
  local port=$1 pid=$2
  for _ in $(seq 100); do
    listening "$port" && return 0
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "process $pid exited before listening on port $port" >&2
      return 1
    fi
    sleep 0.1
  done
  echo "nothing listens on port $port after 10 s" >&2
  return 1
}

if listening "$busi_port"; then
  echo "port $busi_port is in use; stop whatever listens there first" >&2
  exit 1
fi
"$busi_server" --port="$busi_port" --listen_address=localhost \
  > >(sed -u 's/^/[busi_server] /') 2>&1 &
started_pids+=($!)
await_port "$busi_port" "$!"

if listening "$dtm_port"; then
  echo "using the dtmd already listening on localhost:$dtm_port"
else
  if [ ! -x "$dtmd" ]; then
    echo "no dtmd on localhost:$dtm_port and no $dtmd to start" >&2
    exit 1
  fi
  data_dir=$(mktemp -d)
  temp_dirs+=("$data_dir")
  "$dtmd" --data_dir="$data_dir" --grpc_port="$dtm_port" --metrics_port=0 --http_port=0 \
    > "$data_dir/dtmd.log" 2>&1 &
  started_pids+=($!)
  echo "started a temporary dtmd (pid $!, log $data_dir/dtmd.log)"
  await_port "$dtm_port" "$!"
fi

status=0
"$quickstart" --dtm="localhost:$dtm_port" --busi="localhost:$busi_port" ||
  status=$?
if [ "$status" -ne 0 ] && [ ${#temp_dirs[@]} -gt 0 ]; then
  echo "--- last lines of the temporary dtmd's log ---" >&2
  tail -n 20 "${temp_dirs[0]}/dtmd.log" >&2 || true
fi
exit "$status"
