"""The training queue itself: who waits, who runs, in what order, and when a waiting job may expect to start.

A fair FIFO: one job per browser session (waiting or running; a training run or a teach job alike), at
most `max_waiting` waiting while every slot is taken, jobs start first come first served as slots free,
a waiting job can leave at any time.
Slots come in kinds (train_backend: one pool on this machine, CPU and GPU places on a Ray cluster): the
order is first come first served within each kind, so a GPU job waiting for a GPU never holds up the CPU
jobs behind it (nor they it), and a job's position and ETA are among the jobs of its kind.
`Scheduler` holds that state and nothing else: it starts no thread and runs nothing (the facade,
training_service.py, hands the jobs it starts to the runner); the number of slots is passed in by the
caller each time (a cluster can grow or shrink), with the backend's kind_of for the kind of each job.
A job's ETA comes from train_queue.py's arithmetic over the pace the finished runs measured here.
"""
from __future__ import annotations

import itertools
import queue
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from mnist_core.config import CPU_SECONDS_PER_TEST_IMAGE, MNIST_TEST_SIZE, ConfigError, TrainConfig

from .train_backend import ONE_POOL, one_pool
from .train_queue import Pace, RunClock, remaining_seconds, start_in

Slots = int | Mapping[str, int]   # places per kind (train_backend.Backend.capacity); an int: one pool


@dataclass(eq=False)
class Job:
    id: int
    owner: str
    cfg: TrainConfig
    estimate: float                  # seconds on the budget's CPU model (config.estimate_seconds)
    events: queue.Queue = field(default_factory=queue.Queue)   # runner -> stream (train_runner.RunnerEvent)
    stop: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    moved: threading.Event = field(default_factory=threading.Event)   # started, or moved up the queue
    state: str = "waiting"           # waiting | running | done
    queued_at: float = field(default_factory=time.monotonic)
    started_at: float | None = None
    loaded_at: float | None = None   # its data loaded, training begun (its own pace is measured from here)
    worker_pid: int | None = None    # the process training it (a worker here, or on a Ray node)
    clock: RunClock | None = None    # its own pace (batches, evaluations), for the ETA of the jobs behind it
    kind: str = ONE_POOL             # the kind of place it took when it started (train_backend.Backend.kind_of)
    client: str = ""                 # the address it came from (owners.client_address): jobs per address
    persistent: bool = False         # its owner has a token: a closed page leaves it a while for a reload
    follower: int = 0                # which stream shows it now (a reload's stream takes over the old one's)
    view: object = None              # what its streams have shown so far (train_updates.RunView), shared
    final: object = None             # its runner's Final, once over (a stream that attaches late sees it)
    teach: dict | None = None        # a teach job's own spec (base model, drawings: mnist_core/teach.py), else None


class Scheduler:
    """The queue's state under one lock: the waiting jobs in order, the running ones, one job per owner,
    and what finished runs measured (Pace; seconds per evaluation of the test set)."""

    def __init__(self, max_waiting: int, per_address: int = 0) -> None:
        self.max_waiting = max_waiting
        self.per_address = per_address   # jobs one client address may have waiting or running (0: no bound)
        self.pace = Pace()
        self._evals: deque[float] = deque(maxlen=8)   # seconds one evaluation of the test set took here
        self._lock = threading.Lock()
        self.waiting: deque[Job] = deque()
        self.running: dict[int, Job] = {}
        self._by_owner: dict[str, Job] = {}
        self._ids = itertools.count(1)

    def counts(self) -> tuple[int, int]:
        """(running, waiting)."""
        with self._lock:
            return len(self.running), len(self.waiting)

    def jobs(self, owner: str | None = None) -> list[Job]:
        """The owner's job (a list of at most one), or every waiting and running job when owner is None."""
        with self._lock:
            if owner is None:
                return list(self.waiting) + list(self.running.values())
            return [self._by_owner[owner]] if owner in self._by_owner else []

    def running_pids(self) -> list[int]:
        with self._lock:
            return [j.worker_pid for j in self.running.values() if j.worker_pid]

    def admit(self, cfg: TrainConfig, owner: str, estimate: float, slots: int, client: str = "",
              persistent: bool = False, teach: dict | None = None) -> Job:
        """Queue a new job at the end of the line. ConfigError when the owner already has one, when its
        address has `per_address` already, or when the queue is full (max_waiting waiting, every slot taken).
        `teach`: a teach job's spec (it waits and runs like a training run)."""
        with self._lock:
            mine = self._by_owner.get(owner) if owner else None
            if mine is not None:
                where = "waiting in the queue" if mine.state == "waiting" else "training"
                raise ConfigError(f"this browser session already has a run {where} (one per session); "
                                  f"stop it first")
            if client and self.per_address and self._count_from(client) >= self.per_address:
                raise ConfigError(f"your address already has {self.per_address} runs waiting or training "
                                  f"(the most one address may have here); wait for one to end")
            if len(self.waiting) >= self.max_waiting and len(self.running) >= slots:
                raise ConfigError(f"the training queue is full ({self.max_waiting} runs waiting); "
                                  f"try again in a few minutes")
            job = Job(next(self._ids), owner, cfg, estimate, client=client, persistent=persistent, teach=teach)
            self.waiting.append(job)
            if owner:
                self._by_owner[owner] = job
        return job

    def _count_from(self, client: str) -> int:   # with self._lock held
        return sum(j.client == client for j in [*self.waiting, *self.running.values()])

    def start_ready(self, slots: Slots, kind_of: Callable[[str], str] = one_pool) -> list[Job]:
        """Move waiting jobs to running, first come first served within each kind of place (kind_of of the
        job's device), while fewer jobs of that kind run than `slots` has places for it; the jobs started,
        for the caller to run. A job that does not fit holds up only the jobs of its own kind behind it.
        Each started job, and every job behind, is told it moved."""
        places, kind_of = _places(slots), _memo(kind_of)
        started = []
        with self._lock:
            used = Counter(j.kind for j in self.running.values())
            for job in list(self.waiting):
                if all(used[k] >= n for k, n in places.items()):
                    break   # every kind is full: nothing behind can start either
                kind = kind_of(job.cfg.device)
                if used[kind] < places.get(kind, 0):
                    self.waiting.remove(job)
                    job.kind, job.state, job.started_at = kind, "running", time.monotonic()
                    self.running[job.id] = job
                    used[kind] += 1
                    started.append(job)
            behind = list(self.waiting) if started else []
        for job in started + behind:
            job.moved.set()
        return started

    def cancel(self, job: Job) -> None:
        """A waiting job leaves the line (the ones behind move up); a running one is asked to stop."""
        with self._lock:
            left = job.state == "waiting"
            if left:
                self.waiting.remove(job)
                job.state = "done"
                self._forget(job)
            behind = list(self.waiting) if left else []
        if job.state == "done" and not job.done.is_set():
            job.done.set()
            job.moved.set()
        job.stop.set()
        for other in behind:
            other.moved.set()

    def finish(self, job: Job, finished: bool) -> None:
        """A running job ended: its slot is free, its owner may start another. A run that `finished`
        adds its start-up and training time to the measured pace."""
        with self._lock:
            self.running.pop(job.id, None)
            job.state = "done"
            self._forget(job)
        if finished and job.started_at is not None and job.loaded_at is not None:
            self.pace.add(job.loaded_at - job.started_at, time.monotonic() - job.loaded_at, job.estimate)

    def _forget(self, job: Job) -> None:   # with self._lock held
        if self._by_owner.get(job.owner) is job:
            del self._by_owner[job.owner]

    def record_eval(self, seconds: float) -> None:
        """One evaluation of the test set took this long here."""
        with self._lock:
            self._evals.append(seconds)

    def eval_seconds(self) -> float:
        """What one evaluation of the test set takes here: measured on the last runs, else the budget's
        CPU cost model scaled by the measured pace."""
        with self._lock:
            evals = list(self._evals)
        if evals:
            return sum(evals) / len(evals)
        return MNIST_TEST_SIZE * CPU_SECONDS_PER_TEST_IMAGE * self.pace.factor

    def wait_of(self, job: Job, slots: Slots,
                kind_of: Callable[[str], str] = one_pool) -> tuple[int, float | None]:
        """(position, seconds until it starts) of a waiting job in the line of its kind; (0, 0) once it is
        not waiting."""
        now, kind_of = time.monotonic(), _memo(kind_of)
        with self._lock:
            if job.state != "waiting":
                return 0, 0.0
            kind = kind_of(job.cfg.device)
            ahead = [j for j in itertools.takewhile(lambda j: j is not job, self.waiting)
                     if kind_of(j.cfg.device) == kind]
            running = [j for j in self.running.values() if j.kind == kind]
        eval_s = self.eval_seconds()
        left = [remaining_seconds(self.pace.expected(j.estimate), now - (j.started_at or now),
                                  j.clock.left(now, eval_s) if j.clock else None) for j in running]
        wait = start_in(left, [self.pace.expected(j.estimate) for j in ahead], _places(slots).get(kind, 0))
        return len(ahead) + 1, wait


def _places(slots: Slots) -> dict[str, int]:
    """Places per kind: an int is one pool (a backend that does not place jobs by device)."""
    return {ONE_POOL: slots} if isinstance(slots, int) else dict(slots)


def _memo(kind_of: Callable[[str], str]) -> Callable[[str], str]:
    """kind_of asked once per device (a backend answers from one reading for a whole pass of the queue)."""
    seen: dict[str, str] = {}

    def kind(device: str) -> str:
        if device not in seen:
            seen[device] = kind_of(device)
        return seen[device]
    return kind
