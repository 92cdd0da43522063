#!/usr/bin/env python3
"""bench/assemble_report.py: collects one scripts/bench run into report.json (schema 2).

Reads what scripts/bench left in RAW:
    bm_<suite>.json                 Google Benchmark JSON (--benchmark_out_format=json)
    scenario-<hardcap>-<rate>.json  mpt_scenario --json (schema 2)
    peer-<hardcap>-<rate>.json      bench/peers/mp_throttle_peer.py --json (the same schema)
    pipeline.json                   bench/pipeline_compare.py --json (optional)
    host.json                       mpt calibrate --host --json: this host's identity
    calibration.json                mpt calibrate --show --json (optional; an error document when
                                    there is no file)
and writes one report: host, tool version, calibration in force, the suites (medians, each
benchmark with the floor it is measured against and its target), the scenarios and the peers.
docs/benchmarks.md ("Reports") documents the shape; `mpt report` reads it.

usage: assemble_report.py --raw DIR --out report.json --tool-version V [--quick]
Python 3 standard library only. Exit 0 ok, 1 when an input cannot be read.
"""
import argparse
import datetime
import glob
import json
import os
import re
import statistics
import sys

SCHEMA = 2  # 2: achieved rates are (count - 1) / (last - first), null with fewer than 2 grants
SCENARIO_SCHEMA = 2  # what mpt_scenario and the peer must write
KIND = "mpthrottle-bench-report"
UNIT_NS = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}

# (suite, benchmark) -> (floor, compare_by, target_ratio, target_cmp). The floor is the benchmark
# of the same suite whose cost the other is built on (bench/ratios.py's targets).
FLOORS = {
    ("bm_throttle", "BM_Throttle_HasFuel"): ("BM_Floor_ClockPlusCas", "time", 1.5, "<="),
    ("bm_throttle", "BM_Throttle_HasFuelAutoEmit"): ("BM_Floor_ClockPlusCas", "time", None, None),
    ("bm_throttle", "BM_Throttle_AwaitFuelAvailable"):
        ("BM_Floor_ClockPlusCas", "time", None, None),
    ("bm_throttle", "BM_Throttle_Emit"): ("BM_Floor_ClockPlusCas", "time", 2.5, "<="),
    ("bm_throttle", "BM_Contention_TwoProcessesThrottle"):
        ("BM_Contention_TwoProcessesBareCas", "ops_per_sec", 0.5, ">="),
    # A floor itself, but measured by its rate too: --compare puts two hosts' ops/s side by side.
    ("bm_throttle", "BM_Contention_TwoProcessesBareCas"): (None, "ops_per_sec", None, None),
    ("bm_throttle", "BM_Contention_TwoProcessesClockPlusCas"):
        ("BM_Contention_TwoProcessesBareCas", "ops_per_sec", None, None),
    ("bm_probe", "BM_Emit_ProbeAttached"): ("BM_Emit_ProbeDetached", "time", None, None),
    ("bm_probe", "BM_Emit_ProbeDetached"): ("BM_Emit_NoProbes", "time", None, None),
    ("bm_queue", "BM_Queue_TwoProcesses/capacity_msgs:64"):
        ("BM_Queue_PutGetSameProcess", "time", None, None),
    ("bm_queue", "BM_Queue_TwoProcesses/capacity_msgs:1024"):
        ("BM_Queue_PutGetSameProcess", "time", None, None),
}
# bm_probe_none (the same code built with no probe sites) is reported inside bm_probe, so that
# the probe's price can be measured against it.
MERGE = {"bm_probe_none": "bm_probe"}
RATE_COUNTERS = ("ops_per_sec", "msgs_per_sec", "items_per_second")

SCENARIO_FIELDS = (
    "hardcap", "rate_per_sec", "workers", "seconds", "target_total", "achieved_total",
    "achieved_rate_per_sec", "rel_error", "kernel_total", "kernel_achieved_rate_per_sec",
    "kernel_rel_error", "max_in_window", "interval_p50_ns", "interval_p99_ns", "interval_max_ns",
    "cpu_s_per_1000", "interval_histogram", "rate_series")


def benchmark_name(entry):
    """BM_X/capacity_msgs:64/real_time -> BM_X/capacity_msgs:64; /iterations:1 dropped too."""
    name = entry.get("run_name", entry["name"])
    parts = [p for p in name.split("/")
             if p not in ("real_time", "manual_time", "process_time")
             and not p.startswith(("iterations:", "repeats:", "min_time:"))]
    return "/".join(parts)


def read_suite(path):
    """Medians of one Google Benchmark JSON file: ([benchmark], [error message])."""
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    medians, runs, errors, order = {}, {}, [], []
    for e in data.get("benchmarks", []):
        name = benchmark_name(e)
        if name not in order:
            order.append(name)
        if e.get("error_occurred"):
            errors.append(f"{name}: {e.get('error_message', 'error')}")
            continue
        if e.get("run_type") == "aggregate":
            if e.get("aggregate_name") == "median":
                medians[name] = [e]
        else:
            runs.setdefault(name, []).append(e)
    out = []
    for name in order:
        entries = medians.get(name) or runs.get(name)
        if not entries:
            continue
        scale = UNIT_NS.get(entries[0].get("time_unit", "ns"), 1.0)
        b = {"name": name,
             "real_time_ns": statistics.median(x["real_time"] * scale for x in entries),
             "cpu_time_ns": statistics.median(x["cpu_time"] * scale for x in entries),
             "ops_per_sec": None}
        for key in RATE_COUNTERS:
            values = [x[key] for x in entries if key in x]
            if values:
                b["ops_per_sec"] = statistics.median(values)
                break
        out.append(b)
    return out, errors


def attach_floors(suite):
    names = {b["name"]: b for b in suite["benchmarks"]}
    for b in suite["benchmarks"]:
        floor, by, target, cmp = FLOORS.get((suite["name"], b["name"]), (None, "time", None, None))
        if by == "ops_per_sec" and b["ops_per_sec"] is None:
            floor, by, target, cmp = None, "time", None, None
        if floor is not None and (floor not in names or (
                by == "ops_per_sec" and names[floor]["ops_per_sec"] is None)):
            floor, target, cmp = None, None, None
        b.update({"floor": floor, "compare_by": by, "target_ratio": target, "target_cmp": cmp})


def read_suites(raw):
    suites = {}
    for path in sorted(glob.glob(os.path.join(raw, "bm_*.json"))):
        name = os.path.basename(path)[:-len(".json")]
        target = MERGE.get(name, name)
        s = suites.setdefault(target, {"name": target, "error": None, "benchmarks": []})
        try:
            benchmarks, errors = read_suite(path)
        except (OSError, ValueError, KeyError, TypeError) as e:
            errors, benchmarks = [f"cannot read {os.path.basename(path)}: {e}"], []
        s["benchmarks"].extend(benchmarks)
        if errors:
            s["error"] = "; ".join(filter(None, [s["error"]] + errors))
    for s in suites.values():
        attach_floors(s)
    return list(suites.values())


def read_scenarios(raw, prefix):
    out = []
    for path in glob.glob(os.path.join(raw, f"{prefix}-*.json")):
        with open(path, encoding="utf-8") as f:
            d = json.load(f)
        if "error" in d:
            raise ValueError(f"{os.path.basename(path)}: {d['error']}")
        if d.get("schema") != SCENARIO_SCHEMA:
            raise ValueError(f"{os.path.basename(path)}: schema {d.get('schema')}, expected "
                             f"{SCENARIO_SCHEMA} (made by another version)")
        out.append({k: d[k] for k in SCENARIO_FIELDS})
    rank = {"limit": 0, "one": 1, "none": 2}
    out.sort(key=lambda s: (rank.get(s["hardcap"], 3), s["rate_per_sec"]))
    return out


HOST_FIELDS = {"hostname": str, "kernel": str, "cpu_model": str, "cores": int,
               "clocksource": str}


def host_info(path):
    """The host as the library identifies it (mpt calibrate --host --json): never computed here,
    so that the report names its host exactly as a calibration file does."""
    with open(path, encoding="utf-8") as f:
        d = json.load(f)
    if isinstance(d, dict) and "error" in d:
        raise ValueError(f"{os.path.basename(path)}: {d['error']}")
    host = d.get("host") if isinstance(d, dict) else None
    if not isinstance(host, dict):
        raise ValueError(f"{os.path.basename(path)}: no host object")
    out = {}
    for key, kind in HOST_FIELDS.items():
        if not isinstance(host.get(key), kind) or isinstance(host.get(key), bool):
            raise ValueError(f"{os.path.basename(path)}: host.{key}: expected {kind.__name__}")
        out[key] = host[key]
    return out


def calibration_info(path):
    try:
        with open(path, encoding="utf-8") as f:
            d = json.load(f)
    except (OSError, ValueError):
        return {"path": "", "in_force": False, "note": "not known (mpt calibrate --show failed)"}
    if "error" in d:
        m = re.search(r"calibration file (\S+)", d["error"])
        return {"path": m.group(1) if m else "", "in_force": False,
                "note": "no calibration file: throttles run without a correction or spin lead"}
    c = d.get("calibration", {})
    if d.get("in_force"):
        note = (f"made {c.get('created_utc', '?')}, {len(c.get('bands', []))} bands, "
                f"ground truth {c.get('ground_truth', '?')}")
    else:
        note = f"ignored: {d.get('ignored_because', 'not for this host')}"
    return {"path": d.get("path", ""), "in_force": bool(d.get("in_force")), "note": note}


def pipeline_info(path):
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        d = json.load(f)
    return {"workers": d["workers"], "items": d["items"],
            "mpt_items_per_sec": d["mpt_items_per_sec_1m"],
            "imap_chunk1_items_per_sec": d["imap_chunk1_items_per_sec"],
            "imap_chunk1000_items_per_sec": d["imap_chunk1000_items_per_sec"]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--raw", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--tool-version", required=True)
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    try:
        peer_scenarios = read_scenarios(a.raw, "peer")
        report = {
            "schema": SCHEMA,
            "kind": KIND,
            "created_utc": datetime.datetime.now(datetime.timezone.utc).strftime(
                "%Y-%m-%dT%H:%M:%SZ"),
            "tool_version": a.tool_version,
            "quick": a.quick,
            "host": host_info(os.path.join(a.raw, "host.json")),
            "calibration": calibration_info(os.path.join(a.raw, "calibration.json")),
            "suites": read_suites(a.raw),
            "scenarios": read_scenarios(a.raw, "scenario"),
            "peers": {
                "throttle": {
                    "impl": "Python, the mp_throttle design: a filler process putting fuel into a "
                            "multiprocessing.Queue every per/max_n seconds, workers taking from it "
                            "(bench/peers/mp_throttle_peer.py)",
                    "note": "Same scenarios, uncalibrated (correction 0); its CPU time counts "
                            "every process of the design (filler, workers, monitor).",
                    "scenarios": peer_scenarios,
                } if peer_scenarios else None,
                "pipeline": pipeline_info(os.path.join(a.raw, "pipeline.json")),
            },
        }
    except (OSError, ValueError, KeyError, TypeError) as e:
        print(f"assemble_report.py: {e}", file=sys.stderr)
        return 1
    tmp = a.out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=1)
        f.write("\n")
    os.replace(tmp, a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
