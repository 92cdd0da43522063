"""RemoteThrottle leases from Python (max_lease, release(), the report at a process's end),
against a real redis-server on a free loopback port."""
import multiprocessing
import os
import pickle
import subprocess
import sys
import time

import pytest

import mpthrottle
import workers


@pytest.fixture
def url(redis_port, unique):
    return f"redis://127.0.0.1:{redis_port}/{unique}"


def script_calls(port):
    """The Lua script calls the server has run (INFO commandstats)."""
    out = subprocess.run(["redis-cli", "-p", str(port), "INFO", "commandstats"],
                         capture_output=True, text=True, check=True, timeout=30).stdout
    calls = 0
    for line in out.splitlines():
        name, _, stats = line.partition(":")
        if name in ("cmdstat_evalsha", "cmdstat_eval", "cmdstat_fcall"):
            calls += int(stats.split(",")[0].split("=")[1])
    return calls


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_workers_report_their_leased_grants_when_they_end(url, method):
    # Each worker takes units fast, so it leases slots and reports what it was granted with its
    # next call. Its last grants have no next call: the module's exit hook (release()) reports
    # them when multiprocessing ends the process with os._exit after run().
    ctx = multiprocessing.get_context(method)
    r = mpthrottle.connect(url, 100_000, 1)
    r.start()
    stop, results = ctx.Event(), ctx.Queue()
    ps = [ctx.Process(target=workers.take_until_stopped, args=(r, stop, results))
          for _ in range(4)]
    for p in ps:
        p.start()
    time.sleep(1.0)
    stop.set()
    got = [results.get(timeout=60) for _ in ps]
    for p in ps:
        p.join(60)
        assert p.exitcode == 0
    assert all(g > 0 for g in got), got
    assert r.total() == sum(got)
    assert r.stop()[1] == sum(got)


def test_a_pool_reports_when_its_workers_end(url):
    ctx = multiprocessing.get_context("fork")
    r = mpthrottle.connect(url, 100_000, 1)
    r.start()
    with ctx.Pool(4, initializer=workers.pool_init, initargs=(r,)) as pool:
        got = sum(pool.map(workers.pool_take, range(2000), chunksize=50))
        pool.close()
        pool.join()  # the workers end (after their exit hooks) before join returns
    assert got == 2000
    assert r.total() == got


def test_a_plain_interpreter_reports_at_exit(url):
    code = ("import sys, mpthrottle\n"
            "r = mpthrottle.connect(sys.argv[1], 100_000, 1)\n"
            "r.start()\n"
            "print(sum(1 for _ in range(3000) if r.await_fuel(1)))\n")
    out = subprocess.run([sys.executable, "-c", code, url], capture_output=True,
                         text=True, timeout=120, env=os.environ)
    assert out.returncode == 0, out.stderr
    assert mpthrottle.connect(url).total() == int(out.stdout) == 3000


def test_release_reports_at_once(url):
    r = mpthrottle.connect(url, 100_000, 1)
    r.start()
    got = sum(1 for _ in range(500) if r.await_fuel(1))
    assert r.release() is None
    assert r.total() == got == 500
    r.release()  # nothing left to report: no change
    assert r.total() == 500


def test_max_lease_one_is_one_script_call_per_grant(redis_port, unique):
    r = mpthrottle.connect(f"redis://127.0.0.1:{redis_port}/{unique}", 100_000, 1, max_lease=1)
    r.start()
    r.await_fuel(1)  # the script is loaded and run once before counting
    calls, trips = script_calls(redis_port), r.round_trips()
    got = sum(1 for _ in range(500) if r.await_fuel(1))
    assert got == 500
    assert script_calls(redis_port) - calls == 500
    assert r.round_trips() - trips == 500


def test_max_lease_is_checked_and_travels_in_the_pickle(url):
    for bad in (0, -1, 4097):
        with pytest.raises(ValueError, match="max_lease"):
            mpthrottle.connect(url, 100, 1, max_lease=bad)
    r = mpthrottle.connect(url, 100, 1, max_lease=4096)
    r1 = mpthrottle.connect(url, max_lease=1)
    state = r1.__getstate__()
    assert state[1][-1] == 1
    assert pickle.loads(pickle.dumps(r1)).id == r.id
    # A pickle from before max_lease (6 settings) still loads, with the default.
    old = mpthrottle.RemoteThrottle.__new__(mpthrottle.RemoteThrottle)
    old.__setstate__((state[0], state[1][:6]))
    assert old.id == r.id and old.__getstate__()[1][-1] == 256
    with pytest.raises(ValueError, match="not a pickled RemoteThrottle"):
        mpthrottle.RemoteThrottle.__new__(mpthrottle.RemoteThrottle).__setstate__(
            (state[0], state[1][:5]))
