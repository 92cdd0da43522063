#!/usr/bin/env python3
"""The mpt_pipeline_bench job with Python's multiprocessing Pool.imap (stdlib only).

N short strings cycling through the same five sentences, each split into tokens by a worker
(str.split), the parent counting tokens. Prints one JSON line per chunksize.

Usage: pool_imap.py [--items N] [--workers W] [--chunksize C ...]
"""
import argparse
import json
import multiprocessing
import resource
import sys
import time

TEXTS = ["this is an example text", "another text with no meaning",
         "some more text here", "tokenize me please", "a b c d e f"]


def work_generator(n):
    for i in range(n):
        yield TEXTS[i % 5]


def work_processor(line):
    return line.split()


def run(items, workers, chunksize):
    tokens = results = 0
    t0 = time.monotonic()
    with multiprocessing.Pool(workers) as pool:
        for toks in pool.imap(work_processor, work_generator(items), chunksize):
            tokens += len(toks)
            results += 1
    seconds = time.monotonic() - t0
    assert results == items
    return {"schema": 1, "impl": "python.Pool.imap", "items": items, "workers": workers,
            "chunksize": chunksize, "tokens": tokens, "seconds": round(seconds, 6),
            "items_per_sec": round(items / seconds, 1),
            "parent_max_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--chunksize", type=int, nargs="+", default=[1, 1000])
    a = ap.parse_args()
    for c in a.chunksize:
        print(json.dumps(run(a.items, a.workers, c)))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
