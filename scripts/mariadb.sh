#!/usr/bin/env bash
# A throwaway MariaDB server on loopback for DTM's Python SDK barrier tests
# (its SQL is MySQL's), from Debian's packages (installed here when missing).
#
#   scripts/mariadb.sh start DIR PORT   # prints host:port; data and log in DIR
#   scripts/mariadb.sh stop DIR
#
# User root, no password, TCP on 127.0.0.1:PORT only; the database
# dtm_barrier with DTM's barrier table is created. As root the server runs as
# root (--user=root): the data directory is a temporary one of its own.
set -euo pipefail

if ! command -v mariadbd >/dev/null || ! command -v mariadb-install-db >/dev/null; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq \
    --no-install-recommends mariadb-server mariadb-client >/dev/null
fi

cmd=${1:?usage: $0 start DIR PORT | stop DIR}
dir=$(mkdir -p "${2:?missing DIR}" && cd "$2" && pwd)
case "$cmd" in
  start)
    port=${3:?missing PORT}
    user=$(id -un)
    if [ ! -d "$dir/data/mysql" ]; then
      mariadb-install-db --no-defaults --user="$user" --datadir="$dir/data" \
        --auth-root-authentication-method=normal --skip-test-db \
        >"$dir/install.log" 2>&1
    fi
    mariadbd --no-defaults --user="$user" --datadir="$dir/data" \
      --bind-address=127.0.0.1 --port="$port" --socket="$dir/mariadb.sock" \
      --pid-file="$dir/mariadb.pid" --log-error="$dir/server.log" \
      --innodb-flush-log-at-trx-commit=0 --skip-log-bin >/dev/null 2>&1 &
    for _ in $(seq 300); do
      mariadb --no-defaults -uroot --socket="$dir/mariadb.sock" -e 'select 1' \
        >/dev/null 2>&1 && break
      sleep 0.1
    done
    mariadb --no-defaults -uroot --socket="$dir/mariadb.sock" <<'SQL'
create database if not exists dtm_barrier;
create table if not exists dtm_barrier.barrier(
  id bigint(22) primary key auto_increment,
  trans_type varchar(45) default '',
  gid varchar(128) default '',
  branch_id varchar(128) default '',
  op varchar(45) default '',
  barrier_id varchar(45) default '',
  reason varchar(45) default '' comment 'the branch type who insert this record',
  create_time datetime default now(),
  update_time datetime default now(),
  key(create_time),
  key(update_time),
  unique key(gid, branch_id, op, barrier_id)
);
SQL
    echo "127.0.0.1:$port"
    ;;
  stop)
    if [ -f "$dir/mariadb.pid" ]; then
      pid=$(cat "$dir/mariadb.pid")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    ;;
  *)
    echo "usage: $0 start DIR PORT | stop DIR" >&2
    exit 2
    ;;
esac
