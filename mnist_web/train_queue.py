"""The training queue's arithmetic, as pure functions: when a waiting job starts, how fast runs go, words.

A waiting job's ETA is a small simulation of the slots: each slot is free when its running job is
expected to end (from that job's measured pace), the jobs ahead take the free slots in order, each for
its expected duration (its budget estimate x the pace measured on the runs that finished here), and
the waiting job starts when the next slot frees after them.
"""
from __future__ import annotations

import heapq
from collections import deque

MIN_PROGRESS = 0.05   # below this fraction done a running job's own pace is too noisy: use its estimate


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def remaining_seconds(expected: float, elapsed: float, progress: float, training: float | None = None) -> float:
    """A running job's time left: its expected duration (measured on the runs before it) less the `elapsed`
    seconds since it started, or, when it goes slower than that, what its own pace says (`progress` made in
    `training` seconds since its data was loaded; its evaluation is not in `progress`, so this alone
    would be short). Never quite zero while it runs."""
    left = expected - elapsed
    if progress >= MIN_PROGRESS and training:
        left = max(left, training * (1 - progress) / progress)
    return max(left, 0.05 * expected)


def start_in(running_left: list[float], ahead: list[float], slots: int) -> float | None:
    """Seconds until a job starts that waits behind `ahead` (expected durations, in queue order), with
    `running_left` the running jobs' remaining seconds and `slots` parallel runs. None: no capacity."""
    if slots < 1:
        return None
    # more running than slots (a cluster that shrank): a place frees only when the extra ones have ended
    heap = sorted(running_left)[-slots:] if len(running_left) > slots else sorted(running_left)
    heap += [0.0] * (slots - len(heap))
    heapq.heapify(heap)
    for d in ahead:
        t = heapq.heappop(heap)
        heapq.heappush(heap, t + d)
    return heap[0]


class Pace:
    """What the runs that finished here measured: their start-up (worker, data) in seconds, and their
    training time per estimated second (mnist_core.config.estimate_seconds), which covers this machine's
    speed and its slot count. expected(estimate) = start-up + estimate x factor."""

    def __init__(self, keep: int = 8, default: float = 1.0) -> None:
        self._ratios: deque[float] = deque(maxlen=keep)
        self._startups: deque[float] = deque(maxlen=keep)
        self.default = default

    def add(self, startup: float, training: float, estimate: float) -> None:
        if training > 0 and estimate > 0:
            self._ratios.append(training / estimate)
            self._startups.append(max(0.0, startup))

    @property
    def factor(self) -> float:
        return sum(self._ratios) / len(self._ratios) if self._ratios else self.default

    @property
    def startup(self) -> float:
        return sum(self._startups) / len(self._startups) if self._startups else 0.0

    def expected(self, estimate: float) -> float:
        return self.startup + estimate * self.factor


def queued_message(position: int, wait: float | None, running: int, waiting: int) -> str:
    from .train_views import format_seconds

    where = "next in line" if position == 1 else f"{ordinal(position)} in line"
    when = f"starts in about {format_seconds(wait)}" if wait is not None else "starts when the cluster has room"
    return f"Queued: {where}, {when} ({running} running, {waiting} waiting). Stop takes it out of the queue."


def counts_text(running: int, waiting: int, slots: int, backend: str) -> str:
    runs = "run" if running == 1 else "runs"
    return (f"Training on this server: {running} {runs} going, {waiting} waiting "
            f"({slots} at a time: {backend}).")
