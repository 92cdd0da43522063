#!/usr/bin/env python3
"""The peer of mpt_scenario: a throttle built the way mp_throttle is built, on the same scenario.

mp_throttle's design (shared/seeds/mp_throttle-README.md and -api.txt), re-implemented here with
the standard library only:

  * a *filler* process puts one unit of fuel into a multiprocessing.Queue (the "gas") every
    per / max_n * (1 - correction) seconds, with time.sleep between puts, as the seed does;
    hardcap "limit": it puts only while the queue holds fewer than max_n units; "one": fewer
    than 1; "none": always;
  * each *worker* process takes fuel with gas.get() (await_fuel) and, with auto_emit as in the
    seed's default, passes the grant's timestamp to a *monitor* process through a second Queue;
  * stop() sets the kill flag; the filler and the workers leave, the monitor counts what it got.

The scenario is mpt_scenario's: W workers, RATE per second (max_n RATE, per 1 s), S seconds, every
grant's CLOCK_MONOTONIC time (time.monotonic_ns) recorded by the worker that took it. The JSON has
the fields of `mpt_scenario --json` (schema 2) where they apply: achieved_total counts the grants
stamped between the filler's start and stop; achieved_rate_per_sec is (achieved_total - 1) /
(last grant - first grant), as mpt measures itself (achieved_rate_per_sec() below), and rel_error
= achieved_rate_per_sec / rate - 1, both null with fewer than two grants; mean_rate_per_sec is
achieved_total / runtime (the seed's summary, never the error); max_in_window, interval
percentiles, interval_histogram, rate_series, cpu_s_per_1000. CPU time is that of every
process of the design (filler, workers and monitor: RUSAGE_CHILDREN), because the filler is the
price of the design; mpt needs no filler.

The same design as an object with the seed's API, class Throttle, serves bench/python_bench.py,
which drives it and the Python module mpthrottle with one harness.

No calibration: mp_throttle's _calibrate() would fit a correction for this host; this peer runs
with --correction (default 0), as mpt_scenario runs with the library's own rule.

usage: mp_throttle_peer.py --rate N [--workers 4] [--seconds 5] [--hardcap limit|one|none]
                           [--correction C] [--json]
Exit 0 ok, 1 runtime error, 2 bad usage.
"""
import argparse
import json
import math
import multiprocessing
import queue
import resource
import sys
import time

SCHEMA = 2  # mpt_scenario's: fence-post-free achieved rates, null below two grants
SERIES_BIN_NS = 100_000_000  # rate_series: grants per 100 ms
WINDOW_NS = 1_000_000_000    # the window of the rate: per = 1 s


def filler(gas, kill_flag, started_ns, max_n, per, hardcap, correction):
    """Puts fuel into the gas queue every per/max_n seconds until the kill flag is set."""
    interval = per / max_n * (1.0 - correction)
    cap = max_n if hardcap == "limit" else 1 if hardcap == "one" else None
    started_ns.value = time.monotonic_ns()
    while not kill_flag.is_set():
        if cap is None or gas.qsize() < cap:
            gas.put(1)
        time.sleep(interval)


def worker(gas, emissions, kill_flag, results, index):
    """await_fuel() in a loop; every grant's time is kept here and passed to the monitor."""
    stamps = []
    while not kill_flag.is_set():
        try:
            gas.get(timeout=0.05)
        except queue.Empty:
            continue
        t = time.monotonic_ns()
        stamps.append(t)
        emissions.put(t)  # auto_emit
    results.put((index, stamps))


def monitor(emissions, results):
    """Counts the emissions until the sentinel None (the seed's monitoring process)."""
    total = 0
    while True:
        t = emissions.get()
        if t is None:
            break
        total += 1
    results.put(("monitor", total))


class Throttle:
    """The seed's Throttle API (shared/seeds/mp_throttle-api.txt) on this design, for harnesses
    that drive a throttle object from Python worker code as mp_throttle's users do
    (bench/python_bench.py): start() starts the filler and the monitor, has_fuel() and
    await_fuel(t) take a unit from the gas queue and, with auto_emit, pass its time to the monitor,
    stop() sets kill_flag and returns (runtime, total, mean interval, mean rate). It travels to
    workers as mp_throttle's does: as a Process or Pool initializer argument (the queues and the
    event go by inheritance). No latest()/mean() and no calibration: _correction is given."""

    def __init__(self, max_n, per=1, hardcap="limit", _correction=0.0, auto_emit=True, ctx=None):
        ctx = ctx or multiprocessing.get_context()
        self.max_n, self.per, self.hardcap = max_n, per, hardcap
        self.correction, self.auto_emit = _correction, auto_emit
        self.gas, self.emissions, self._results = ctx.Queue(), ctx.Queue(), ctx.Queue()
        self.kill_flag = ctx.Event()
        self._started_ns = ctx.Value("q", 0)
        self._ctx, self._filler, self._monitor = ctx, None, None
        self.start_time = None

    def __getstate__(self):  # the processes and the context stay with the creator
        state = dict(self.__dict__)
        state.update(_ctx=None, _filler=None, _monitor=None)
        return state

    def start(self, fill=True):
        """Starts the monitor and (unless fill is False: a harness fills the gas itself) the
        filler."""
        self._monitor = self._ctx.Process(target=monitor, args=(self.emissions, self._results),
                                          name="monitor", daemon=True)
        self._monitor.start()
        if fill:
            self._filler = self._ctx.Process(
                target=filler, args=(self.gas, self.kill_flag, self._started_ns, self.max_n,
                                     self.per, self.hardcap, self.correction),
                name="filler", daemon=True)
            self._filler.start()
        self.start_time = time.time()

    def stop(self):
        self.kill_flag.set()
        if self._filler is not None:
            self._filler.join()
        runtime = time.time() - self.start_time
        self.emissions.put(None)
        _, total = self._results.get()
        self._monitor.join()
        while True:  # empties the gas, as the seed's stop() does
            try:
                self.gas.get_nowait()
            except queue.Empty:
                break
        return runtime, total, runtime / total if total else 0.0, total / runtime

    def has_fuel(self):
        try:
            self.gas.get_nowait()
        except queue.Empty:
            return False
        if self.auto_emit:
            self.emit()
        return True

    def await_fuel(self, t=None):
        try:
            self.gas.get(timeout=t)
        except queue.Empty:
            return False
        if self.auto_emit:
            self.emit()
        return True

    def emit(self, timestamp=None):
        self.emissions.put(time.time() if timestamp is None else timestamp)


def achieved_rate_per_sec(count, first_ns, last_ns):
    """(count - 1) / (last - first) per second, None when count < 2 or last <= first: the
    definition of mpt::calibration::achieved_rate_per_sec (lib/src/core/calibration.cpp), free of the
    unit a throttle gives at its start."""
    if count < 2 or last_ns <= first_ns:
        return None
    return (count - 1) / ((last_ns - first_ns) / 1e9)


def percentile(sorted_values, q):
    """The nearest-rank percentile, as lib/src/core/calibration.cpp computes it."""
    if not sorted_values:
        return 0
    rank = min(max(math.ceil(q * len(sorted_values)), 1), len(sorted_values))
    return sorted_values[rank - 1]


def max_in_window(sorted_times, width):
    best = j = 0
    for i, t in enumerate(sorted_times):
        j = max(j, i)
        while j < len(sorted_times) and sorted_times[j] < t + width:
            j += 1
        best = max(best, j - i)
    return best


def interval_histogram(gaps):
    counts = [0] * 64
    for g in gaps:
        counts[max(g, 1).bit_length() - 1] += 1
    nonzero = [k for k, c in enumerate(counts) if c]
    if not nonzero:
        return []
    return [{"lo_ns": 1 << k, "hi_ns": 1 << (k + 1), "count": counts[k]}
            for k in range(nonzero[0], nonzero[-1] + 1)]


def cpu_children():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run(rate, workers, seconds, hardcap, correction):
    ctx = multiprocessing.get_context("fork")
    gas, emissions, results = ctx.Queue(), ctx.Queue(), ctx.Queue()
    kill_flag = ctx.Event()
    started_ns = ctx.Value("q", 0)
    cpu_before = cpu_children()
    mon = ctx.Process(target=monitor, args=(emissions, results), name="monitor")
    mon.start()
    procs = [ctx.Process(target=worker, args=(gas, emissions, kill_flag, results, w),
                         name=f"worker-{w}") for w in range(workers)]
    for p in procs:
        p.start()
    fill = ctx.Process(target=filler, args=(gas, kill_flag, started_ns, rate, 1.0, hardcap,
                                            correction), name="filler")
    fill.start()
    while started_ns.value == 0:
        time.sleep(0.001)
    start_ns = started_ns.value
    end_ns = start_ns + int(seconds * 1e9)
    while (now := time.monotonic_ns()) < end_ns:
        time.sleep(min(0.1, (end_ns - now) / 1e9))
    kill_flag.set()
    stop_ns = time.monotonic_ns()

    stamps = []
    for _ in range(workers):  # drain before join: a process with queued data cannot exit
        _, s = results.get()
        stamps.extend(s)
    for p in procs:
        p.join()
    emissions.put(None)
    key, monitor_total = results.get()
    assert key == "monitor"
    mon.join()
    fill.join()
    failed = [p for p in procs + [mon, fill] if p.exitcode != 0]
    if failed:
        raise RuntimeError(f"{failed[0].name} exited with {failed[0].exitcode}")
    cpu_s = cpu_children() - cpu_before

    times = sorted(t for t in stamps if start_ns <= t <= stop_ns)
    runtime_s = (stop_ns - start_ns) / 1e9
    achieved = len(times)
    achieved_rate = achieved_rate_per_sec(achieved, times[0], times[-1]) if times else None
    gaps = sorted(b - a for a, b in zip(times, times[1:]))
    bins = max(1, math.floor(runtime_s * 1e9 / SERIES_BIN_NS + 1e-6))  # whole bins only
    series = [0] * bins
    for t in times:
        if (t - start_ns) // SERIES_BIN_NS < bins:
            series[(t - start_ns) // SERIES_BIN_NS] += 1
    return {
        "schema": SCHEMA,
        "impl": "python mp_throttle design (filler process + multiprocessing.Queue)",
        "rate_per_sec": rate,
        "per_s": 1.0,
        "workers": workers,
        "seconds": seconds,
        "hardcap": hardcap,
        "correction": correction,
        "target_total": rate * seconds,
        "achieved_total": achieved,
        "monitor_total": monitor_total,
        "recorded_total": len(stamps),
        "runtime_s": runtime_s,
        "mean_rate_per_sec": achieved / runtime_s if runtime_s > 0 else 0.0,
        "first_grant_ns": times[0] if times else None,
        "last_grant_ns": times[-1] if times else None,
        "achieved_rate_per_sec": achieved_rate,
        "rel_error": None if achieved_rate is None else achieved_rate / rate - 1.0,
        "max_in_window": max_in_window(times, WINDOW_NS),
        "window_s": WINDOW_NS / 1e9,
        "interval_p50_ns": percentile(gaps, 0.50),
        "interval_p99_ns": percentile(gaps, 0.99),
        "interval_max_ns": gaps[-1] if gaps else 0,
        "cpu_s": cpu_s,
        "cpu_s_per_1000": cpu_s / achieved * 1000 if achieved else 0.0,
        "probe": "none",
        "probe_note": "a Python peer: no USDT probes",
        "kernel_total": None,
        "kernel_achieved_rate_per_sec": None,
        "kernel_rel_error": None,
        "interval_histogram": interval_histogram(gaps),
        "rate_series": {"bin_s": SERIES_BIN_NS / 1e9, "counts": series},
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=int, required=True)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--hardcap", choices=["limit", "one", "none"], default="limit")
    ap.add_argument("--correction", type=float, default=0.0)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if not 1 <= a.rate <= 10_000_000 or not 1 <= a.workers <= 256 or not 0 < a.seconds <= 3600 \
            or not -1 < a.correction < 1:
        ap.error("--rate 1..10000000, --workers 1..256, --seconds (0, 3600], -1 < --correction < 1")
    try:
        r = run(a.rate, a.workers, a.seconds, a.hardcap, a.correction)
    except (OSError, RuntimeError) as e:
        print(json.dumps({"error": str(e)}) if a.json else f"mp_throttle_peer: {e}",
              file=sys.stdout if a.json else sys.stderr)
        return 1
    if a.json:
        print(json.dumps(r, indent=2))
    else:
        print(f"peer: rate {a.rate}/s, {a.workers} workers, {a.seconds:g} s, hardcap {a.hardcap}")
        for key in ("target_total", "achieved_total", "monitor_total", "achieved_rate_per_sec",
                    "rel_error", "mean_rate_per_sec", "max_in_window", "interval_p50_ns",
                    "interval_p99_ns", "interval_max_ns", "cpu_s_per_1000"):
            print(f"{key:<24} {'n/a' if r[key] is None else format(r[key], '.6g'):>16}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
