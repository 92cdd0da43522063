#!/usr/bin/env python3
"""A crawler whose processes are unrelated: they share one named throttle and nothing else.

    crawler.py coordinator NAME [RATE] [SECONDS]   creates the throttle NAME (RATE per second,
                                                   default 5), starts it, prints the shared rate
                                                   every second, stops it after SECONDS (default
                                                   30) or on Ctrl-C
    crawler.py worker NAME [WAIT_SECONDS]          in any other shell, as many as you like: opens
                                                   NAME (waiting up to WAIT_SECONDS, default 10,
                                                   for it to exist) and fetches at the shared rate
                                                   until the coordinator stops the throttle
    crawler.py demo [RATE] [SECONDS] [WORKERS]     runs a coordinator and WORKERS (default 3)
                                                   workers as separate programs and checks that
                                                   the pages the workers fetched add up to the
                                                   coordinator's total, at most RATE * SECONDS + 1

No process here is forked from another, and none is handed a throttle object: the workers attach
by name (Throttle.open), as programs started by cron or by hand on the same host would. It is the
Python twin of examples/crawler/ (C++).

    PYTHONPATH=build/default/python python3 examples/python/crawler.py demo 20 2
Exit 0 ok, 1 on an error (or a failed demo check), 2 on bad usage.
"""
import os
import random
import re
import subprocess
import sys
import time

import mpthrottle


def fetch(url):
    """Stands in for an HTTP GET."""
    time.sleep(random.uniform(0.001, 0.020))
    print(f"worker {os.getpid()}: fetched {url}", flush=True)


def coordinator(name, rate, seconds):
    throttle = mpthrottle.Throttle.create(name, rate, 1)
    throttle.start()
    print(f"coordinator: throttle '{name}' at {rate} requests per second for {seconds:g} s",
          flush=True)
    try:
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            time.sleep(min(1.0, left))
            _, latest = throttle.latest()
            _, mean = throttle.mean()
            print(f"coordinator: latest {latest:.2f}/s, mean {mean:.2f}/s", flush=True)
    except KeyboardInterrupt:
        print("coordinator: interrupted, stopping", flush=True)
    runtime, total, _, mean_rate = throttle.stop()
    print(f"coordinator: {total} fetches in {runtime:.2f} s, {mean_rate:.3f} per second",
          flush=True)
    # The workers keep their mapping when the name goes away with this process; the pause only
    # lets them print their counts before the coordinator's last line.
    time.sleep(0.2)
    return total


def open_when_there(name, wait_s):
    """Throttle.open(name), retried every 50 ms for up to wait_s while the name does not exist."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return mpthrottle.Throttle.open(name)
        except FileNotFoundError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.05)


def worker(name, wait_s):
    throttle = open_when_there(name, wait_s)
    fetched = 0
    while not throttle.kill_flag.is_set():
        if not throttle.await_fuel():  # False: stopped while waiting
            break
        fetch(f"https://example.com/page/{os.getpid()}-{fetched}")
        fetched += 1
    print(f"worker {os.getpid()}: done, {fetched} pages", flush=True)
    return fetched


def demo(rate, seconds, workers):
    """The coordinator and the workers as separate Python programs; checks what they counted."""
    name = f"crawl-demo-{os.getpid()}"
    me = os.path.abspath(__file__)
    coord = subprocess.Popen([sys.executable, me, "coordinator", name, str(rate), str(seconds)],
                             stdout=subprocess.PIPE, text=True)
    procs = [subprocess.Popen([sys.executable, me, "worker", name], stdout=subprocess.PIPE,
                              text=True) for _ in range(workers)]
    outputs = [p.communicate(timeout=seconds + 30)[0] for p in [coord] + procs]
    codes = [p.returncode for p in [coord] + procs]
    for out in outputs:
        sys.stdout.write("".join(line + "\n" for line in out.splitlines()
                                 if "fetched https" not in line))
    if any(codes):
        print(f"crawler demo: a process failed, exit codes {codes}", file=sys.stderr)
        return 1
    total = int(re.search(r"coordinator: (\d+) fetches", outputs[0]).group(1))
    pages = [int(re.search(r"done, (\d+) pages", out).group(1)) for out in outputs[1:]]
    print(f"crawler demo: {workers} workers fetched {sum(pages)} pages {pages}; the throttle "
          f"counted {total}; at most {int(rate * seconds) + 1} allowed")
    if sum(pages) != total or total > rate * seconds + 1:
        print("crawler demo: FAIL", file=sys.stderr)
        return 1
    return 0


def main(argv):
    usage = __doc__.split("\n\n")[1]
    try:
        if len(argv) >= 2 and argv[0] == "coordinator":
            coordinator(argv[1], int(argv[2]) if len(argv) > 2 else 5,
                        float(argv[3]) if len(argv) > 3 else 30.0)
            return 0
        if len(argv) >= 2 and argv[0] == "worker":
            worker(argv[1], float(argv[2]) if len(argv) > 2 else 10.0)
            return 0
        if len(argv) >= 1 and argv[0] == "demo":
            return demo(int(argv[1]) if len(argv) > 1 else 20,
                        float(argv[2]) if len(argv) > 2 else 2.0,
                        int(argv[3]) if len(argv) > 3 else 3)
    except ValueError as e:  # a bad number on the command line, or a bad rate for the throttle
        print(f"crawler: {e}", file=sys.stderr)
        return 2
    except (OSError, mpthrottle.Error) as e:
        print(f"crawler: {e}", file=sys.stderr)
        return 1
    print(usage, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
