"""What a training stream says: `TrainUpdate`, and the updates of each phase of a job, from its events.

Refused (bad values, over budget, one per session, the queue full), queued (position and ETA, made by the
facade from the scheduler), then `follow_run`: the job's events from its runner (train_runner.py)
turned into updates. A running job is reported when something new arrives (a curve point, an epoch,
the run's look) and with a heartbeat of its status otherwise (batch, ETA, images/s); events that
arrive together are taken in before one update goes out, and nothing is reported while it loads.
"""
from __future__ import annotations

import queue
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from mnist_core.config import TrainConfig, train_samples
from mnist_core.jobs import Batch, Epoch, Loaded, Look

from .train_runner import Final, Loading, RunnerEvent
from .train_scheduler import Job
from .train_views import Curves, queued_message

POLL_SECONDS = 0.25       # how often a stream wakes up to report progress or notice a stop
HEARTBEAT_SECONDS = 0.5   # with no new point or epoch, a status update this often (progress, ETA)


@dataclass
class TrainUpdate:
    state: str                    # refused | queued | loading | running | finished | stopped | failed
    message: str
    history: list[dict] = field(default_factory=list)
    batch: int = 0                # progress within the current epoch
    batches: int = 0
    eta_seconds: float | None = None   # running: the run's remaining time; queued: the wait until it starts
    checkpoint: str | None = None  # file name in the runs folder, once saved
    train_points: list[tuple] = field(default_factory=list)   # (x, loss, accuracy %), capped per run
    test_points: list[tuple] = field(default_factory=list)    # (epoch, test loss, test accuracy %)
    images_per_s: float | None = None
    progress: float = 0.0          # fraction of the whole run done
    epochs: int = 0
    test_metrics: dict | None = None   # the last evaluation (per class, confusion), at the end
    position: int | None = None    # queued: 1 = next in line
    look: dict | None = None       # the run as it trains (mnist_core.watch): the latest filters and guesses,
                                   # the probe digits, and "per_class": one row of 10 per finished epoch
    report: dict | None = None     # a teach job, at the end: held-aside and MNIST accuracy before and after


def refused(reason: str) -> TrainUpdate:
    return TrainUpdate(state="refused", message=f"Not started: {reason}.")


def queued(position: int, wait: float | None, running: int, waiting: int, epochs: int) -> TrainUpdate:
    """A waiting job: `position` in line (1 = next), `wait` seconds until it starts (None: unknown)."""
    return TrainUpdate(state="queued", message=queued_message(position, wait, running, waiting),
                       eta_seconds=wait, epochs=epochs, position=position)


def taken_out(epochs: int) -> TrainUpdate:
    return TrainUpdate(state="stopped", message="Taken out of the queue before it started; nothing was trained.",
                       epochs=epochs)


def merge_look(view: dict | None, snap: dict) -> dict:
    """The run's view so far with a new snapshot: the latest filters and guesses, the probe digits from
    the first snapshot, and the per-class accuracy of every finished epoch (a new dict: updates already
    yielded keep theirs)."""
    out = dict(view or {})
    per_class = list(out.get("per_class", []))
    out.update({k: v for k, v in snap.items() if k != "per_class"})
    if snap.get("per_class") is not None:
        per_class.append(snap["per_class"])
    out["per_class"] = per_class
    return out


class RunView:
    """A running job as its stream shows it, from its events: the curves, the epochs' history, where it is
    in the epoch, its look; its ETA and images/s from this process's clock."""

    def __init__(self, cfg: TrainConfig, teaching: bool = False) -> None:
        self.cfg, self.teaching = cfg, teaching   # teaching: a teach job (one pass of fine-tuning steps)
        self.curves = Curves(cfg.epochs, train_samples(cfg), cfg.batch_size)
        self.history: list[dict] = []
        self.batch, self.batches = 0, self.curves.batches
        self.run_start = self.epoch_start = time.perf_counter()
        self.loaded = False   # "loading" (a worker starting, MNIST being read) until the job says it trains
        self.look: dict | None = None

    def take(self, event: Loaded | Batch | Look | Epoch) -> bool:
        """Take in one job event; True when it brings something new to show (a batch report only when it
        made a new curve point: every 30+ batches)."""
        if isinstance(event, Loaded):
            self.loaded = True
            if event.n_train != self.curves.samples:
                self.curves = Curves(self.cfg.epochs, event.n_train, self.cfg.batch_size)
                self.batches = self.curves.batches
            self.run_start = self.epoch_start = time.perf_counter()
        elif isinstance(event, Batch):
            self.batch, self.batches = event.done, event.total
            return self.curves.on_batch(len(self.history) + 1, event.done, event.total, event.loss, event.accuracy)
        elif isinstance(event, Epoch):
            self.history.append(event.record)
            self.curves.on_epoch(event.record)
            self.batch, self.epoch_start = 0, time.perf_counter()
        elif isinstance(event, Look):
            self.look = merge_look(self.look, event.snapshot)
        return True

    def update(self, state: str, message: str) -> TrainUpdate:
        epochs, batch, batches = self.cfg.epochs, self.batch, self.batches
        done = (len(self.history) + (batch / batches if batches else 0)) / epochs
        now = time.perf_counter()
        eta = (now - self.run_start) * (1 - done) / done if 0 < done < 1 else None
        ips = self.curves.seen(batch) / (now - self.epoch_start) if batch and now > self.epoch_start else None
        ips = None if self.teaching else ips   # a teach's steps draw from renders of a few drawings and MNIST
        return TrainUpdate(state=state, message=message, history=list(self.history), batch=batch, batches=batches,
                           eta_seconds=eta, train_points=list(self.curves.train), test_points=list(self.curves.test),
                           images_per_s=ips, progress=done, epochs=epochs, look=self.look)

    def running(self) -> TrainUpdate:
        if self.teaching:   # its batches are its steps (the status line counts them)
            return self.update("running", "Teaching your handwriting")
        return self.update("running", f"Epoch {min(len(self.history) + 1, self.cfg.epochs)} of {self.cfg.epochs}")

    def final(self, end: Final) -> TrainUpdate:
        out = self.update(end.state, end.message)
        out.checkpoint, out.test_metrics, out.report = end.checkpoint, end.test_metrics, end.report
        if end.state == "finished":
            out.progress = 1.0
        return out


def follow_run(job: Job, me: int = 0) -> Iterator[TrainUpdate]:
    """A started job's updates, from its runner's events, up to and with its final one. `me`: which
    follower this stream is (job.follower when it attached); when a newer stream takes the job over (the
    page reloaded), this one ends. The view is the job's, so a stream that takes over shows the run so far."""
    view = job.view = job.view or RunView(job.cfg, teaching=job.teach is not None)
    last_yield = time.perf_counter()
    while True:
        if me and job.follower != me:
            return   # a reload's stream shows this job now
        try:
            event: RunnerEvent | None = job.events.get(timeout=POLL_SECONDS)
        except queue.Empty:
            event = job.final if job.done.is_set() else None   # taken by a stream that has gone
        if isinstance(event, Loading):
            what = "MNIST and your drawings" if job.teach is not None else "MNIST"
            yield TrainUpdate(state="loading", message=f"Loading {what}...", epochs=job.cfg.epochs)
            continue
        if isinstance(event, Final):
            yield view.final(event)
            return
        fresh = view.take(event) if event is not None else False
        if not job.events.empty() or not view.loaded:
            continue  # catch up before reporting; nothing new to say while loading
        if not fresh and time.perf_counter() - last_yield < HEARTBEAT_SECONDS:
            continue  # no new point or epoch: the status (batch, ETA) moves with a heartbeat only
        last_yield = time.perf_counter()
        yield view.running()
