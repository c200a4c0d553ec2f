#!/usr/bin/env python3
"""Prints the one table of `make bench` from the JSON results of run_bench.sh.

Usage: report.py RESULT_DIR PRELOAD_COUNT RETRYING_COUNT
"""
import json
import os
import sys


def load(directory, name):
    path = os.path.join(directory, name)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        text = f.read().strip()
    return json.loads(text) if text else None


def fmt(value, digits=1):
    if value is None or value < 0:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}"


def main():
    directory, preload, retrying = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    rows = []  # (metric, dtmd, baseline, ratio, target, verdict)

    def row(metric, value, base=None, ratio=None, target="", ok=None,
            digits=1):
        verdict = "" if ok is None else ("met" if ok else "MISSED")
        rows.append((metric, fmt(value, digits), fmt(base, digits),
                     fmt(ratio, 2), target, verdict))

    for shape in ("saga-empty", "saga", "tcc", "msg", "http-saga",
                  "grpc-saga-http-branches"):
        r = load(directory, f"{shape}.json")
        if not r:
            continue
        relay = r.get("relay", {})
        ratio_tps, ratio_p99 = r.get("ratio_tps"), r.get("ratio_p99")
        is_saga = shape == "saga"
        row(f"{shape}: transactions/s", r["tps"], relay.get("tps"), ratio_tps,
            ">= 0.60 x relay" if is_saga else "",
            (ratio_tps >= 0.60) if is_saga else None)
        row(f"{shape}: p50 latency ms", r["p50_ms"], relay.get("p50_ms"),
            r["p50_ms"] / relay["p50_ms"] if relay.get("p50_ms") else None,
            digits=2)
        row(f"{shape}: p99 latency ms", r["p99_ms"], relay.get("p99_ms"),
            ratio_p99, "<= 3 x relay" if is_saga else "",
            (ratio_p99 <= 3.0) if is_saga else None, digits=2)
        row(f"{shape}: p99.9 / max ms", r["p999_ms"], relay.get("p999_ms"),
            None, f"max {r['max_ms']:.1f} / {relay.get('max_ms', 0):.1f}",
            digits=2)
        row(f"{shape}: CPU s per 1000", r["cpu_s_per_1k"],
            relay.get("cpu_s_per_1k"), None, digits=3)
        row(f"{shape}: peak RSS MiB", r["rss_mib"], relay.get("rss_mib"))
        errors = sum(r.get("errors", {}).values())
        if errors:
            row(f"{shape}: errors", errors, sum(relay.get("errors", {}).values()))

    storage = load(directory, "storage.json")
    if storage:
        row("storage: synced writes/s, 1 fsync each",
            storage.get("fsync_writes_per_s"))
        row(f"storage: synced writes/s, group commit x"
            f"{storage.get('group_commit_writers')}",
            storage.get("group_commit_writes_per_s"), None, None,
            f"avg group {storage.get('avg_group_size', 0):.1f}")
        row("storage: unsynced writes/s", storage.get("nosync_writes_per_s"))
        fsyncs = storage.get("fsync_writes_per_s")
        if fsyncs:
            row("storage: one fsync, ms", 1000.0 / fsyncs, digits=3)
        saga = load(directory, "saga.json")
        if saga and saga["tps"] and storage.get("group_commit_writes_per_s"):
            # Each saga makes one synced write; this is how many times over
            # the disk could carry the measured saga rate.
            row("storage: synced-write capacity / saga tps",
                storage["group_commit_writes_per_s"] / saga["tps"], None,
                None, "x headroom: durability is not the limit when > 1",
                digits=1)

    full = load(directory, "saga-full.json")
    empty = (full or {}).get("relay")
    if full and empty:
        ratio = full.get("ratio_tps", 0)
        row(f"scale: saga tps, {preload:,} stored vs empty", full["tps"],
            empty["tps"], ratio, ">= 0.90 x empty", ratio >= 0.90)
        row(f"scale: saga p99 ms, {preload:,} stored vs empty",
            full["p99_ms"], empty["p99_ms"], full.get("ratio_p99"), digits=2)
        row(f"scale: peak RSS MiB, {preload:,} stored vs empty",
            full["rss_mib"], empty["rss_mib"])
    preload_info = load(directory, "preload.json")
    if preload_info:
        row("scale: preload seconds (write, compact)",
        preload_info.get("total_seconds"),
            digits=1)
    retry = load(directory, "saga-retrying.json")
    retry_load = load(directory, "retrying-load.json")
    if retry:
        rss = max(retry.get("rss_mib", -1),
                  (retry_load or {}).get("rss_mib", -1))
        row(f"scale: peak RSS MiB, {retrying:,} retrying", rss, None, None,
            "<= 300 MiB", 0 <= rss <= 300)
        row(f"scale: saga tps while {retrying:,} retry", retry["tps"],
            empty["tps"] if empty else None,
            retry["tps"] / empty["tps"] if empty and empty["tps"] else None)
    if retry_load:
        row(f"scale: submit rate of the {retrying:,}", retry_load["tps"])

    micro = load(directory, "micro.json")
    if micro:
        for b in micro.get("benchmarks", []):
            if b.get("run_type") == "aggregate":
                continue
            unit = b.get("time_unit", "ns")
            row(f"micro: {b['name']} ({unit})", float(b["cpu_time"]),
                digits=1)

    width = max(len(r[0]) for r in rows) + 2
    header = ("metric", "dtmd", "baseline", "ratio", "target", "")
    print(f"{header[0]:<{width}}{header[1]:>14}{header[2]:>14}{header[3]:>8}"
          f"  {header[4]}")
    for metric, value, base, ratio, target, verdict in rows:
        print(f"{metric:<{width}}{value:>14}{base:>14}{ratio:>8}  {target}"
              f"{'  ' + verdict if verdict else ''}")
    print("baseline: dtmd-relay (same load, no store) for the shape rows; "
          "dtmd on an empty store for the scale rows. Runs alternate with "
          "their baseline and are added up.")


if __name__ == "__main__":
    main()
