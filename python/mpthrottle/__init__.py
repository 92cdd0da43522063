"""mpthrottle: a rate limit shared by many processes, with mp_throttle's API.

An mp_throttle program runs unchanged with ``import mpthrottle as mp_throttle``::

    import multiprocessing, time
    import mpthrottle

    def work(tank):
        while not tank.kill_flag.is_set():
            tank.await_fuel()       # blocks until a unit of fuel is this worker's
            ...                     # do something

    if __name__ == "__main__":
        throttle = mpthrottle.Throttle(4, 1)          # 4 per second
        pool = multiprocessing.Pool(4, initializer=work, initargs=(throttle,))
        throttle.start()
        time.sleep(5)
        runtime, total, mean_interval, mean_rate = throttle.stop()   # total: 20

Throttle keeps its state in shared memory (the C++ library libmpthrottle); pickling one, as
multiprocessing does with any start method, attaches the same throttle in the child.
connect() gives a RemoteThrottle, kept in Redis for many hosts. Errors derive from
mpthrottle.Error, but bad arguments raise ValueError.
"""

from ._mpthrottle import (
    Error,
    Event,
    ExistsError,
    IncompatibleError,
    NotFoundError,
    PermissionDeniedError,
    RemoteError,
    RemoteThrottle,
    SegmentError,
    Throttle,
    connect,
    remove,
)

__all__ = [
    "Error",
    "Event",
    "ExistsError",
    "IncompatibleError",
    "NotFoundError",
    "PermissionDeniedError",
    "RemoteError",
    "RemoteThrottle",
    "SegmentError",
    "Throttle",
    "connect",
    "remove",
]
