"""The training queue's arithmetic, pure: when a waiting job starts, how fast runs go, a running job's clock.
(The queue itself, who waits and who runs: train_scheduler.py; its words: train_views.py.)

A waiting job's ETA is a small simulation of the slots: each slot is free when its running job is
expected to end (from that job's measured pace), the jobs ahead take the free slots in order, each for
its expected duration (its budget estimate x the pace measured on the runs that finished here), and
the waiting job starts when the next slot frees after them.
"""
from __future__ import annotations

import heapq
from collections import deque

MIN_BATCHES = 20   # a running job's own pace counts once it has trained this many batches


def remaining_seconds(expected: float, elapsed: float, own: float | None = None) -> float:
    """A running job's time left: what its own clock says (RunClock.left) once it can tell, else its
    expected duration (measured on the runs before it) less the `elapsed` seconds since it started.
    Never quite zero while it runs."""
    left = own if own is not None else expected - elapsed
    return max(left, 0.05 * expected if own is None else 0.05)


class RunClock:
    """A running job's own pace, from its events as they arrive (times in seconds, any monotonic clock):
    seconds per training batch, and how long each evaluation of the test set takes. After an epoch's
    last batch the job still evaluates 10,000 test images, a fixed cost that no batch count shows (on
    the 2-core CPU ~0.7 s against ~5 s of batches for 10,000 samples), so the two are timed apart."""

    def __init__(self, epochs: int) -> None:
        self.epochs = epochs
        self.epochs_done = 0
        self.total = 0                 # batches per epoch
        self.done = 0                  # batches of the current epoch
        self.batch_seconds = 0.0       # spent on the batches of finished epochs
        self.batches_before = 0        # batches of finished epochs
        self.epoch_began: float | None = None   # training began (data loaded), or the last epoch ended
        self.last_batch_at: float | None = None
        self.eval_began: float | None = None    # the epoch's last batch arrived: it is being evaluated

    def on_loaded(self, now: float) -> None:
        self.epoch_began = now

    def on_batch(self, done: int, total: int, now: float) -> None:
        self.done, self.total, self.last_batch_at = done, total, now
        if done >= total:
            self.eval_began = now

    def on_epoch(self, now: float) -> float | None:
        """An epoch ended (evaluated): returns its evaluation's seconds when they could be timed."""
        took = now - self.eval_began if self.eval_began is not None else None
        if self.epoch_began is not None and self.last_batch_at is not None:
            self.batch_seconds += self.last_batch_at - self.epoch_began
            self.batches_before += self.done
        self.epochs_done += 1
        self.done, self.epoch_began, self.last_batch_at, self.eval_began = 0, now, None, None
        return took

    def left(self, now: float, eval_seconds: float) -> float | None:
        """Seconds until the run ends by its own pace (`eval_seconds`: what one evaluation takes here);
        None while it has trained too few batches to tell."""
        current = (self.last_batch_at - self.epoch_began
                   if self.last_batch_at is not None and self.epoch_began is not None else 0.0)
        batches = self.batches_before + self.done
        if batches < MIN_BATCHES or not self.total:
            return None
        per_batch = (self.batch_seconds + current) / batches
        if self.eval_began is not None:
            this_epoch = max(0.0, eval_seconds - (now - self.eval_began))
        else:
            since = now - self.last_batch_at if self.last_batch_at is not None else 0.0
            this_epoch = max(0.0, (self.total - self.done) * per_batch - since) + eval_seconds
        later = max(0, self.epochs - self.epochs_done - 1) * (self.total * per_batch + eval_seconds)
        return this_epoch + later


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
