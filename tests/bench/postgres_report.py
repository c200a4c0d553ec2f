#!/usr/bin/env python3
"""Prints the table of `make bench-postgres` from postgres_bench.sh's results.

Usage: postgres_report.py RESULT_DIR SETUP_LINE
"""
import sys

from report import fmt, load

CONFIGURATIONS = (
    ("rocksdb", "dtmd, RocksDB (embedded)"),
    ("postgres-1", "dtmd x1, PostgreSQL"),
    ("postgres-3", "dtmd x3, PostgreSQL (round-robin)"),
    ("dtm-postgres", "DTM, PostgreSQL"),
)


def main():
    directory, setup = sys.argv[1], sys.argv[2]
    base = (load(directory, "rocksdb.json") or {}).get("tps")
    header = ("configuration", "tx/s", "p50 ms", "p99 ms", "errors",
              "CPU s/1000", "vs RocksDB", "PG CPU s/1000", "commits/tx",
              "WAL syncs/tx", "WAL KiB/tx")
    rows = []
    for name, label in CONFIGURATIONS:
        r = load(directory, f"{name}.json")
        if not r:
            rows.append((label, "not run") + ("",) * (len(header) - 2))
            continue
        errors = sum(r.get("errors", {}).values())
        # PostgreSQL's work per stored transaction (whole phase, warm-up
        # included).
        pg = load(directory, f"{name}-pg.json") or {}
        per_tx = [None] * 4
        if pg.get("transactions"):
            per_tx = [pg["cpu_seconds"] * 1000 / pg["transactions"],
                      pg["commits"] / pg["transactions"],
                      pg["wal_syncs"] / pg["transactions"],
                      pg["wal_bytes"] / 1024 / pg["transactions"]]
        rows.append((label, fmt(r["tps"], 0), fmt(r["p50_ms"], 2),
                     fmt(r["p99_ms"], 2), fmt(errors),
                     fmt(r["cpu_s_per_1k"], 3),
                     fmt(r["tps"] / base, 2) if base else "-",
                     fmt(per_tx[0], 3), fmt(per_tx[1], 2), fmt(per_tx[2], 2),
                     fmt(per_tx[3], 2)))
    width = max(len(r[0]) for r in rows + [header]) + 2
    line = f"{{:<{width}}}" + "{:>14}" * (len(header) - 1)
    print(line.format(*header))
    for row in rows:
        print(line.format(*row))
    print(f"saga shape (2 steps, WaitResult); {setup}. CPU: the coordinator "
          "processes (added up over replicas); PG CPU: PostgreSQL's processes. "
          "PG CPU, commits (in the configuration's database), WAL flushes "
          "and bytes: over the whole phase (warm-up included), per "
          "transaction stored.")


if __name__ == "__main__":
    main()
