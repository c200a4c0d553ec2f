# Shared by the bench scripts (source it after setting `build`): a work
# directory, the processes started, their clean-up on exit, and start-up of
# dtmd and dtmd-relay on ports the OS picks.
# With BENCH_KEEP_RESULTS=1 the work directory stays (but its data-* dirs go).

bench_work=$(mktemp -d)
bench_pids=()

bench_cleanup() {
  for pid in "${bench_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${bench_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ "${BENCH_KEEP_RESULTS:-0}" = 1 ]; then
    rm -rf "$bench_work"/data-*
  else
    rm -rf "$bench_work"
  fi
}
trap bench_cleanup EXIT

# bench_wait_file FILE: waits (10 s at most) until FILE is not empty.
bench_wait_file() {
  for _ in $(seq 200); do [ -s "$1" ] && return 0; sleep 0.05; done
  echo "timed out waiting for $1" >&2
  return 1
}

# bench_wait_port PORT: waits (10 s at most) until 127.0.0.1:PORT accepts.
bench_wait_port() {
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on port $1" >&2
  return 1
}

bench_stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# bench_start_dtmd NAME [FLAGS...]: dtmd with its data in
# $bench_work/data-NAME; sets dtmd_pid, dtmd_addr and dtmd_http (its HTTP
# API).
bench_start_dtmd() {
  local name=$1
  shift
  rm -f "$bench_work/$name.port" "$bench_work/$name.http-port"
  "$build/server/dtmd" --listen_address=127.0.0.1 --grpc_port=0 \
    --metrics_port=0 --http_port=-1 \
    --http_port_file="$bench_work/$name.http-port" \
    --port_file="$bench_work/$name.port" --data_dir="$bench_work/data-$name" \
    "$@" > "$bench_work/$name.log" 2>&1 &
  dtmd_pid=$!
  bench_pids+=("$dtmd_pid")
  bench_wait_file "$bench_work/$name.port"
  bench_wait_file "$bench_work/$name.http-port"
  dtmd_addr="127.0.0.1:$(cat "$bench_work/$name.port")"
  dtmd_http="127.0.0.1:$(cat "$bench_work/$name.http-port")"
}

# bench_start_relay: sets relay_pid, relay_addr and relay_http.
bench_start_relay() {
  "$build/tests/bench/dtmd-relay" --grpc_port=0 --http_port=-1 \
    --port_file="$bench_work/relay.port" \
    --http_port_file="$bench_work/relay.http-port" \
    > "$bench_work/relay.log" 2>&1 &
  relay_pid=$!
  bench_pids+=("$relay_pid")
  bench_wait_file "$bench_work/relay.port"
  bench_wait_file "$bench_work/relay.http-port"
  relay_addr="127.0.0.1:$(cat "$bench_work/relay.port")"
  relay_http="127.0.0.1:$(cat "$bench_work/relay.http-port")"
}

# bench_start_dtm NAME GRPC_PORT STORE_YAML [DTM_BINARY]: DTM's own server
# (default: $dtm), its HTTP and JSON-RPC ports right after the gRPC one,
# the Store section of its conf.yml given; sets dtm_pid.
bench_start_dtm() {
  mkdir -p "$bench_work/$1"
  printf 'Store:\n%s\nGrpcPort: %s\nHttpPort: %s\nJsonRpcPort: %s\nLogLevel: warn\n' \
    "$3" "$2" $(($2 + 1)) $(($2 + 2)) > "$bench_work/$1/conf.yml"
  (cd "$bench_work/$1" && exec "${4:-$dtm}" -c conf.yml > dtm.log 2>&1) &
  dtm_pid=$!
  bench_pids+=("$dtm_pid")
  bench_wait_port "$2"
  bench_wait_port $(($2 + 1))
}
