"""Functions the tests run in other processes (importable by spawn and forkserver children)."""
import time


def take(throttle, count, results):
    """Takes `count` units with await_fuel and puts how many it got on `results`."""
    got = sum(1 for _ in range(count) if throttle.await_fuel(30))
    results.put(got)


def take_until_killed(throttle, results=None):
    """The seed's worker loop, counting its own units: an independent count."""
    got = 0
    while not throttle.kill_flag.is_set():
        if throttle.await_fuel():
            got += 1
    if results is not None:
        results.put(got)
    return got


def stop_after(throttle, delay):
    time.sleep(delay)
    return throttle.stop()


def pool_init(throttle):
    global _throttle
    _throttle = throttle


def pool_take(_):
    """A Pool task: one unit from the throttle the initializer got."""
    return _throttle.await_fuel(30)


def name_of(throttle):
    return throttle.name, throttle.id


def take_until_stopped(throttle, stop, results):
    """Takes units until `stop` (an Event) or the kill flag is set; puts how many it got."""
    got = 0
    while not stop.is_set() and not throttle.kill_flag.is_set():
        if throttle.await_fuel(1):
            got += 1
    results.put(got)
