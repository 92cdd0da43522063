"""Fixtures of the mpthrottle Python tests (tests/python; run by ctest, label `python`).

Every test session keeps its segments in a directory of its own (MPT_SHM_DIR, inherited by the
processes it starts), so that sessions run side by side, and each test checks that it left no
segment behind. `redis_url` starts a real redis-server on a free loopback port.
"""

import gc
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import pytest

import mpthrottle

HERE = os.path.dirname(os.path.abspath(__file__))
PROGRAMS = os.path.join(HERE, "programs")


def pytest_configure(config):
    shm = tempfile.mkdtemp(prefix="mpt-pytest-", dir="/dev/shm")
    os.environ["MPT_SHM_DIR"] = shm
    config._mpt_shm = shm


def pytest_unconfigure(config):
    shutil.rmtree(getattr(config, "_mpt_shm", ""), ignore_errors=True)


def segments():
    return sorted(f for f in os.listdir(os.environ["MPT_SHM_DIR"]) if f.startswith("mpt."))


@pytest.fixture(autouse=True)
def no_segment_left():
    """Fails a test that leaves a segment behind once its objects are gone."""
    before = segments()
    yield
    gc.collect()
    left = [f for f in segments() if f not in before]
    assert not left, f"segments left behind: {left}"


def run_program(name, *args, timeout=60, env=None):
    """Runs tests/python/programs/NAME with this interpreter; returns the CompletedProcess."""
    return subprocess.run(
        [sys.executable, os.path.join(PROGRAMS, name), *map(str, args)],
        capture_output=True, text=True, timeout=timeout, env=env)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_redis(extra=()):
    """A redis-server on a free loopback port: (process, port). Retries if the port was taken."""
    server = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not os.path.exists(server):
        pytest.skip("redis-server is not installed (scripts/install-deps installs it)")
    for _ in range(5):
        port = free_port()
        p = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                              "--appendonly", "no", *extra],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and p.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                return p, port
            except OSError:
                time.sleep(0.02)
        p.kill()
        p.wait()
    pytest.fail("redis-server did not start")


@pytest.fixture
def redis_port():
    p, port = start_redis()
    yield port
    p.terminate()
    p.wait()


@pytest.fixture
def unique():
    """A name no other test (or session) uses."""
    return f"pytest.{os.getpid()}.{time.monotonic_ns()}"


__all__ = ["mpthrottle", "run_program", "start_redis", "PROGRAMS"]
