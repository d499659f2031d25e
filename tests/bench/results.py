"""results.py: reading the `key=value` results file that the benchmark
scripts (lib.sh's record) write, for report.py and ztunnel_report.py."""


def load(path):
    """The file as a dict; a line without '=' is skipped."""
    kv = {}
    with open(path) as f:
        for line in f:
            key, sep, val = line.rstrip("\n").partition("=")
            if sep:
                kv[key] = val
    return kv


def num(kv, key):
    """A number, or None when absent or not one."""
    try:
        return float(kv[key])
    except (KeyError, ValueError):
        return None


def div(a, b):
    """a / b, or None when either is unknown or b is 0."""
    return a / b if a is not None and b not in (None, 0) else None
