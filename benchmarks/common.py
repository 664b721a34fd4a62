"""Small helpers the benchmark scripts share: percentiles, timing loops, this process's memory."""
from __future__ import annotations

import os
import time


def pct(values, q: float) -> float:
    """The q-th percentile (q in 0..100), nearest rank; values need not be sorted."""
    v = sorted(values)
    return v[min(len(v) - 1, int(round(q / 100 * (len(v) - 1))))]


def fmt(name: str, ms, high: float = 99) -> str:
    """'name: p50 X ms, p99 Y ms (n=N)' (or another upper percentile)."""
    return f"{name}: p50 {pct(ms, 50):.2f} ms, p{high:g} {pct(ms, high):.2f} ms (n={len(ms)})"


def timed(fn, n: int) -> list[float]:
    """Milliseconds of n calls of fn(), one after the other."""
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def rss_mb() -> float:
    """This process's resident memory in MiB (Linux)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
