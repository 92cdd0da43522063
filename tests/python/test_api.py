"""Every method and keyword argument of the seed's API, and the extras, in one process."""
import pickle
import pydoc
import threading
import time

import pytest

import mpthrottle


def test_start_stop_returns_the_seeds_summary():
    t = mpthrottle.Throttle(100, 1)
    assert t.state == "created" and not t.running
    t.start()
    assert t.state == "running" and t.running
    assert t.has_fuel()
    runtime, total, mean_interval, mean_rate = t.stop()
    assert t.state == "stopped"
    assert total == 1 and isinstance(total, int)
    assert runtime > 0 and mean_interval == pytest.approx(runtime)
    assert mean_rate == pytest.approx(1 / runtime)


def test_has_fuel_takes_units_without_waiting():
    t = mpthrottle.Throttle(4, 100)
    assert not t.has_fuel(), "not before start()"
    t.start()
    assert t.has_fuel()
    assert not t.has_fuel(), "one unit at start"
    assert not t.has_fuel(0)
    assert t.total() == 1


def test_await_fuel_waits_for_its_slot_or_waits_out_its_timeout():
    t = mpthrottle.Throttle(20, 1)  # a slot every 50 ms
    t.start()
    assert t.await_fuel()
    assert t.await_fuel(1.0), "the next slot is within the timeout"
    assert t.await_fuel(t=None)
    t100 = mpthrottle.Throttle(1, 100)
    t100.start()
    assert t100.await_fuel(0)
    # As the seed's (a queue's get(timeout=t)): refused, it returns when t has passed, so that a
    # loop on await_fuel(t) does not spin.
    t0 = time.monotonic()
    assert not t100.await_fuel(0.2), "the next slot is 100 s away"
    assert time.monotonic() - t0 >= 0.19
    t0 = time.monotonic()
    assert not t100.await_fuel(-1), "a negative timeout only looks"
    assert time.monotonic() - t0 < 0.19
    assert t100.total() == 1


def test_a_refused_await_fuel_returns_at_once_when_stopped():
    t = mpthrottle.Throttle(1, 100)
    t.start()
    assert t.has_fuel()
    import threading
    threading.Timer(0.2, t.stop).start()
    t0 = time.monotonic()
    assert not t.await_fuel(30)
    assert time.monotonic() - t0 < 10, "stop() ended the wait"


def test_await_fuel_before_start_waits_for_the_start():
    t = mpthrottle.Throttle(10, 1)
    got = []
    w = threading.Thread(target=lambda: got.append(t.await_fuel(30)))
    w.start()
    time.sleep(0.1)
    assert not got
    t.start()
    w.join(30)
    assert got == [True]


def test_emit_counts_emissions_at_a_timestamp():
    t = mpthrottle.Throttle(10, 1, auto_emit=False)
    t.start()
    assert t.has_fuel()
    assert t.total() == 0, "auto_emit=False: has_fuel counts nothing"
    t.emit()
    t.emit(time.time())
    t.emit(timestamp=time.time() - 0.5)
    assert t.total() == 3
    with pytest.raises(ValueError):
        t.emit(float("nan"))


def test_monitor_tuples():
    t = mpthrottle.Throttle(1000, 1, auto_emit=True)
    t.start()
    for _ in range(3):
        t.emit()
        time.sleep(0.02)
    for rate in (t.latest(), t.mean(), t.lo_hi(), t.hi_lo()):
        assert isinstance(rate, tuple) and len(rate) == 2
        assert all(isinstance(x, float) for x in rate)
    lo, hi = t.lo_hi(), t.hi_lo()
    assert 0 < lo[0] <= hi[0], "shortest interval <= longest"
    assert lo[1] >= hi[1]
    assert t.mean()[1] > 0


def test_kill_flag_is_an_event_like_multiprocessing_event():
    t = mpthrottle.Throttle(4, 1)
    k = t.kill_flag
    assert isinstance(k, mpthrottle.Event)
    assert not k.is_set()
    assert not k.wait(0.01)
    k.set()
    assert k.is_set() and k.wait() and k.wait(0)
    k.clear()
    assert not k.is_set()
    t.start()
    t.stop()
    assert t.kill_flag.is_set(), "stop() sets it"
    t.start()
    assert not t.kill_flag.is_set(), "start() clears it"


def test_a_thread_in_kill_flag_wait_is_woken_by_stop():
    t = mpthrottle.Throttle(4, 1)
    t.start()
    got = []
    w = threading.Thread(target=lambda: got.append(t.kill_flag.wait(30)))
    w.start()
    time.sleep(0.05)
    t.stop()
    w.join(30)
    assert got == [True]


def test_standalone_event_create_open_and_pickle(unique):
    e = mpthrottle.Event.create(unique)
    f = mpthrottle.Event.open(unique)
    g = pickle.loads(pickle.dumps(e))
    e.set()
    assert f.is_set() and g.is_set()
    assert e.name == unique
    anon = mpthrottle.Event()
    assert pickle.loads(pickle.dumps(anon)).name == anon.name


def test_create_open_remove_share_one_throttle(unique):
    a = mpthrottle.Throttle.create(unique, 5, 100, hardcap="one")
    b = mpthrottle.Throttle.open(unique)
    assert b.name == unique and b.id == a.id
    assert (b.max_n, b.per, b.hardcap) == (5, 100.0, "one")
    a.start()
    assert b.has_fuel()
    assert a.total() == 1
    with pytest.raises(FileExistsError):
        mpthrottle.Throttle.create(unique, 5, 1)
    mpthrottle.Throttle.remove(unique)
    with pytest.raises(FileNotFoundError):
        mpthrottle.Throttle.open(unique)
    assert b.has_fuel() is False  # one unit per 20 s, already taken: still attached
    c = mpthrottle.Throttle.create(unique, 1, 1, persist=True)
    del c
    mpthrottle.remove(unique)  # the module-level twin


def test_set_rate_and_available():
    t = mpthrottle.Throttle(10, 100)
    assert t.available() == 0, "not running"
    t.start()
    assert t.available() == 1
    t.set_rate(1000, 2)
    assert t.max_n == 1000 and t.per == 2.0
    assert t.interval == pytest.approx(0.002)
    with pytest.raises(ValueError):
        t.set_rate(0, 1)


def test_reserve_returns_a_monotonic_time():
    t = mpthrottle.Throttle(1, 10)
    assert t.reserve() is None, "not running"
    t.start()
    now = time.monotonic()
    due = t.reserve()
    assert due is not None and due <= time.monotonic()
    assert t.reserve(timeout=1) is None, "the next slot is 10 s away"
    fresh = mpthrottle.Throttle(1, 10)
    fresh.start()
    assert fresh.reserve(timeout=0) is not None, "a unit is there now: timeout 0 takes it"
    assert t.reserve(timeout=20) > now + 5


def test_snapshot_is_a_dict_of_everything():
    t = mpthrottle.Throttle(50, 2, hardcap=None, rf_rate=0.05, auto_calibrate=False,
                            _correction=0.1, spin_lead=0.0005)
    s = t.snapshot()
    assert s["name"] == t.name and s["id"] == t.id
    assert (s["max_n"], s["per_s"], s["hardcap"]) == (50, 2.0, "none")
    assert s["rf_rate_s"] == pytest.approx(0.05)
    assert s["correction"] == pytest.approx(0.1) and s["correction_source"] == "explicit"
    assert s["spin_lead_ns"] == 500_000 and t.spin_lead == pytest.approx(0.0005)
    assert s["interval_ns"] == round(2e9 / 50 * 0.9)
    assert s["state"] == "created" and s["auto_calibrate"] is False
    for k in ("latest", "mean", "lo_hi", "hi_lo"):
        assert isinstance(s[k], tuple)
    assert set(s) >= {"as_monitor", "as_throttle", "auto_emit", "available", "total",
                      "runtime_s", "creator_pid", "created_realtime_ns"}


def test_seed_defaults():
    s = mpthrottle.Throttle(4, 1).snapshot()
    assert (s["as_monitor"], s["as_throttle"], s["auto_emit"], s["hardcap"]) == \
        (True, True, True, "limit")
    assert s["rf_rate_s"] == pytest.approx(0.01)
    assert s["auto_calibrate"] is False, "below 49 per second"
    assert mpthrottle.Throttle(49, 1).snapshot()["auto_calibrate"] is True
    assert mpthrottle.Throttle(100, 1, auto_calibrate=False).snapshot()["auto_calibrate"] is False
    # auto_emit follows as_throttle unless given.
    assert mpthrottle.Throttle(4, 1, as_throttle=False).snapshot()["auto_emit"] is False
    assert mpthrottle.Throttle(4, 1, as_throttle=False, auto_emit=True).snapshot()["auto_emit"]


def test_monitor_only_never_waits_and_counts_emit():
    t = mpthrottle.Throttle(as_throttle=False)  # the seed's max_n=0 default: a monitor
    t.start()
    assert all(t.has_fuel() for _ in range(100))
    assert t.await_fuel(0)
    assert t.total() == 0, "auto_emit follows as_throttle"
    t.emit()
    assert t.total() == 1


def test_throttle_only_counts_nothing():
    t = mpthrottle.Throttle(100, 1, as_monitor=False)
    t.start()
    assert t.has_fuel()
    t.emit()
    assert t.total() == 0 and t.mean() == (0.0, 0.0)


@pytest.mark.parametrize("hardcap,burst", [("limit", 5), ("one", 1), ("none", None), (None, None)])
def test_hardcap_values(hardcap, burst):
    t = mpthrottle.Throttle(5, 0.1, hardcap=hardcap)
    assert t.hardcap == (hardcap or "none")
    t.start()
    time.sleep(0.3)  # unused time builds the allowance up to the cap
    if burst is None:
        assert t.available() > 5
    else:
        assert t.available() == burst


def test_pickle_attaches_the_same_throttle():
    t = mpthrottle.Throttle(3, 100)
    u = pickle.loads(pickle.dumps(t))
    assert u.name == t.name and u.id == t.id
    t.start()
    assert u.has_fuel() and not t.has_fuel()
    k = pickle.loads(pickle.dumps(t.kill_flag))
    t.stop()
    assert k.is_set()


def test_repr_and_help_show_the_api():
    t = mpthrottle.Throttle(4, 1)
    assert repr(t).startswith(f"<mpthrottle.Throttle '{t.name}': 4 per 1.0 s")
    text = pydoc.render_doc(mpthrottle.Throttle)
    for word in ("await_fuel", "has_fuel", "kill_flag", "lo_hi", "hi_lo", "snapshot",
                 "hardcap", "auto_emit", "as_monitor", "rf_rate", "_correction"):
        assert word in text, word
    assert "has_fuel" in mpthrottle.Throttle.has_fuel.__doc__
