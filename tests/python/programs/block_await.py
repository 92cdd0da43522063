"""Blocks in a wait and reports when KeyboardInterrupt ended it (tests/python/test_interrupt.py).

    block_await.py WHAT [self]
WHAT: slot (await_fuel with the next slot 100 s away), start (await_fuel before start()),
one (the same as slot with hardcap 'one'), event (kill_flag.wait()), remote:URL (a
RemoteThrottle's await_fuel, slot 100 s away). With `self`, a second thread sends SIGINT to
itself (so the main thread's sleep is not cut by it: the check's period must end the wait) and
prints when it sent it. Prints "ready", then "interrupted <time.monotonic()>" and exits 3.
"""
import signal
import sys
import threading
import time

import mpthrottle

what = sys.argv[1]
if what.startswith("remote:"):
    t = mpthrottle.connect(what[len("remote:"):], 1, 100)
else:
    t = mpthrottle.Throttle(1, 100, hardcap="one" if what == "one" else "limit")
if what != "start":
    t.start()
    assert t.has_fuel()
wait = t.kill_flag.wait if what == "event" else t.await_fuel

if len(sys.argv) > 2 and sys.argv[2] == "self":
    def send():
        time.sleep(0.3)
        print("sent", time.monotonic(), flush=True)
        signal.pthread_kill(threading.get_ident(), signal.SIGINT)
    threading.Thread(target=send, daemon=True).start()

try:
    print("ready", flush=True)  # inside: a signal that comes early is caught all the same
    wait()
except KeyboardInterrupt:
    print("interrupted", time.monotonic(), flush=True)
    sys.exit(3)
print("returned", flush=True)
sys.exit(1)
