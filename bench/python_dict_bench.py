#!/usr/bin/env python3
"""mpthrottle.SharedDict against multiprocessing.Manager().dict(): gets and sets per second from
1 and 2 processes, measured by this one script in one run, on the same keys and values.

Each measurement starts P forked processes behind a barrier; each does the operation on 64
string keys (int values) in turn for --seconds, and the rate is all their operations over the
longest of their times. Every measurement is repeated --reps times, alternating the two dicts;
the medians are printed (and, with --json, one JSON line per median).

Usage: PYTHONPATH=build/default/python python3 bench/python_dict_bench.py [--reps 5]
           [--seconds 0.5] [--json]
"""
import argparse
import json
import multiprocessing
import os
import statistics
import time

import mpthrottle

KEYS = ["key-%d" % i for i in range(64)]


def worker(d, op, seconds, barrier, results):
    keys = KEYS
    n = 0
    barrier.wait()
    t0 = time.perf_counter()
    end = t0 + seconds
    if op == "get":
        while time.perf_counter() < end:
            for k in keys:
                d[k]
            n += len(keys)
    else:
        pid = os.getpid()
        while time.perf_counter() < end:
            for k in keys:
                d[k] = pid
            n += len(keys)
    results.put((n, time.perf_counter() - t0))


def measure(ctx, d, op, procs, seconds):
    barrier = ctx.Barrier(procs)
    results = ctx.Queue()
    ps = [ctx.Process(target=worker, args=(d, op, seconds, barrier, results)) for _ in range(procs)]
    for p in ps:
        p.start()
    got = [results.get(timeout=60 + seconds * 10) for _ in ps]
    for p in ps:
        p.join(60)
        if p.exitcode != 0:
            raise SystemExit(f"a {op} worker failed: exit code {p.exitcode}")
    return sum(n for n, _ in got) / max(t for _, t in got)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=0.5)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    ctx = multiprocessing.get_context("fork")
    manager = ctx.Manager()
    dicts = {
        "mpthrottle.SharedDict": mpthrottle.SharedDict(capacity=128),
        "Manager().dict()": manager.dict(),
    }
    for d in dicts.values():
        for k in KEYS:
            d[k] = 0
    rates = {}
    for _ in range(a.reps):
        for procs in (1, 2):
            for op in ("get", "set"):
                for name, d in dicts.items():
                    rates.setdefault((name, op, procs), []).append(
                        measure(ctx, d, op, procs, a.seconds))
    print(f"medians of {a.reps} runs of {a.seconds} s, {os.cpu_count()} CPUs "
          f"(operations per second, all processes together)")
    print(f"{'dict':24} {'op':4} {'procs':>5} {'ops/s':>12} {'vs Manager':>10}")
    for (name, op, procs), runs in rates.items():
        med = statistics.median(runs)
        base = statistics.median(rates[("Manager().dict()", op, procs)])
        print(f"{name:24} {op:4} {procs:5d} {med:12,.0f} {med / base:9.1f}x")
        if a.json:
            print(json.dumps({"dict": name, "op": op, "procs": procs, "ops_per_s": med,
                              "runs": runs}))
    manager.shutdown()


if __name__ == "__main__":
    main()
