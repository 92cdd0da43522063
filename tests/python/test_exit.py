"""Python exits cleanly with threads still waiting, and leaves no segment behind."""
import os

import pytest

from conftest import run_program


@pytest.mark.parametrize("arg", ["", "stop"])
def test_exit_with_daemon_threads_waiting(arg):
    for _ in range(3):  # the wake at exit is a race: try it a few times
        r = run_program("daemon_exit.py", *([arg] if arg else []), timeout=60)
        assert r.returncode == 0, r.stderr
        name = r.stdout.strip()
        assert not os.path.exists(os.path.join(os.environ["MPT_SHM_DIR"], "mpt." + name))
