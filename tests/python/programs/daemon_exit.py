"""Exits while daemon threads wait in await_fuel and kill_flag.wait (tests/python/test_exit.py).

    daemon_exit.py [stop]
With `stop`, an object freed while Python shuts down calls stop(), which wakes the threads while
the interpreter is finalizing. Either way the process must exit with status 0, and the name of
the throttle (which the daemon threads' frames keep alive) must be gone.
"""
import sys
import threading
import time

import mpthrottle

t = mpthrottle.Throttle(1, 100)
t.start()
assert t.has_fuel()
for target in (t.await_fuel, t.kill_flag.wait):
    threading.Thread(target=target, daemon=True).start()
time.sleep(0.2)


class StopAtExit:
    def __del__(self):
        t.stop()


if len(sys.argv) > 1 and sys.argv[1] == "stop":
    keep = StopAtExit()
print(t.name, flush=True)
