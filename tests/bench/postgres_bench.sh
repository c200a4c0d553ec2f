#!/usr/bin/env bash
# The benchmark behind `make bench-postgres`: the saga shape (2 steps calling
# the bench's branch server, WaitResult) against
#   rocksdb       dtmd on its embedded store,
#   postgres x1   one dtmd replica on PostgreSQL,
#   postgres x3   three dtmd replicas on the same PostgreSQL, the load sent
#                 to them in turn,
#   dtm-postgres  DTM's own server on its postgres store (only with DTM or
#                 DTM_SRC, below),
# one after the other in one run, with one throwaway PostgreSQL from
# Debian's packages (scripts/postgres.sh) running with fsync on and its
# other settings at their defaults (synchronous_commit on). Each
# configuration gets a fresh database. Then one table.
#
# Usage: tests/bench/postgres_bench.sh BUILD_DIR
# Environment: DURATION (measured s per configuration, 25), WARMUP (s, 5),
#   CONCURRENCY (64), PG_PORT (36950), CONFIGS (the configurations to run,
#   default "rocksdb postgres-1 postgres-3 dtm-postgres"),
#   DTM (DTM's server binary, built from its sources with `go build`; its
#   schema is read from sqls/dtmsvr.storage.postgres.sql beside it, or from
#   DTM_SQL), or DTM_SRC (a checkout of DTM's sources: built here).
set -euo pipefail

build=$(cd "${1:?usage: $0 BUILD_DIR}" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
duration=${DURATION:-25}
warmup=${WARMUP:-5}
concurrency=${CONCURRENCY:-64}
pg_port=${PG_PORT:-36950}
configs=" ${CONFIGS:-rocksdb postgres-1 postgres-3 dtm-postgres} "
BENCH_KEEP_RESULTS=1
# shellcheck source=tests/bench/lib.sh
source "$here/lib.sh"
out=$bench_work/results
mkdir -p "$out"
bench="$build/tests/bench/dtmd-bench"

# DTM: a binary, or sources to build one from.
dtm=${DTM:-}
if [ -z "$dtm" ] && [ -n "${DTM_SRC:-}" ]; then
  echo "== building DTM in $DTM_SRC (go build)"
  (cd "$DTM_SRC" && GOTOOLCHAIN=local go build -o "$bench_work/dtm" .)
  dtm=$bench_work/dtm
  DTM_SQL=${DTM_SQL:-$DTM_SRC/sqls/dtmsvr.storage.postgres.sql}
fi
if [ -n "$dtm" ]; then
  dtm=$(realpath "$dtm")
  dtm_sql=${DTM_SQL:-$(dirname "$dtm")/sqls/dtmsvr.storage.postgres.sql}
  [ -f "$dtm_sql" ] || { echo "no DTM schema at $dtm_sql (set DTM_SQL)" >&2; exit 2; }
fi

# PostgreSQL runs as its own user when this runs as root, so its directory is
# outside the (private) work directory.
pg_dir=$(mktemp -d /tmp/dtmd-bench-pg.XXXXXX)
stop_all() {
  bench_cleanup
  "$repo/scripts/postgres.sh" stop "$pg_dir"
  rm -rf "$pg_dir"
}
trap stop_all EXIT
echo "== PostgreSQL on port $pg_port, fsync on"
dsn=$(PG_FSYNC=on PG_OPTIONS="-c max_connections=300" \
  "$repo/scripts/postgres.sh" start "$pg_dir" "$pg_port")
pg_version=$(psql "$dsn" -Atc "SHOW server_version")
pg_settings=$(psql "$dsn" -Atc "SELECT string_agg(name || '=' || setting, ' ' ORDER BY name) FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', 'wal_sync_method', 'shared_buffers', 'max_connections')")
database() {  # database NAME: a fresh database; prints its DSN.
  psql "$dsn" -qc "CREATE DATABASE $1" >/dev/null
  echo "postgresql://postgres@127.0.0.1:$pg_port/$1"
}

# What PostgreSQL did for a configuration between pg_mark and pg_report:
# commits in its database, WAL flushes and bytes and CPU (server-wide; the
# configurations run one at a time), and the transactions stored in TABLE.
pg_counters() {  # pg_counters DB: "commits wal_syncs wal_bytes"
  psql "postgresql://postgres@127.0.0.1:$pg_port/$1" -Atc "SELECT (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()), wal_sync, wal_bytes FROM pg_stat_wal" | tr '|' ' '
}
# CPU seconds of the server: its processes and the backends that exited.
pg_cpu() {
  local postmaster ticks
  postmaster=$(head -1 "$pg_dir/data/postmaster.pid")
  ticks=$(getconf CLK_TCK)
  { cut -d' ' -f16,17 "/proc/$postmaster/stat"
    for child in $(pgrep -P "$postmaster") "$postmaster"; do
      cut -d' ' -f14,15 "/proc/$child/stat" 2>/dev/null || true
    done
  } | awk -v hz="$ticks" '{ t += $1 + $2 } END { printf "%.2f", t / hz }'
}
pg_mark() {
  read -r mark_commits mark_syncs mark_bytes <<< "$(pg_counters "$1")"
  mark_cpu=$(pg_cpu)
}
pg_report() {  # pg_report NAME DB TABLE, after the coordinators stopped
  sleep 1  # backends report their counters when they exit
  local commits syncs bytes rows
  read -r commits syncs bytes <<< "$(pg_counters "$2")"
  rows=$(psql "postgresql://postgres@127.0.0.1:$pg_port/$2" -Atc "SELECT count(*) FROM $3")
  printf '{"transactions": %s, "commits": %s, "wal_syncs": %s, "wal_bytes": %s, "cpu_seconds": %s}\n' \
    "$rows" $((commits - mark_commits)) $((syncs - mark_syncs)) \
    "$(echo "$bytes - $mark_bytes" | bc)" "$(echo "$(pg_cpu) - $mark_cpu" | bc)" \
    > "$out/$1-pg.json"
}

run_bench() {  # run_bench NAME TARGETS PIDS
  echo "== saga: $1"
  "$bench" --json --shape=saga --concurrency="$concurrency" \
    --duration="$duration" --warmup="$warmup" --target="$2" \
    --target_pid="$3" > "$out/$1.json"
}

wanted() { [[ "$configs" == *" $1 "* ]]; }

if wanted rocksdb; then
  bench_start_dtmd rocksdb
  run_bench rocksdb "$dtmd_addr" "$dtmd_pid"
  bench_stop "$dtmd_pid"
fi

if wanted postgres-1; then
  one=$(database dtmd_one)
  bench_start_dtmd pg1 --store=postgres --postgres_dsn="$one" --replica_id=pg1
  pg_mark dtmd_one
  run_bench postgres-1 "$dtmd_addr" "$dtmd_pid"
  bench_stop "$dtmd_pid"
  pg_report postgres-1 dtmd_one dtmd_trans
fi

if wanted postgres-3; then
  three=$(database dtmd_three)
  addrs=()
  pids=()
  for r in a b c; do
    bench_start_dtmd "pg3$r" --store=postgres --postgres_dsn="$three" \
      --replica_id="pg3$r"
    addrs+=("$dtmd_addr")
    pids+=("$dtmd_pid")
  done
  pg_mark dtmd_three
  run_bench postgres-3 "$(IFS=,; echo "${addrs[*]}")" "$(IFS=,; echo "${pids[*]}")"
  for pid in "${pids[@]}"; do bench_stop "$pid"; done
  pg_report postgres-3 dtmd_three dtmd_trans
fi

if ! wanted dtm-postgres; then
  :
elif [ -n "$dtm" ]; then
  database dtm >/dev/null
  psql "postgresql://postgres@127.0.0.1:$pg_port/dtm" -q -v ON_ERROR_STOP=1 \
    -f "$dtm_sql" >/dev/null 2>&1
  # DTM builds a keyword DSN from these (trust auth ignores the password,
  # but an empty one would swallow the next keyword).
  bench_start_dtm dtm-postgres 36960 "$(printf '  Driver: postgres\n  Host: 127.0.0.1\n  Port: %s\n  User: postgres\n  Password: unused\n  Db: dtm\n  Schema: public' "$pg_port")"
  pg_mark dtm
  run_bench dtm-postgres 127.0.0.1:36960 "$dtm_pid"
  bench_stop "$dtm_pid"
  pg_report dtm-postgres dtm trans_global
else
  echo "== DTM skipped: set DTM (binary) or DTM_SRC (sources)"
fi

cores=$(nproc)
python3 "$here/postgres_report.py" "$out" \
  "PostgreSQL $pg_version ($pg_settings); $cores cores; $concurrency in flight; $duration s after $warmup s warm-up per configuration"
echo "(raw results: $out)"
