#!/usr/bin/env bash
# make test-java: the Java client's JUnit tests (Maven Surefire) against a
# real dtmd and a throwaway PostgreSQL, then the Java order-flow example
# against a dtmd of its own. Maven downloads are cached in ~/.m2.
#
#   scripts/test_java.sh BUILD_DIR
set -euo pipefail

build_dir=$(realpath "${1:?usage: $0 BUILD_DIR}")
root=$(cd "$(dirname "$0")/.." && pwd)
dtmd="$build_dir/server/dtmd"
work="$build_dir/java-test"
mvn=(mvn -B -q -Dstyle.color=never)

# Maven 3.8 still writes colour resets with -q; keep the output plain.
plain() { sed -e 's/\x1b\[[0-9;]*m//g'; }

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

dtmd_pid=""
cleanup() {
  if [ -n "$dtmd_pid" ]; then
    kill -TERM "$dtmd_pid" 2>/dev/null || true
    wait "$dtmd_pid" 2>/dev/null || true
  fi
  "$root/scripts/postgres.sh" stop "$work/pg" || true
}
trap cleanup EXIT

rm -rf "$work"
mkdir -p "$work"

pg_port=$(free_port)
dsn=$("$root/scripts/postgres.sh" start "$work/pg" "$pg_port")
# postgresql://user@host:port/db -> jdbc:postgresql://host:port/db?user=user
rest=${dsn#postgresql://}
jdbc="jdbc:postgresql://${rest#*@}?user=${rest%%@*}"

# The client: generate the stubs, compile, test, and install it into ~/.m2
# for the example.
rm -rf "$root/client_stubs/java/target/surefire-reports"
status=0
"${mvn[@]}" -f "$root/client_stubs/java" install \
  -Ddtmd.binary="$dtmd" -Ddtmd.pg.url="$jdbc" 2>&1 | plain || status=$?
read -r tests failures errors skipped < <(
  cat "$root"/client_stubs/java/target/surefire-reports/TEST-*.xml 2>/dev/null |
    grep -o '<testsuite [^>]*>' |
    sed -E 's/.* tests="([0-9]+)".* errors="([0-9]+)".* skipped="([0-9]+)".* failures="([0-9]+)".*/\1 \4 \2 \3/' |
    awk '{t+=$1; f+=$2; e+=$3; s+=$4} END {print t+0, f+0, e+0, s+0}')
echo "java: $((tests - failures - errors - skipped)) passed, $((failures + errors)) failed, $skipped skipped"
[ "$status" -eq 0 ] || exit "$status"
if [ "$skipped" -ne 0 ]; then
  echo "java: tests were skipped (dtmd or PostgreSQL not reached)" >&2
  exit 1
fi

# The example against a dtmd started here.
mkdir -p "$work/dtmd"
"$dtmd" --listen_address=127.0.0.1 --grpc_port=0 --http_port=0 --port_file="$work/dtmd/port" \
  --data_dir="$work/dtmd/data" --retry_interval=1 --cron_interval=1 \
  --max_retry_interval=2 --metrics_port=0 >"$work/dtmd/log" 2>&1 &
dtmd_pid=$!
for _ in $(seq 100); do
  [ -s "$work/dtmd/port" ] && break
  sleep 0.1
done
port=$(cat "$work/dtmd/port")
"${mvn[@]}" -f "$root/examples/java" compile exec:java -Ddtm="127.0.0.1:$port" 2>&1 |
  plain | tee "$work/example.log"
grep -q "^order flow: OK" "$work/example.log"
echo "java example: 1 passed, 0 failed"
