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
connect() gives a RemoteThrottle, kept in Redis for many hosts. SharedDict is a dictionary in
shared memory, like multiprocessing.Manager().dict() without the server process. Errors derive from
mpthrottle.Error, but bad arguments raise ValueError.
"""

import collections.abc
import weakref

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
    _SharedDict,
    remove,
)
from ._mpthrottle import connect as _connect

_MISSING = object()


class SharedDict(collections.abc.MutableMapping):
    """A dictionary in shared memory that any process reads and updates (mpt::SharedDict).

    Like ``multiprocessing.Manager().dict()``, without the server process: the entries live in a
    segment every process maps. Keys and values are None, bool, int, float, str or bytes; each
    reads back as the type it was stored as, and 1, 1.0 and True are three different keys.
    Capacity is fixed at creation: ``capacity`` entries, keys of at most ``max_key_bytes`` and
    values of at most ``max_value_bytes`` (str counts its UTF-8 bytes, int and float 8; an int
    beyond 64 bits its decimal digits). A new key in a full dict, or an oversize key or value,
    raises ValueError naming the limit.

    Each operation is atomic (get, set, del, pop, popitem, incr, setdefault; clear() removes the
    entries one by one), and items() / keys() / values() / iteration work on one consistent
    snapshot. ``d[k] += 1`` is a read then a write (another process may write between): use
    incr() or setdefault(), which are atomic. A process killed at any moment,
    even inside a write, leaves the dict usable and every entry whole.

    SharedDict() makes a new named dict, picklable: a child process that unpickles it attaches
    the same dict (the creating process removes the name when it exits or drops its last
    handle). SharedDict.create(name) and SharedDict.open(name) make and attach one by name.
    """

    __slots__ = ("_d",)

    def __init__(self, data=(), *, capacity=1024, max_key_bytes=64, max_value_bytes=1024,
                 _engine=None):
        self._d = _engine if _engine is not None else _SharedDict(
            capacity, max_key_bytes, max_value_bytes)
        if data:
            self.update(data)

    @classmethod
    def create(cls, name, *, capacity=1024, max_key_bytes=64, max_value_bytes=1024, mode=0o600,
               persist=False):
        """Creates the named dict /dev/shm/mpt.<name> (empty). ExistsError if it exists."""
        return cls(_engine=_SharedDict.create(name, capacity, max_key_bytes, max_value_bytes,
                                              mode, persist))

    @classmethod
    def open(cls, name):
        """Attaches to the named dict. NotFoundError if there is none."""
        return cls(_engine=_SharedDict.open(name))

    @staticmethod
    def remove(name):
        """Removes the name of a named dict; processes attached keep it."""
        _SharedDict.remove(name)

    name = property(lambda self: self._d.name, doc="The segment's name.")
    capacity = property(lambda self: self._d.capacity, doc="Entries it can hold.")
    max_key_bytes = property(lambda self: self._d.max_key_bytes)
    max_value_bytes = property(lambda self: self._d.max_value_bytes)

    def __getitem__(self, key):
        value = self._d.get(key, _MISSING)
        if value is _MISSING:
            raise KeyError(key)
        return value

    def __setitem__(self, key, value):
        self._d.set(key, value)

    def __delitem__(self, key):
        if not self._d.erase(key):
            raise KeyError(key)

    _MISSING = object()

    def pop(self, key, default=_MISSING):
        """Removes key and returns its value, in one step; default (or KeyError) if absent."""
        found, value = self._d.take(key)
        if found:
            return value
        if default is SharedDict._MISSING:
            raise KeyError(key)
        return default

    def popitem(self):
        """Removes an entry and returns (key, value), in one step; KeyError if empty."""
        for key, _ in self._d.items():
            found, value = self._d.take(key)  # another process may have taken it meanwhile
            if found:
                return key, value
        raise KeyError("popitem(): SharedDict is empty")

    def __contains__(self, key):
        return self._d.contains(key)

    def __len__(self):
        return self._d.size()

    def __iter__(self):
        return iter([k for k, _ in self._d.items()])

    def get(self, key, default=None):
        return self._d.get(key, default)

    def items(self):
        """The (key, value) pairs as of one moment (a list)."""
        return self._d.items()

    def keys(self):
        return [k for k, _ in self._d.items()]

    def values(self):
        return [v for _, v in self._d.items()]

    def clear(self):
        self._d.clear()

    def incr(self, key, delta=1):
        """Adds delta to the int or float value of key (0 if missing), atomically; the result."""
        return self._d.incr(key, delta)

    def setdefault(self, key, default=None):
        """The value of key, storing default first if there is none, atomically."""
        return self._d.setdefault(key, default)

    def copy(self):
        """A plain dict of the entries as of one moment."""
        return dict(self._d.items())

    def __reduce__(self):
        return (SharedDict.open, (self._d.name,))

    def __repr__(self):
        return f"<mpthrottle.SharedDict {self._d.name!r} {self.copy()!r}>"


# A RemoteThrottle reports its process's last leased grants when it goes away, but a
# multiprocessing child ends with os._exit() after run(), and no destructor runs. So each handle
# (from connect() or a pickle) has its release() called at the end of the process: by a
# multiprocessing.util.Finalize, which Process._bootstrap runs after run() (and
# multiprocessing's atexit hook at a plain interpreter exit); a forked child starts with that
# registry cleared, hence the after-fork hook that registers it again there. Weak references: a
# handle already gone has done it itself.
def _release(ref):
    handle = ref()
    if handle is not None:
        handle.release()


def _release_at_exit(handle):
    from multiprocessing import util  # imported with the first handle only

    util.Finalize(handle, _release, args=(weakref.ref(handle),), exitpriority=100)


def _track(handle):
    from multiprocessing import util

    util.register_after_fork(handle, _release_at_exit)
    _release_at_exit(handle)
    return handle


def connect(*args, **kwargs):
    return _track(_connect(*args, **kwargs))


connect.__doc__ = _connect.__doc__
_setstate = RemoteThrottle.__setstate__


def _setstate_tracked(self, state):
    _setstate(self, state)
    _track(self)


RemoteThrottle.__setstate__ = _setstate_tracked

# The classes show (in help() and in pickles) as the package's, where users find them.
for _cls in (Event, RemoteThrottle, Throttle, SharedDict):
    _cls.__module__ = __name__
del _cls

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
    "SharedDict",
    "Throttle",
    "connect",
    "remove",
]
