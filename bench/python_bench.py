#!/usr/bin/env python3
"""One Python harness for the Python module mpthrottle and the mp_throttle design peer.

Both throttles are driven by the same code, the way an mp_throttle program drives its throttle:
the throttle goes to the 4 worker processes of a multiprocessing.Pool as the initializer's
argument, and each worker loops `while not tank.kill_flag.is_set(): if tank.await_fuel(t): ...`.
The workers keep their own count (grants, first and last grant time, time.monotonic_ns, which is
CLOCK_MONOTONIC), so the figures do not rest on either throttle's monitor. Measured:

  accuracy   achieved vs target at 1,000, 10,000 and 50,000 per second, hardcap limit and one;
             achieved = (count - 1) / (last - first), as mpt::calibration::achieved_rate_per_sec
  has_fuel   the cost of one has_fuel() call from Python (timeit), when it returns False (no
             fuel) and when it returns True (fuel, with auto_emit)
  max_rate   the highest rate two Python workers reach with hardcap none (target 10,000,000/s)

The peer is bench/peers/mp_throttle_peer.py's Throttle (a filler process puts fuel into a
multiprocessing.Queue; _correction 0, no calibration); mpthrottle is imported from --build DIR's
python/ when it has one, else from the Python path (pip, cmake --install or the Debian package),
else from build/release/python or build/default/python of this repository. `mpt bench` runs it
from the programs' folder (build/<preset>/bench, or /usr/lib/mpthrottle when installed).

usage: python_bench.py [--quick] [--seconds S] [--repeat N] [--impl mpthrottle|peer|both]
                       [--rates R,R,...] [--hardcaps H,H] [--skip accuracy,has_fuel,max_rate]
                       [--start-method fork|spawn|forkserver] [--build DIR] [--json] [--out FILE]
  --quick   1 s runs, one repetition, fewer timeit calls (about a minute)
  --json    the JSON document on stdout (the table goes to stderr); --out FILE writes it too
Medians over --repeat runs (default 3). Exit 0 ok, 1 when a run fails, 2 on bad usage.
"""
import argparse
import json
import multiprocessing
import os
import platform
import statistics
import sys
import time
import timeit

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(HERE, "peers"))
import mp_throttle_peer  # noqa: E402  (bench/peers, put on the path just above)

SCHEMA = 1
WAIT_S = 0.1  # the workers' await_fuel timeout: a stopped peer never wakes them otherwise
MAX_RATE_TARGET = 10_000_000
IMPLS = {"mpthrottle": "mpthrottle (this repository's Python module)",
         "peer": "mp_throttle design (filler process + multiprocessing.Queue)"}

_tank = _ready = None


def _init(tank, ready):
    """The Pool initializer: keeps the throttle, as the seed's programs hand it over."""
    global _tank, _ready
    _tank, _ready = tank, ready


def _work():
    """One worker's loop; returns (grants, first grant ns, last grant ns)."""
    tank = _tank
    with _ready.get_lock():
        _ready.value += 1
    count = first = last = 0
    while not tank.kill_flag.is_set():
        if tank.await_fuel(WAIT_S):
            last = time.monotonic_ns()
            if count == 0:
                first = last
            count += 1
    return count, first, last


def import_mpthrottle(build):
    """The module, from --build DIR/python when it is there, else the Python path (the installed
    package: pip, cmake --install, the Debian package), else this repository's build trees."""
    candidates = [os.path.join(build, "python")] if build else []
    if not (build and os.path.isdir(os.path.join(build, "python", "mpthrottle"))):
        try:
            import mpthrottle
            return mpthrottle
        except ImportError:
            candidates += [os.path.join(ROOT, "build", b, "python") for b in ("release", "default")]
    for path in candidates:
        if os.path.isdir(os.path.join(path, "mpthrottle")):
            sys.path.insert(0, path)
            os.environ["PYTHONPATH"] = os.pathsep.join(  # for spawn and forkserver children
                [path] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
            import mpthrottle
            return mpthrottle
    sys.exit("python_bench: mpthrottle not found (pip install ./python, or build the target "
             f"mpthrottle_python and pass --build DIR); looked in {candidates}")


def make(impl, rate, hardcap, ctx, mpt):
    if impl == "mpthrottle":
        return mpt.Throttle(rate, 1, hardcap=hardcap)
    return mp_throttle_peer.Throttle(rate, 1, hardcap=hardcap, ctx=ctx)


def run_once(impl, rate, hardcap, workers, seconds, ctx, mpt):
    """workers Pool workers on one throttle for seconds; their count and the throttle's own."""
    tank = make(impl, rate, hardcap, ctx, mpt)
    if impl == "mpthrottle":  # which correction it took: none, explicit, or the file's
        snap = tank.snapshot()
        settings = {k: snap[k] for k in ("correction", "correction_source", "spin_lead_ns")}
    else:
        settings = {"correction": tank.correction, "correction_source": "explicit"}
    ready = ctx.Value("i", 0)
    with ctx.Pool(workers, initializer=_init, initargs=(tank, ready)) as pool:
        # One task per worker: a task runs until the kill flag, so no worker takes two.
        tasks = [pool.apply_async(_work) for _ in range(workers)]
        deadline = time.monotonic() + 60
        while ready.value < workers:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{impl}: the workers did not start within 60 s")
            time.sleep(0.01)
        tank.start()
        time.sleep(seconds)
        runtime, total, _, _ = tank.stop()
        results = [t.get(timeout=30) for t in tasks]
    count = sum(r[0] for r in results)
    firsts = [r[1] for r in results if r[0]]
    lasts = [r[2] for r in results if r[0]]
    achieved = None
    if count >= 2 and max(lasts) > min(firsts):
        achieved = (count - 1) / ((max(lasts) - min(firsts)) / 1e9)
    return {"worker_count": count, "throttle_total": total, "runtime_s": runtime,
            "achieved_rate_per_sec": achieved,
            "rel_error": None if achieved is None else achieved / rate - 1.0, **settings}


def summarize(runs, rate):
    rates = [r["achieved_rate_per_sec"] for r in runs if r["achieved_rate_per_sec"] is not None]
    median = statistics.median(rates) if rates else None
    return {"runs": runs, "median_achieved_rate_per_sec": median,
            "median_rel_error": None if median is None else median / rate - 1.0}


def has_fuel_cost(impl, fuel, calls, repeat, ctx, mpt):
    """Median seconds per has_fuel() call over repeat timeit rounds of calls calls each."""
    if impl == "mpthrottle":
        # No fuel: 1 per second (the first call takes the unit); fuel: far above any call rate.
        tank = mpt.Throttle(MAX_RATE_TARGET if fuel else 1, 1,
                            hardcap="none" if fuel else "limit")
        tank.start()
        tank.has_fuel()
    else:
        tank = mp_throttle_peer.Throttle(1, 1, ctx=ctx)
        tank.start(fill=False)  # the harness fills the gas: no filler could keep ahead of it
        if fuel:
            for _ in range(calls * repeat):
                tank.gas.put(1)
            while tank.gas.qsize() < calls * repeat:
                time.sleep(0.01)
    granted = [0]

    def call():
        granted[0] += tank.has_fuel()

    rounds = timeit.Timer(call).repeat(repeat=repeat, number=calls)
    tank.stop()
    expected = calls * repeat if fuel else 0
    if granted[0] != expected:
        raise RuntimeError(f"{impl}: has_fuel() returned True {granted[0]} times, not {expected}")
    return statistics.median(rounds) / calls


def fmt(v, spec):
    return "n/a" if v is None else format(v, spec)


def table(doc):
    lines = [f"python_bench: {doc['seconds']:g} s runs, {doc['repeat']} repetition(s), "
             f"{doc['workers']} Pool workers, start method {doc['start_method']}; medians",
             "", f"{'IMPL':<11} {'HARDCAP':<7} {'TARGET/s':>9} {'ACHIEVED/s':>12} {'ERROR':>9}"
             "  CORRECTION"]
    for a in doc["accuracy"]:
        err = a["median_rel_error"]
        first = a["runs"][0]
        lines.append(f"{a['impl']:<11} {a['hardcap']:<7} {a['target_per_sec']:>9,} "
                     f"{fmt(a['median_achieved_rate_per_sec'], '12,.1f')} "
                     f"{'n/a' if err is None else format(err * 100, '+8.3f') + '%':>9}"
                     f"  {first['correction']:.6g} ({first['correction_source'].split(' ')[0]})")
    if doc["has_fuel_us"]:
        lines += ["", f"{'IMPL':<11} {'has_fuel() -> False':>20} {'has_fuel() -> True':>20}"]
    for impl, h in doc["has_fuel_us"].items():
        lines.append(f"{impl:<11} {fmt(h['no_fuel'], '17.3f')} us {fmt(h['fuel'], '17.3f')} us")
    if doc["max_rate"]:
        lines += ["", f"{'IMPL':<11} {'2 WORKERS, HARDCAP NONE: ACHIEVED/s':>36}"]
    for impl, m in doc["max_rate"].items():
        lines.append(f"{impl:<11} {fmt(m['median_achieved_rate_per_sec'], '36,.0f')}")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seconds", type=float)
    ap.add_argument("--repeat", type=int)
    ap.add_argument("--impl", choices=["mpthrottle", "peer", "both"], default="both")
    ap.add_argument("--rates", default="1000,10000,50000")
    ap.add_argument("--hardcaps", default="limit,one")
    ap.add_argument("--skip", default="", help="comma-separated parts to leave out: "
                    "accuracy, has_fuel, max_rate")
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--start-method", choices=["fork", "spawn", "forkserver"], default="fork")
    ap.add_argument("--build")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--out")
    a = ap.parse_args()
    seconds = a.seconds or (1.0 if a.quick else 5.0)
    repeat = a.repeat or (1 if a.quick else 3)
    try:
        rates = [int(r) for r in a.rates.split(",")]
    except ValueError:
        ap.error("--rates: whole numbers separated by commas")
    if not 0 < seconds <= 600 or not 1 <= repeat <= 50 or not 1 <= a.workers <= 64 \
            or not all(1 <= r <= 1_000_000 for r in rates):
        ap.error("--seconds (0, 600], --repeat 1..50, --workers 1..64, --rates 1..1000000")
    hardcaps = a.hardcaps.split(",")
    skip = set(filter(None, a.skip.split(",")))
    if not set(hardcaps) <= {"limit", "one", "none"} or not skip <= {"accuracy", "has_fuel",
                                                                     "max_rate"}:
        ap.error("--hardcaps: limit, one, none; --skip: accuracy, has_fuel, max_rate")
    impls = ["mpthrottle", "peer"] if a.impl == "both" else [a.impl]
    mpt = import_mpthrottle(a.build) if "mpthrottle" in impls else None
    ctx = multiprocessing.get_context(a.start_method)
    calls = 20_000 if a.quick else 100_000
    say = (lambda m: print(m, file=sys.stderr, flush=True))

    doc = {"schema": SCHEMA, "kind": "mpthrottle-python-bench", "seconds": seconds,
           "repeat": repeat, "workers": a.workers, "start_method": a.start_method,
           "host": {"cpus": os.cpu_count(), "machine": platform.machine(),
                    "python": platform.python_version(), "kernel": platform.release()},
           "impls": {i: IMPLS[i] for i in impls},
           "mpthrottle_module": getattr(mpt, "__file__", None),
           "mpt_calibration_env": os.environ.get("MPT_CALIBRATION"),
           "accuracy": [], "has_fuel_us": {}, "max_rate": {}}
    try:
        for impl in impls:
            for hardcap in hardcaps if "accuracy" not in skip else []:
                for rate in rates:
                    say(f"python_bench: {impl}, hardcap {hardcap}, {rate}/s, {a.workers} workers, "
                        f"{seconds:g} s x {repeat}")
                    runs = [run_once(impl, rate, hardcap, a.workers, seconds, ctx, mpt)
                            for _ in range(repeat)]
                    doc["accuracy"].append({"impl": impl, "hardcap": hardcap,
                                            "target_per_sec": rate, **summarize(runs, rate)})
            if "has_fuel" not in skip:
                say(f"python_bench: {impl}, has_fuel() cost, {calls} calls x 5")
                # The peer's True path pays a queue round trip per call: fewer calls, shorter.
                fuel_calls = calls if impl == "mpthrottle" else calls // 5
                doc["has_fuel_us"][impl] = {
                    "no_fuel": has_fuel_cost(impl, False, calls, 5, ctx, mpt) * 1e6,
                    "fuel": has_fuel_cost(impl, True, fuel_calls, 5, ctx, mpt) * 1e6}
            if "max_rate" in skip:
                continue
            say(f"python_bench: {impl}, 2 workers, hardcap none, {MAX_RATE_TARGET}/s target")
            runs = [run_once(impl, MAX_RATE_TARGET, "none", 2, seconds, ctx, mpt)
                    for _ in range(repeat)]
            doc["max_rate"][impl] = {"workers": 2, "hardcap": "none",
                                     "target_per_sec": MAX_RATE_TARGET,
                                     **summarize(runs, MAX_RATE_TARGET)}
    except (OSError, RuntimeError) as e:
        print(f"python_bench: {e}", file=sys.stderr)
        return 1
    text = json.dumps(doc, indent=2)
    if a.out:
        with open(a.out, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    if a.json:
        print(text)
    print(table(doc), file=sys.stderr if a.json else sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
