#!/usr/bin/env python3
"""The seed README example in Python, through mpthrottle's C ABI (mpt/mpt.h) and ctypes.

Two worker processes (os.fork) share one anonymous throttle of RATE per second for SECONDS, then
the parent stops it and prints the summary, as mp_throttle's README does.

    MPT_LIB=/usr/local/lib/libmpthrottle.so python3 throttle_ctypes.py [RATE] [SECONDS]
"""
import ctypes
import ctypes.util
import os
import sys
import time


class Summary(ctypes.Structure):
    _fields_ = [("runtime_s", ctypes.c_double), ("total", ctypes.c_uint64),
                ("mean_interval_s", ctypes.c_double), ("mean_rate_per_sec", ctypes.c_double)]


def load():
    path = os.environ.get("MPT_LIB") or ctypes.util.find_library("mpthrottle")
    if not path:
        sys.exit("throttle_ctypes: set MPT_LIB to the path of libmpthrottle.so")
    lib = ctypes.CDLL(path)
    handle = ctypes.c_void_p
    lib.mpt_throttle_create_anonymous.argtypes = [ctypes.c_int64, ctypes.c_double, ctypes.c_void_p,
                                                  ctypes.POINTER(handle)]
    lib.mpt_throttle_create_anonymous.restype = ctypes.c_int
    lib.mpt_throttle_start.argtypes = [handle]
    lib.mpt_throttle_start.restype = ctypes.c_int
    lib.mpt_throttle_stop.argtypes = [handle, ctypes.POINTER(Summary)]
    lib.mpt_throttle_stop.restype = ctypes.c_int
    lib.mpt_throttle_await_fuel.argtypes = [handle, ctypes.c_int64, ctypes.c_int64]
    lib.mpt_throttle_await_fuel.restype = ctypes.c_int
    lib.mpt_throttle_killed.argtypes = [handle]
    lib.mpt_throttle_killed.restype = ctypes.c_int
    lib.mpt_throttle_close.argtypes = [handle]
    lib.mpt_throttle_close.restype = None
    lib.mpt_strerror.argtypes = [ctypes.c_int]
    lib.mpt_strerror.restype = ctypes.c_char_p
    lib.mpt_last_error.argtypes = []
    lib.mpt_last_error.restype = ctypes.c_char_p
    return lib


def main():
    rate = int(sys.argv[1]) if len(sys.argv) > 1 else 4
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 5
    lib = load()
    tank = ctypes.c_void_p()
    err = lib.mpt_throttle_create_anonymous(rate, 1.0, None, ctypes.byref(tank))
    if err != 0:
        sys.exit("throttle_ctypes: %s: %s" % (lib.mpt_strerror(err).decode(),
                                              lib.mpt_last_error().decode()))
    workers = []
    for _ in range(2):
        pid = os.fork()
        if pid == 0:
            while not lib.mpt_throttle_killed(tank):
                # Block until 'fuel' is available; do something and repeat.
                lib.mpt_throttle_await_fuel(tank, 1, -1)
            os._exit(0)
        workers.append(pid)

    lib.mpt_throttle_start(tank)
    time.sleep(seconds)
    summary = Summary()
    lib.mpt_throttle_stop(tank, ctypes.byref(summary))
    for pid in workers:
        os.waitpid(pid, 0)
    lib.mpt_throttle_close(tank)
    print("Runtime: {}".format(summary.runtime_s))
    print("Total: {}".format(summary.total))
    print("Mean frequency: {}".format(summary.mean_interval_s))
    print("Processes per second: {}".format(summary.mean_rate_per_sec))


if __name__ == "__main__":
    main()
