"""mpthrottle.SharedDict: the MutableMapping, its types and errors, pickling into processes under
every start method, no lost update from several processes, and writers SIGKILLed mid-write."""
import collections.abc
import multiprocessing
import os
import pickle
import random
import signal
import time

import pytest

import dict_workers
import mpthrottle

METHODS = ["fork", "spawn", "forkserver"]


def test_a_mutable_mapping_like_dict():
    d = mpthrottle.SharedDict(capacity=8)
    assert isinstance(d, collections.abc.MutableMapping)
    assert len(d) == 0 and "a" not in d and d.get("a") is None and d.get("a", 5) == 5
    d["a"] = 1
    d.update({"b": 2, "c": 3})
    assert d["a"] == 1 and "b" in d and len(d) == 3
    assert sorted(d) == ["a", "b", "c"]
    assert sorted(d.items()) == [("a", 1), ("b", 2), ("c", 3)]
    assert sorted(d.keys()) == ["a", "b", "c"] and sorted(d.values()) == [1, 2, 3]
    assert d.pop("b") == 2 and "b" not in d
    del d["a"]
    with pytest.raises(KeyError):
        del d["a"]
    with pytest.raises(KeyError):
        d["a"]
    assert d.copy() == {"c": 3} and d == {"c": 3}
    d.clear()
    assert len(d) == 0 and d.copy() == {}


def test_keys_and_values_read_back_as_the_type_they_were_stored_as():
    d = mpthrottle.SharedDict(capacity=16, max_key_bytes=32, max_value_bytes=64)
    things = [None, True, False, 0, -7, 2**63 - 1, -(2**63), 2**100, 1.5, float("inf"), "",
              "héllo", b"", b"\x00\xff"]
    for i, v in enumerate(things):
        d[i] = v
    for i, v in enumerate(things):
        got = d[i]
        assert got == v and type(got) is type(v), (i, v, got)
    # 1, 1.0 and True are three keys here (Python's dict makes them one).
    d.clear()
    d[1] = "int"
    d[1.0] = "float"
    d[True] = "bool"
    assert (d[1], d[1.0], d[True]) == ("int", "float", "bool")
    assert len(d) == 3
    with pytest.raises(TypeError, match="not list"):
        d["x"] = [1]
    with pytest.raises(TypeError):
        d[(1, 2)] = 1


def test_capacity_and_sizes_are_clear_errors():
    d = mpthrottle.SharedDict(capacity=2, max_key_bytes=4, max_value_bytes=8)
    assert (d.capacity, d.max_key_bytes, d.max_value_bytes) == (2, 4, 8)
    d["abcd"] = "x" * 8
    d["k"] = b"12345678"
    with pytest.raises(ValueError, match="capacity is 2 entries"):
        d["new"] = 1
    d["k"] = 1  # replacing needs no new entry
    with pytest.raises(ValueError, match="key of 5 bytes exceeds max_key_bytes 4"):
        d["abcde"] = 1
    with pytest.raises(ValueError, match="value of 9 bytes exceeds max_value_bytes 8"):
        d["k"] = "x" * 9
    assert d["k"] == 1 and len(d) == 2
    with pytest.raises(ValueError):
        mpthrottle.SharedDict(capacity=0)
    with pytest.raises(ValueError):
        mpthrottle.SharedDict.create("bad name")
    with pytest.raises(mpthrottle.NotFoundError):
        mpthrottle.SharedDict.open("no-such-dict-%d" % os.getpid())


def test_size_limits_are_checked_in_the_callers_terms():
    # Checked before the tag byte is added: no wrap-around, no number the caller never gave.
    with pytest.raises(ValueError, match="max_value_bytes 18446744073709551615 is outside 1.."):
        mpthrottle.SharedDict(max_value_bytes=2**64 - 1)
    with pytest.raises(ValueError, match="max_key_bytes 65536 is outside 1..65535"):
        mpthrottle.SharedDict(max_key_bytes=65536)
    assert mpthrottle.SharedDict(capacity=1, max_key_bytes=65535).max_key_bytes == 65535


def test_pop_and_popitem_take_the_entry_in_one_step():
    d = mpthrottle.SharedDict(capacity=4)
    d["a"] = None
    d["b"] = 2
    assert d.pop("a") is None and "a" not in d  # a stored None is a value, not "absent"
    assert d.pop("a", 5) == 5
    with pytest.raises(KeyError):
        d.pop("a")
    assert d.popitem() == ("b", 2)
    with pytest.raises(KeyError):
        d.popitem()


def test_pop_races_lose_nothing():
    # Two processes pop the same keys: every value is taken by exactly one of them.
    d = mpthrottle.SharedDict(capacity=256)
    for i in range(200):
        d[i] = i
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(2) as pool:
        taken = pool.map(dict_workers.pop_all, [(d, 200)] * 2)
    assert sorted(taken[0] + taken[1]) == list(range(200))
    assert len(d) == 0


def test_incr_and_setdefault_are_atomic_helpers():
    d = mpthrottle.SharedDict(capacity=4)
    assert d.incr("n") == 1 and d.incr("n", 41) == 42
    assert d.incr("f", 0.5) == 0.5 and d.incr("n", 0.5) == 42.5
    d["s"] = "text"
    with pytest.raises(TypeError):
        d.incr("s")
    with pytest.raises(TypeError):
        d.incr("n", "1")
    assert d.setdefault("x", 7) == 7 and d.setdefault("x", 8) == 7


def test_named_create_open_and_pickle():
    name = "pytest-dict-%d" % os.getpid()
    d = mpthrottle.SharedDict.create(name, capacity=4)
    d["a"] = "b"
    assert mpthrottle.SharedDict.open(name)["a"] == "b"
    with pytest.raises(mpthrottle.ExistsError):
        mpthrottle.SharedDict.create(name)
    e = pickle.loads(pickle.dumps(d))
    assert e.name == name and e["a"] == "b"
    del d, e


@pytest.mark.parametrize("method", METHODS)
def test_processes_update_the_same_dict_and_lose_nothing(method):
    ctx = multiprocessing.get_context(method)
    d = mpthrottle.SharedDict(capacity=16)
    keys = ["k%d" % i for i in range(4)]
    ps = [ctx.Process(target=dict_workers.incr_many, args=(d, keys, 500)) for _ in range(3)]
    ps += [ctx.Process(target=dict_workers.fill, args=(d, i)) for i in range(5)]
    for p in ps:
        p.start()
    for p in ps:
        p.join(60)
        assert p.exitcode == 0
    assert {k: d[k] for k in keys} == {k: 1500 for k in keys}
    assert {i: d[i] for i in range(5)} == {i: 2 * i for i in range(5)}


def test_writers_killed_mid_write_leave_the_dict_whole_and_usable():
    ctx = multiprocessing.get_context("fork")
    d = mpthrottle.SharedDict(capacity=16, max_value_bytes=128)
    keys = ["a", "b", "c"]
    rng = random.Random(7)
    for _ in range(30):
        ready = ctx.Event()
        before = {k: d.get(k, 0) for k in keys}
        p = ctx.Process(target=dict_workers.write_until_killed, args=(d, ready, keys))
        p.start()
        assert ready.wait(30)
        time.sleep(rng.random() * 0.01)
        os.kill(p.pid, signal.SIGKILL)
        p.join(30)
        assert p.exitcode == -signal.SIGKILL
        for k in keys:
            assert d.get(k, 0) >= before[k]
            v = d.get("value-" + k)
            assert v is None or dict_workers.is_checked(v), v
        assert len(d) <= 2 * len(keys)
    d["after"] = 1
    assert d["after"] == 1
