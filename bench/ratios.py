#!/usr/bin/env python3
"""bench/ratios.py: bm_throttle's medians against the floor, and the targets they should meet.

Google Benchmark cannot divide one benchmark's result by another's, so this script reads its JSON
output and does it:

    bm_throttle --benchmark_repetitions=5 --benchmark_report_aggregates_only=true \\
        --benchmark_out=bm.json --benchmark_out_format=json
    python3 bench/ratios.py bm.json

For each benchmark it prints the median real time per operation and its ratio to
BM_Floor_ClockPlusCas (one clock read plus one CAS); for the two-process benchmarks, acquisitions
per second. Then PASS or MISS for each target:

    has_fuel                  <= 1.5 x floor
    emit                      <= 2.5 x floor
    two-process throttle      >= 0.5 x two-process bare CAS (acquisitions per second)

The medians come from the "median" aggregates (--benchmark_repetitions=N); without them, from the
median of the individual runs. Informational: exits 0 whatever the results, 1 if the file cannot be
read, 2 on bad usage. Python 3 standard library only.
"""

import argparse
import json
import statistics
import sys

FLOOR = "BM_Floor_ClockPlusCas"
CONTENTION_THROTTLE = "BM_Contention_TwoProcessesThrottle"
CONTENTION_BARE = "BM_Contention_TwoProcessesBareCas"
CONTENTION_CLOCK_CAS = "BM_Contention_TwoProcessesClockPlusCas"

# (label, numerator, denominator, comparison, limit)
TARGETS = [
    ("has_fuel / floor", "BM_Throttle_HasFuel", FLOOR, "<=", 1.5),
    ("emit / floor", "BM_Throttle_Emit", FLOOR, "<=", 2.5),
    ("2-proc throttle / bare CAS", CONTENTION_THROTTLE, CONTENTION_BARE, ">=", 0.5),
]

UNIT_NS = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}


def base_name(entry):
    """BM_X/iterations:1/real_time -> BM_X."""
    return entry.get("run_name", entry["name"]).split("/")[0]


def is_contention(name):
    return name.startswith("BM_Contention_")


def load_medians(path):
    """Returns ({name: {"real_time_ns": ..., counters...}}, {name: error message})."""
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    aggregates = {}
    runs = {}
    errors = {}
    for entry in data.get("benchmarks", []):
        name = base_name(entry)
        if entry.get("error_occurred"):
            errors[name] = entry.get("error_message", "error")
            continue
        if entry.get("run_type") == "aggregate":
            if entry.get("aggregate_name") == "median":
                aggregates[name] = entry
        else:
            runs.setdefault(name, []).append(entry)

    medians = {}
    for name in list(aggregates) + [n for n in runs if n not in aggregates]:
        if name in aggregates:
            entries = [aggregates[name]]
        else:
            entries = runs[name]
        scale = UNIT_NS.get(entries[0].get("time_unit", "ns"), 1.0)
        row = {"real_time_ns": statistics.median(e["real_time"] * scale for e in entries)}
        for key in ("ops_per_sec", "ns_per_op_per_process"):
            values = [e[key] for e in entries if key in e]
            if values:
                row[key] = statistics.median(values)
        medians[name] = row
    return medians, errors


def metric(medians, name):
    """What the targets compare: acquisitions per second for two-process runs, else ns per op."""
    row = medians.get(name)
    if row is None:
        return None
    return row.get("ops_per_sec") if is_contention(name) else row["real_time_ns"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json_file", help="Google Benchmark output (--benchmark_out_format=json)")
    args = parser.parse_args()

    try:
        medians, errors = load_medians(args.json_file)
    except (OSError, ValueError, KeyError, TypeError) as e:
        print(f"ratios.py: cannot read {args.json_file}: {e}", file=sys.stderr)
        return 1

    floor = medians.get(FLOOR, {}).get("real_time_ns")
    print(f"{'BENCHMARK':<40} {'MEDIAN(ns/op)':>13} {'x FLOOR':>8} {'OPS(/s)':>12}")
    for name, row in medians.items():
        if is_contention(name):
            per_op = row.get("ns_per_op_per_process")
            ops = row.get("ops_per_sec")
            shown = f"{per_op:13.2f}" if per_op is not None else f"{'-':>13}"
            rate = f"{ops:12.4g}" if ops is not None else f"{'-':>12}"
            print(f"{name:<40} {shown} {'-':>8} {rate}")
        else:
            ns = row["real_time_ns"]
            ratio = f"{ns / floor:8.2f}" if floor else f"{'-':>8}"
            print(f"{name:<40} {ns:13.2f} {ratio} {1e9 / ns:12.4g}")
    for name, message in errors.items():
        print(f"{name:<40} error: {message}")
    print("(two-process rows: ns per acquisition per process, and acquisitions per second in all)")

    print()
    print(f"{'TARGET':<30} {'VALUE':>8} {'LIMIT':>8}  RESULT")
    for label, num, den, cmp, limit in TARGETS:
        a, b = metric(medians, num), metric(medians, den)
        if a is None or b is None or b == 0:
            print(f"{label:<30} {'-':>8} {cmp + str(limit):>8}  MISSING")
            continue
        value = a / b
        ok = value <= limit if cmp == "<=" else value >= limit
        print(f"{label:<30} {value:8.3f} {cmp + str(limit):>8}  {'PASS' if ok else 'MISS'}")

    # Not a target: how much of the contention gap the clock read alone explains.
    a, b = metric(medians, CONTENTION_THROTTLE), metric(medians, CONTENTION_CLOCK_CAS)
    if a is not None and b:
        print(f"{'2-proc throttle / clock+CAS':<30} {a / b:8.3f} {'(info)':>8}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
