#!/usr/bin/env python3
"""process_parallel against Python's multiprocessing Pool.imap, in one run, on the same job.

Runs build/.../mpt_pipeline_bench (1M and 10M items) and bench/peers/pool_imap.py (chunksize 1
and 1000), each --reps times, and prints the medians, the ratios, and the peak RSS of the
parent process for 1M vs 10M items (which must be equal within 10 %: memory is bounded by the
queues, not by the input).

Usage: pipeline_compare.py [--bench PATH] [--workers 2] [--reps 3] [--items 1000000]
                           [--imap1-items 200000] [--json]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def run_json(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def median_of(runs, key):
    return statistics.median(r[key] for r in runs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", default=os.path.join(HERE, "..", "build", "release", "bench",
                                                    "mpt_pipeline_bench"))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--imap1-items", type=int, default=200_000,
                    help="items for chunksize 1 (about 20k items/s: 1M would take a minute)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()

    w = str(a.workers)
    mpt_1m = [run_json([a.bench, "--items", str(a.items), "--workers", w, "--json"])[0]
              for _ in range(a.reps)]
    mpt_10m = [run_json([a.bench, "--items", str(10 * a.items), "--workers", w, "--json"])[0]
               for _ in range(a.reps)]
    peer = os.path.join(HERE, "peers", "pool_imap.py")
    imap1 = [run_json([sys.executable, peer, "--items", str(a.imap1_items), "--workers", w,
                       "--chunksize", "1"])[0] for _ in range(1)]  # ~10 s a run
    imap1000 = [run_json([sys.executable, peer, "--items", str(a.items), "--workers", w,
                          "--chunksize", "1000"])[0] for _ in range(a.reps)]

    r = {
        "schema": 1,
        "workers": a.workers,
        "reps": a.reps,
        "items": a.items,
        "mpt_items_per_sec_1m": median_of(mpt_1m, "items_per_sec"),
        "mpt_items_per_sec_10m": median_of(mpt_10m, "items_per_sec"),
        "imap_chunk1_items_per_sec": median_of(imap1, "items_per_sec"),
        "imap_chunk1000_items_per_sec": median_of(imap1000, "items_per_sec"),
        "mpt_parent_max_rss_kib_1m": median_of(mpt_1m, "parent_max_rss_kib"),
        "mpt_parent_max_rss_kib_10m": median_of(mpt_10m, "parent_max_rss_kib"),
        "mpt_workers_max_rss_kib_1m": median_of(mpt_1m, "workers_max_rss_kib"),
        "mpt_workers_max_rss_kib_10m": median_of(mpt_10m, "workers_max_rss_kib"),
    }
    r["ratio_vs_imap_chunk1"] = r["mpt_items_per_sec_1m"] / r["imap_chunk1_items_per_sec"]
    r["ratio_vs_imap_chunk1000"] = r["mpt_items_per_sec_1m"] / r["imap_chunk1000_items_per_sec"]
    r["rss_10m_over_1m"] = r["mpt_parent_max_rss_kib_10m"] / r["mpt_parent_max_rss_kib_1m"]
    r["target_10x_chunk1000"] = r["ratio_vs_imap_chunk1000"] >= 10
    r["target_rss_within_10pct"] = abs(r["rss_10m_over_1m"] - 1) <= 0.10
    if a.json:
        print(json.dumps(r, indent=2))
        return 0
    print(f"{'JOB (medians of ' + str(a.reps) + ')':<40} {'ITEMS/S':>12} {'RATIO':>8}")
    print(f"{'mpt process_parallel, 1M items':<40} {r['mpt_items_per_sec_1m']:>12,.0f}")
    print(f"{'mpt process_parallel, 10M items':<40} {r['mpt_items_per_sec_10m']:>12,.0f}")
    print(f"{'Pool.imap chunksize 1 (' + str(a.imap1_items) + ' items)':<40} "
          f"{r['imap_chunk1_items_per_sec']:>12,.0f} {r['ratio_vs_imap_chunk1']:>7.1f}x")
    print(f"{'Pool.imap chunksize 1000, 1M items':<40} "
          f"{r['imap_chunk1000_items_per_sec']:>12,.0f} {r['ratio_vs_imap_chunk1000']:>7.1f}x "
          f"{'PASS' if r['target_10x_chunk1000'] else 'MISS'} (>= 10x)")
    print(f"peak RSS of the parent: 1M {r['mpt_parent_max_rss_kib_1m']:.0f} KiB, "
          f"10M {r['mpt_parent_max_rss_kib_10m']:.0f} KiB (x{r['rss_10m_over_1m']:.3f}) "
          f"{'PASS' if r['target_rss_within_10pct'] else 'MISS'} (within 10 %); workers "
          f"{r['mpt_workers_max_rss_kib_1m']:.0f} / {r['mpt_workers_max_rss_kib_10m']:.0f} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
