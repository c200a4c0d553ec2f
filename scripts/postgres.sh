#!/usr/bin/env bash
# A throwaway PostgreSQL server on loopback for the client languages' barrier
# tests, from Debian's packages (installed here when missing).
#
#   scripts/postgres.sh start DIR PORT   # prints the DSN; data and log in DIR
#   scripts/postgres.sh stop DIR
#
# The server trusts local connections for user `postgres`, database
# `postgres`: DSN postgresql://postgres@127.0.0.1:PORT/postgres. As root the
# server runs as the `postgres` user (PostgreSQL refuses to run as root).
# Tests run it with fsync off (fast, not crash-safe); PG_FSYNC=on keeps
# PostgreSQL's default, for benchmarks. Extra server settings: PG_OPTIONS
# (e.g. "-c max_connections=200").
set -euo pipefail

pg_bin() {
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
  if [ -z "$dir" ]; then
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq \
      --no-install-recommends postgresql >/dev/null
    dir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  fi
  echo "$dir"
}

as_owner() {  # runs a command as the server's owner
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

cmd=${1:?usage: $0 start DIR PORT | stop DIR}
dir=${2:?missing DIR}
bin=$(pg_bin)
case "$cmd" in
  start)
    port=${3:?missing PORT}
    mkdir -p "$dir"
    [ "$(id -u)" -eq 0 ] && chown postgres: "$dir"
    if [ ! -f "$dir/data/PG_VERSION" ]; then
      as_owner "$bin/initdb" -D "$dir/data" -U postgres --auth=trust \
        -E UTF8 >"$dir/initdb.log" 2>&1
    fi
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=${PG_FSYNC:-off} ${PG_OPTIONS:-}" \
      start >/dev/null
    echo "postgresql://postgres@127.0.0.1:$port/postgres"
    ;;
  stop)
    as_owner "$bin/pg_ctl" -D "$dir/data" -m fast stop >/dev/null 2>&1 || true
    ;;
  *)
    echo "usage: $0 start DIR PORT | stop DIR" >&2
    exit 2
    ;;
esac
