"""Functions run in child processes by test_dict.py (importable under every start method)."""
import os


def incr_many(d, keys, rounds):
    for _ in range(rounds):
        for k in keys:
            d.incr(k)


def fill(d, i):
    d[i] = i * 2


def write_until_killed(d, ready, keys):
    """Increments counters and replaces checked values for ever; `ready` is set once started."""
    ready.set()
    i = 0
    while True:
        k = keys[i % len(keys)]
        d.incr(k)
        d[f"value-{k}"] = checked_value(i)
        i += 1


def checked_value(seed):
    """A str that carries its own check: its seed, then text derived from it."""
    body = str(seed) * (1 + seed % 7)
    return f"{seed}:{len(body)}:{body}"


def is_checked(value):
    seed, n, body = value.split(":", 2)
    return int(n) == len(body) and value == checked_value(int(seed))


def pid():
    return os.getpid()


def pop_all(args):
    """Pops keys 0..n-1 wherever they still are; the values this process got."""
    d, n = args
    got = []
    for i in range(n):
        v = d.pop(i, None)
        if v is not None:
            got.append(v)
    return got
