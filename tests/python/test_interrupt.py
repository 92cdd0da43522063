"""Ctrl-C (KeyboardInterrupt) ends a blocked wait within 100 ms; the bound asserted is 1 s (a
loaded machine), the figure measured is printed."""
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import PROGRAMS

BOUND_S = 1.0


def start(what, *extra):
    p = subprocess.Popen([sys.executable, os.path.join(PROGRAMS, "block_await.py"), what, *extra],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready", p.stderr.read()
    return p


def interrupted_at(p):
    try:
        out, err = p.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()  # a wait that Ctrl-C did not end: never leave it behind
        p.communicate()
        raise
    assert p.returncode == 3, (out, err)
    lines = dict(line.split() for line in out.split("\n") if line.strip())
    return float(lines["interrupted"]), lines


@pytest.mark.parametrize("what", ["slot", "start", "one", "event"])
def test_sigint_ends_a_blocked_wait(what):
    p = start(what)
    time.sleep(0.3)  # well inside the wait
    sent = time.monotonic()
    p.send_signal(signal.SIGINT)
    caught, _ = interrupted_at(p)
    latency = caught - sent
    print(f"{what}: KeyboardInterrupt {latency * 1e3:.2f} ms after SIGINT")
    assert latency < BOUND_S


@pytest.mark.parametrize("what", ["slot", "event"])
def test_a_signal_taken_by_another_thread_ends_the_wait_by_the_check(what):
    p = start(what, "self")
    caught, lines = interrupted_at(p)
    latency = caught - float(lines["sent"])
    print(f"{what}: KeyboardInterrupt {latency * 1e3:.2f} ms after SIGINT to another thread")
    assert latency < BOUND_S


def test_remote_await_fuel_is_interrupted_too(redis_port):
    p = start(f"remote:redis://127.0.0.1:{redis_port}/sigint{os.getpid()}")
    time.sleep(0.3)
    sent = time.monotonic()
    p.send_signal(signal.SIGINT)
    caught, _ = interrupted_at(p)
    print(f"remote: KeyboardInterrupt {(caught - sent) * 1e3:.2f} ms after SIGINT")
    assert caught - sent < BOUND_S
