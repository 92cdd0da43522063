"""Bad arguments are Python exceptions with the library's message; nothing crashes."""
import os

import pytest

import mpthrottle

NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize("args,kwargs,words", [
    ((0, 1), {}, "max_n"),
    ((-4, 1), {}, "max_n"),
    ((), {}, "max_n"),  # the seed's default max_n=0 only for a monitor
    ((4, -1), {}, "per"),
    ((4, 0), {}, "per"),
    ((4, NAN), {}, "per"),
    ((4, INF), {}, "per"),
    ((2**80, 1), {}, "max_n"),
    ((10**10, 1), {}, "max_n"),
    ((4, 1), {"hardcap": 3}, "'limit', 'one' or 'none'"),
    ((4, 1), {"hardcap": "lmit"}, "'limit', 'one' or 'none'"),
    ((4, 1), {"hardcap": "LIMIT"}, "'limit', 'one' or 'none'"),
    ((4, 1), {"rf_rate": 0}, "rf_rate"),
    ((4, 1), {"rf_rate": NAN}, "rf_rate"),
    ((4, 1), {"_correction": 1.0}, "correction"),
    ((4, 1), {"_correction": NAN}, "correction"),
    ((4, 1), {"spin_lead": 1.0}, "spin_lead"),
    ((4, 1), {"spin_lead": -0.001}, "spin_lead"),
    ((4, 1), {"spin_lead": NAN}, "spin_lead"),
    ((4, 1), {"spin_lead": 1e300}, "spin_lead"),
])
def test_bad_arguments_are_value_errors(args, kwargs, words):
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")):
        mpthrottle.Throttle(*args, **kwargs)


@pytest.mark.parametrize("args,kwargs", [
    (("4", 1), {}),
    ((4.0, 1), {}),
    ((True, 1), {}),
    ((4, "1"), {}),
    ((4, 1), {"as_monitor": "yes"}),
    ((4, 1), {"no_such_keyword": 1}),
    ((4, 1, 3), {}),
])
def test_wrong_types_are_type_errors(args, kwargs):
    with pytest.raises(TypeError):
        mpthrottle.Throttle(*args, **kwargs)


def test_bad_arguments_to_methods():
    t = mpthrottle.Throttle(4, 1)
    t.start()
    with pytest.raises(ValueError, match="NaN"):
        t.await_fuel(NAN)
    with pytest.raises(TypeError):
        t.await_fuel("1")
    with pytest.raises(TypeError):
        t.has_fuel(2**70)
    assert not t.has_fuel(-1)
    assert not t.await_fuel(0.01, n=0)
    fast = mpthrottle.Throttle(1000, 1)
    fast.start()
    assert fast.await_fuel(10**300), "as good as for ever: the next slot comes"
    assert fast.await_fuel(INF)
    slow = mpthrottle.Throttle(1, 100)
    slow.start()
    assert slow.has_fuel()
    assert not slow.await_fuel(-INF), "only looks"
    with pytest.raises(ValueError):
        t.set_rate(4, NAN)
    with pytest.raises(ValueError):
        t.emit(INF)
    with pytest.raises(ValueError):
        t.kill_flag.wait(NAN)
    assert not t.kill_flag.wait(-5)
    assert t.reserve(n=2**40) is None


@pytest.mark.parametrize("name", ["", "a/b", "..", "x" * 201, "a b", "ü"])
def test_bad_names_are_value_errors(name):
    with pytest.raises(ValueError):
        mpthrottle.Throttle.create(name, 4, 1)
    with pytest.raises(ValueError):
        mpthrottle.Throttle.open(name)


def test_name_errors_are_os_errors_with_the_library_message(unique):
    with pytest.raises(mpthrottle.NotFoundError, match=unique) as e:
        mpthrottle.Throttle.open(unique)
    assert isinstance(e.value, FileNotFoundError) and isinstance(e.value, mpthrottle.Error)
    with pytest.raises(FileNotFoundError):
        mpthrottle.remove(unique)
    t = mpthrottle.Throttle.create(unique, 4, 1)
    with pytest.raises(mpthrottle.ExistsError) as e:
        mpthrottle.Throttle.create(unique, 4, 1)
    assert isinstance(e.value, FileExistsError)
    with pytest.raises(mpthrottle.IncompatibleError):
        mpthrottle.Event.open(unique)  # a throttle, not an event
    del t
    w = mpthrottle.Throttle.create(unique, 4, 1, mode=0o606)
    with pytest.raises(PermissionError) as e:
        mpthrottle.Throttle.open(unique)
    assert isinstance(e.value, mpthrottle.PermissionDeniedError)
    assert mpthrottle.Throttle.open(unique, allow_world_writable=True).id == w.id


def test_a_file_that_is_not_a_segment(unique):
    path = os.path.join(os.environ["MPT_SHM_DIR"], "mpt." + unique)
    with open(path, "wb") as f:
        f.write(b"not a segment" * 100)
    try:
        with pytest.raises(mpthrottle.IncompatibleError):
            mpthrottle.Throttle.open(unique)
    finally:
        os.unlink(path)


def test_unpickling_garbage_does_not_crash():
    import pickle
    for state in [(), ("a", "b"), (3,), ("no-such-throttle",)]:
        with pytest.raises((ValueError, TypeError, mpthrottle.Error)):
            mpthrottle.Throttle.__new__(mpthrottle.Throttle).__setstate__(state)
    data = pickle.dumps(mpthrottle.Event())  # its segment is gone once unpickled
    with pytest.raises(FileNotFoundError):
        pickle.loads(data)
