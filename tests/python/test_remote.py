"""RemoteThrottle (connect()) against a real redis-server on a free loopback port."""
import multiprocessing
import os
import pickle
import time

import pytest

import mpthrottle
import workers
from conftest import start_redis


@pytest.fixture
def url(redis_port, unique):
    return f"redis://127.0.0.1:{redis_port}/{unique}"


def test_connect_start_take_stop(url):
    r = mpthrottle.connect(url, 20, 1)
    assert isinstance(r, mpthrottle.RemoteThrottle)
    assert r.state == "created" and not r.running
    assert r.start() is None
    assert r.running
    assert r.has_fuel()
    assert r.await_fuel(2) and r.await_fuel(t=None)
    r.await_fuel(-1)  # only looks (has_fuel)
    r.emit()
    for rate in (r.latest(), r.mean(), r.lo_hi(), r.hi_lo()):
        assert isinstance(rate, tuple) and len(rate) == 2
    snap = r.snapshot()
    assert snap["max_n"] == 20 and snap["state"] == "running"
    runtime, total, _, _ = r.stop()
    assert total == r.total() >= 4
    assert r.kill_flag.is_set()
    assert r.name == url.rsplit("/", 1)[1]
    assert r.interval == pytest.approx(0.05)
    assert r.round_trips() > 0 and r.last_error() == ""


def test_keywords_and_attach(url):
    r = mpthrottle.connect(url, 10, 2, hardcap="one", as_monitor=True, auto_emit=False,
                           spin_lead=0.0001, command_timeout=1, connect_timeout=1,
                           on_unavailable="fail_closed", reconnect_backoff_max=0.5)
    s = r.snapshot()
    assert (s["max_n"], s["per_s"], s["hardcap"], s["auto_emit"]) == (10, 2.0, "one", False)
    again = mpthrottle.connect(url)  # attaches: the stored settings
    assert again.snapshot()["hardcap"] == "one" and again.id == r.id
    r.set_rate(20, 1)
    assert again.snapshot()["max_n"] == 20


def test_bad_arguments(redis_port, unique):
    with pytest.raises(ValueError):
        mpthrottle.connect("http://nowhere/x", 4, 1)
    with pytest.raises(ValueError):
        mpthrottle.connect(f"redis://127.0.0.1:{redis_port}/{unique}", 0, 1)
    with pytest.raises(ValueError, match="'limit', 'one' or 'none'"):
        mpthrottle.connect(f"redis://127.0.0.1:{redis_port}/{unique}", 4, 1, hardcap="lmit")
    with pytest.raises(ValueError, match="on_unavailable"):
        mpthrottle.connect(f"redis://127.0.0.1:{redis_port}/{unique}", 4, 1,
                           on_unavailable="maybe")
    with pytest.raises(ValueError):
        mpthrottle.connect(f"redis://127.0.0.1:{redis_port}/{unique}", 4, 1,
                           command_timeout=float("nan"))
    with pytest.raises(TypeError):
        mpthrottle.connect(f"redis://127.0.0.1:{redis_port}/{unique}", 4, 1, on_error=3)
    with pytest.raises(mpthrottle.RemoteError):
        mpthrottle.connect(f"redis://127.0.0.1:{redis_port}/{unique}")  # none of that name


def test_unreachable_server_is_a_remote_error(unique):
    from conftest import free_port
    errors = []
    with pytest.raises(mpthrottle.RemoteError) as e:
        mpthrottle.connect(f"redis://127.0.0.1:{free_port()}/{unique}", 4, 1,
                           connect_timeout=0.2, on_error=errors.append)
    assert isinstance(e.value, mpthrottle.Error)


def test_password_never_shown_but_pickling_reconnects(unique):
    p, port = start_redis(("--requirepass", "s3cret-pw"))
    try:
        url = f"redis://:s3cret-pw@127.0.0.1:{port}/{unique}"
        r = mpthrottle.connect(url, 100, 1)
        assert "s3cret-pw" not in r.url() and "s3cret-pw" not in repr(r)
        r2 = pickle.loads(pickle.dumps(r))
        assert r2.id == r.id
        with pytest.raises(mpthrottle.RemoteError) as e:
            mpthrottle.connect(f"redis://:wrong-pw@127.0.0.1:{port}/{unique}", 100, 1)
        assert "wrong-pw" not in str(e.value)
    finally:
        p.terminate()
        p.wait()


def test_pickled_to_spawned_processes(url):
    ctx = multiprocessing.get_context("spawn")
    r = mpthrottle.connect(url, 1000, 1)
    r.start()
    results = ctx.Queue()
    ps = [ctx.Process(target=workers.take, args=(r, 10, results)) for _ in range(2)]
    for p in ps:
        p.start()
    got = [results.get(timeout=60) for _ in ps]
    for p in ps:
        p.join(60)
    assert got == [10, 10]
    assert r.total() == 20
    with pytest.raises(TypeError):
        pickle.dumps(r.kill_flag)  # a remote throttle's kill flag is this process's own


def test_a_lost_server_calls_on_error_and_has_fuel_says_false(unique):
    p, port = start_redis()
    try:
        messages = []
        r = mpthrottle.connect(f"redis://127.0.0.1:{port}/{unique}", 1000, 1,
                               on_error=messages.append, connect_timeout=0.2,
                               command_timeout=0.2)
        r.start()
        assert r.has_fuel()
    finally:
        p.terminate()
        p.wait()
    assert not r.has_fuel()
    assert not r.await_fuel(0.1)
    assert r.last_error() != ""
    assert messages and all(isinstance(m, str) for m in messages)
    with pytest.raises(mpthrottle.RemoteError):
        r.stop()
    assert r.kill_flag.is_set(), "set all the same"


def test_on_error_may_call_the_accessors_while_another_thread_waits_for_them(unique):
    # on_error runs on the thread that saw the failure; it used to be called with the throttle's
    # lock held, so an on_error that calls last_error() (or waits for the GIL while the main
    # thread is in last_error()) hung for ever.
    import threading
    p, port = start_redis()
    seen = []
    r = None

    def on_error(message):
        seen.append((message, r.last_error(), r.round_trips()))

    try:
        r = mpthrottle.connect(f"redis://127.0.0.1:{port}/{unique}", 1000, 1,
                               on_error=on_error, connect_timeout=0.2, command_timeout=0.2)
        r.start()
    finally:
        p.terminate()
        p.wait()
    stop = threading.Event()

    def hammer():
        while not stop.is_set():
            r.has_fuel()

    threads = [threading.Thread(target=hammer) for _ in range(2)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        r.last_error()
        r.round_trips()
    stop.set()
    for t in threads:
        t.join(timeout=10)
        assert not t.is_alive(), "a thread hung in has_fuel()"
    assert seen, "on_error was called"
    assert seen[0][1] != "", "on_error saw last_error() already set"
