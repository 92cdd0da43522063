"""The seed README program under each start method: 20 units in 5 s (21 at most), and it exits."""
import re

import pytest

from conftest import run_program


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_readme_program_takes_20_in_5_seconds_and_exits(method):
    r = run_program("seed_readme.py", method, 5, timeout=60)
    print(r.stdout, r.stderr)
    assert r.returncode == 0, r.stderr
    total = int(re.search(r"^Total: (\d+)$", r.stdout, re.M).group(1))
    runtime = float(re.search(r"^Runtime: ([\d.]+)$", r.stdout, re.M).group(1))
    assert 20 <= total <= 21
    assert runtime >= 5
