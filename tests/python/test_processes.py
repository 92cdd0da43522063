"""Processes and threads on one throttle: pickling under every start method (Pool initializer
and task arguments, Process arguments), stop() from another process or thread, the GIL."""
import multiprocessing
import threading
import time

import pytest

import mpthrottle
import workers

METHODS = ["fork", "spawn", "forkserver"]


@pytest.mark.parametrize("method", METHODS)
def test_a_process_argument_attaches_the_same_throttle(method):
    ctx = multiprocessing.get_context(method)
    t = mpthrottle.Throttle(1000, 1)
    t.start()
    results = ctx.Queue()
    ps = [ctx.Process(target=workers.take, args=(t, 25, results)) for _ in range(2)]
    for p in ps:
        p.start()
    got = [results.get(timeout=60) for _ in ps]
    for p in ps:
        p.join(60)
        assert p.exitcode == 0
    assert got == [25, 25]
    assert t.total() == 50, "the children's units were counted in the parent's throttle"


@pytest.mark.parametrize("method", METHODS)
def test_pool_initializer_and_task_arguments(method):
    ctx = multiprocessing.get_context(method)
    t = mpthrottle.Throttle(1000, 1)
    t.start()
    with ctx.Pool(2, initializer=workers.pool_init, initargs=(t,)) as pool:
        assert all(pool.map(workers.pool_take, range(20)))
        names = pool.map(workers.name_of, [t] * 4)
    assert set(names) == {(t.name, t.id)}
    assert t.total() == 20


def test_a_kill_flag_pickled_alone_is_the_throttles():
    ctx = multiprocessing.get_context("spawn")
    t = mpthrottle.Throttle(4, 1)
    p = ctx.Process(target=workers.stop_after, args=(t, 0))
    p.start()
    p.join(60)
    assert t.kill_flag.wait(30), "the child's stop() set the parent's kill flag"


def test_stop_in_another_process_releases_a_blocked_await_fuel():
    ctx = multiprocessing.get_context("spawn")
    t = mpthrottle.Throttle(1, 100)
    t.start()
    assert t.has_fuel()
    p = ctx.Process(target=workers.stop_after, args=(t, 0.5))
    p.start()
    assert t.await_fuel() is False, "the next slot was 100 s away: released by the stop"
    p.join(60)
    assert p.exitcode == 0
    assert t.state == "stopped"


def test_stop_in_another_thread_releases_blocked_threads():
    t = mpthrottle.Throttle(1, 100)
    t.start()
    assert t.has_fuel()
    got = []
    ws = [threading.Thread(target=lambda: got.append(t.await_fuel())) for _ in range(3)]
    for w in ws:
        w.start()
    time.sleep(0.2)
    t.stop()
    for w in ws:
        w.join(30)
    assert got == [False] * 3


def test_a_thread_blocked_in_await_fuel_does_not_hold_the_gil():
    t = mpthrottle.Throttle(1, 100)
    t.start()
    assert t.has_fuel()
    w = threading.Thread(target=t.await_fuel)
    w.start()
    spins = 0
    end = time.monotonic() + 0.3
    while time.monotonic() < end:  # Python code runs beside the blocked thread
        spins += 1
    assert spins > 1000
    e = threading.Thread(target=t.kill_flag.wait)
    e.start()
    assert w.is_alive() and e.is_alive()
    t.stop()
    w.join(30)
    e.join(30)
    assert not w.is_alive() and not e.is_alive()


def test_threads_and_processes_on_one_throttle_count_exactly():
    ctx = multiprocessing.get_context("forkserver")
    t = mpthrottle.Throttle(200, 1)
    results = ctx.Queue()
    ps = [ctx.Process(target=workers.take_until_killed, args=(t, results)) for _ in range(2)]
    thread_counts = []
    ts = [threading.Thread(target=lambda: thread_counts.append(workers.take_until_killed(t)))
          for _ in range(2)]
    for p in ps:
        p.start()
    for w in ts:
        w.start()
    t.start()
    time.sleep(1.5)
    runtime, total, _, _ = t.stop()
    counts = [results.get(timeout=60) for _ in ps]
    for p in ps:
        p.join(60)
    for w in ts:
        w.join(60)
    print(f"processes {counts}, threads {thread_counts}, total {total} in {runtime:.3f} s")
    assert sum(counts) + sum(thread_counts) == total, "every unit taken was counted, once"
    assert total <= 200 * runtime + 200, "never over the rate and its burst"
    assert all(c > 0 for c in counts + thread_counts)
