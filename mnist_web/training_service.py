"""Training for a shared app: a fair FIFO queue of jobs within a budget, run by a backend, streamed as updates.

The web tab (and anything else) calls `stream(values, owner)` and iterates the updates. Values are
checked without coercion and against the TrainingBudget before anything is queued. Start always gets an
answer at once: the job starts now ("loading"), waits ("queued", with its position and an ETA from the
measured pace of the runs ahead, updated as the queue moves), or is refused (bad values, over budget,
a second job of the same browser session, the queue full). Jobs run in the backend (backends.py: worker
processes of this machine; ray_backend.py: a Ray cluster), never in the server's threads, one runner
thread per running job here relaying the worker's events. The runner, not the stream, owns the result:
whatever happens (finished, stopped, failed, the worker killed), it saves the last finished epoch of a
run on enough samples atomically (never over an existing file), prunes the runs folder, frees the slot
and starts the next job. Closing the stream (the tab went away) takes a waiting job out of the queue
and stops a running one.
"""
from __future__ import annotations

import datetime as _dt
import itertools
import queue
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mnist_core.checkpoint import save_checkpoint
from mnist_core.config import (
    CPU_SECONDS_PER_TEST_IMAGE,
    MNIST_TEST_SIZE,
    ConfigError,
    TrainConfig,
    TrainingBudget,
    estimate_seconds,
    make_config,
    train_samples,
)
from mnist_core.jobs import checkpoint_from_bytes, one_line
from mnist_core.runs import prune
from mnist_core.text import plural

from .backends import JobFailed, LocalBackend
from .train_queue import Pace, RunClock, queued_message, remaining_seconds, start_in
from .train_views import Curves

POLL_SECONDS = 0.25   # how often the stream wakes up to report progress or notice a stop
HEARTBEAT_SECONDS = 0.5   # with no new point or epoch, a status update this often (progress, ETA)
QUEUED_HEARTBEAT_SECONDS = 2.0   # a waiting page's ETA is refreshed this often (and at once when it moves up)
MAX_WAITING = 40      # jobs that may wait; past it Start answers "the queue is full"
CLOSE_WAIT_SECONDS = 30   # a closed stream waits this long for its stopped run to wind down


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


@dataclass(eq=False)
class Job:
    id: int
    owner: str
    cfg: TrainConfig
    estimate: float                  # seconds on the budget's CPU model (config.estimate_seconds)
    events: queue.Queue = field(default_factory=queue.Queue)
    stop: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    moved: threading.Event = field(default_factory=threading.Event)   # started, or moved up the queue
    state: str = "waiting"           # waiting | running | done
    queued_at: float = field(default_factory=time.monotonic)
    started_at: float | None = None
    loaded_at: float | None = None   # its data loaded, training begun (its own pace is measured from here)
    worker_pid: int | None = None    # the process training it (a worker here, or on a Ray node)
    clock: RunClock | None = None    # its own pace (batches, evaluations), for the ETA of the jobs behind it


class TrainingService:
    def __init__(self, runs_dir: Path, data_dir: str | None = None, download: bool = True,
                 budget: TrainingBudget | None = None, backend=None, max_waiting: int = MAX_WAITING) -> None:
        self.runs_dir = Path(runs_dir)
        self.data_dir = data_dir
        self.download = download
        self.budget = budget or TrainingBudget()
        self.backend = backend if backend is not None else LocalBackend()
        self.max_waiting = max_waiting
        self.pace = Pace()
        self._evals: deque[float] = deque(maxlen=8)   # seconds one evaluation of the test set took here
        self._lock = threading.Lock()
        self._waiting: deque[Job] = deque()
        self._running: dict[int, Job] = {}
        self._by_owner: dict[str, Job] = {}
        self._ids = itertools.count(1)
        self._save_lock = threading.Lock()   # two runs ending in the same second get different names

    # ------------------------------------------------------------------ state
    @property
    def busy(self) -> bool:
        with self._lock:
            return bool(self._running or self._waiting)

    def status(self) -> dict:
        """What /queue_status and the Train tab show."""
        with self._lock:
            running, waiting = len(self._running), len(self._waiting)
        return {"running": running, "waiting": waiting, "slots": self._slots(), "max_waiting": self.max_waiting,
                "backend": self.backend.name, "where": self.backend.describe()}

    def running_pids(self) -> list[int]:
        """The processes training the running jobs (tests, an admin): local workers or Ray workers."""
        with self._lock:
            return [j.worker_pid for j in self._running.values() if j.worker_pid]

    def _slots(self) -> int:
        try:
            return max(0, int(self.backend.slots()))
        except Exception:   # a cluster that cannot be asked right now has no room
            return 0

    def stop(self, owner: str | None = None) -> bool:
        """Stop the owner's job: a waiting one leaves the queue, a running one stops within a batch.
        Without an owner: every job (shutdown, tests). False when there was nothing to stop."""
        with self._lock:
            jobs = [self._by_owner[owner]] if owner in self._by_owner else []
            if owner is None:
                jobs = list(self._waiting) + list(self._running.values())
        for job in jobs:
            self._cancel(job)
        return bool(jobs)

    def check(self, values: dict) -> TrainConfig:
        """The run's config, or ConfigError: bad values, empty fields (None) or over the budget."""
        cfg = make_config(nullable=(), **values)
        on_cpu = cfg.device == "cpu" or (cfg.device == "auto" and not _cuda_available())
        self.budget.check(cfg, on_cpu=on_cpu)
        return cfg

    # ------------------------------------------------------------------ the queue
    def submit(self, values: dict, owner: str = "") -> Job:
        """Queue a job (and start it if a slot is free). ConfigError with the reason when refused."""
        cfg = self.check(values)
        with self._lock:
            mine = self._by_owner.get(owner) if owner else None
            if mine is not None:
                where = "waiting in the queue" if mine.state == "waiting" else "training"
                raise ConfigError(f"this browser session already has a run {where} (one per session); "
                                  f"stop it first")
            if len(self._waiting) >= self.max_waiting and len(self._running) >= self._slots():
                raise ConfigError(f"the training queue is full ({self.max_waiting} runs waiting); "
                                  f"try again in a few minutes")
            job = Job(next(self._ids), owner, cfg, estimate_seconds(cfg))
            self._waiting.append(job)
            if owner:
                self._by_owner[owner] = job
        self._dispatch()
        return job

    def _dispatch(self) -> None:
        """Start waiting jobs, first come first served, while there are free slots."""
        slots = self._slots()
        started = []
        with self._lock:
            while self._waiting and len(self._running) < slots:
                job = self._waiting.popleft()
                job.state, job.started_at = "running", time.monotonic()
                self._running[job.id] = job
                started.append(job)
            behind = list(self._waiting) if started else []
        for job in started:
            job.moved.set()
            threading.Thread(target=self._execute, args=(job,), name=f"mnist-train-job-{job.id}",
                             daemon=True).start()
        for job in behind:
            job.moved.set()

    def _cancel(self, job: Job) -> None:
        with self._lock:
            if job.state == "waiting":
                self._waiting.remove(job)
                job.state = "done"
                self._forget(job)
                behind = list(self._waiting)
            else:
                behind = []
        if job.state == "done" and not job.done.is_set():
            job.done.set()
            job.moved.set()
        job.stop.set()
        for other in behind:
            other.moved.set()

    def _forget(self, job: Job) -> None:   # with self._lock held
        if self._by_owner.get(job.owner) is job:
            del self._by_owner[job.owner]

    def wait_of(self, job: Job) -> tuple[int, float | None]:
        """(position, seconds until it starts) of a waiting job; (0, 0) once it is not waiting."""
        now = time.monotonic()
        with self._lock:
            if job.state != "waiting":
                return 0, 0.0
            ahead = list(itertools.takewhile(lambda j: j is not job, self._waiting))
            running = list(self._running.values())
        eval_s = self._eval_seconds()
        left = [remaining_seconds(self.pace.expected(j.estimate), now - (j.started_at or now),
                                  j.clock.left(now, eval_s) if j.clock else None) for j in running]
        wait = start_in(left, [self.pace.expected(j.estimate) for j in ahead], self._slots())
        return len(ahead) + 1, wait

    def _eval_seconds(self) -> float:
        """What one evaluation of the test set takes here: measured on the last runs, else the budget's
        CPU cost model scaled by the measured pace."""
        with self._lock:
            evals = list(self._evals)
        if evals:
            return sum(evals) / len(evals)
        return MNIST_TEST_SIZE * CPU_SECONDS_PER_TEST_IMAGE * self.pace.factor

    # ------------------------------------------------------------------ a run (its runner thread)
    def _spec(self, job: Job) -> dict:
        return {"config": job.cfg.to_dict(), "data_dir": self.data_dir, "download": self.download}

    def _execute(self, job: Job) -> None:
        put = job.events.put
        history: list[dict] = []
        last: bytes | None = None
        n_train = 0
        state, reason = "failed", "the run ended without a result"
        clock = job.clock = RunClock(job.cfg.epochs)
        put(("loading",))
        try:
            for event in self.backend.run(self._spec(job), job.stop):
                kind = event[0]
                now = time.monotonic()
                if kind == "loaded":
                    n_train, job.loaded_at = event[1], now
                    clock.on_loaded(now)
                    job.worker_pid = event[3] if len(event) > 3 else None
                    put(event)
                elif kind == "batch":
                    clock.on_batch(event[1][0], event[1][1], now)
                    put(event)
                elif kind == "epoch":
                    history.append(event[1])
                    last = event[2]
                    took = clock.on_epoch(now)
                    if took is not None:
                        with self._lock:
                            self._evals.append(took)
                    put(("epoch", event[1]))
                elif kind == "look":
                    put(event)
                elif kind == "end":
                    state = "stopped" if event[1] else "finished"
                elif kind == "error":
                    state, reason = "failed", event[1]
        except JobFailed as exc:
            state, reason = "failed", str(exc)
        except Exception as exc:   # the backend itself broke: this run fails, the server goes on
            state, reason = "failed", one_line(exc)
        if state == "finished" and len(history) < job.cfg.epochs:
            state = "stopped"
        if state == "finished":
            message = (f"Finished: test accuracy {history[-1]['test_accuracy']:.2f}% "
                       f"after {plural(job.cfg.epochs, 'epoch')}.")
        elif state == "stopped":
            message = f"Stopped after {len(history)} of {plural(job.cfg.epochs, 'epoch')}."
        else:
            message = f"Failed: {reason.rstrip('.')}."
        name, metrics = None, None
        try:
            message, name, metrics = self._keep(last, n_train, state, message)
        finally:
            with self._lock:
                self._running.pop(job.id, None)
                job.state = "done"
                self._forget(job)
            if state == "finished" and job.started_at is not None and job.loaded_at is not None:
                self.pace.add(job.loaded_at - job.started_at, time.monotonic() - job.loaded_at, job.estimate)
            put(("final", state, message, name, metrics))
            job.done.set()
            self._dispatch()

    def _keep(self, last: bytes | None, n_train: int, state: str, message: str):
        """Save the last finished epoch (atomically, a new name); (message, file name, test metrics)."""
        if last is None:
            if state == "stopped":
                message += " No epoch had finished, so nothing was saved."
            return message, None, None
        try:
            ckpt = checkpoint_from_bytes(last)
        except Exception as exc:
            return message + f" Could not read the run's checkpoint: {one_line(exc)}", None, None
        metrics = ckpt.get("test_metrics")
        if n_train < self.budget.min_saved_samples:
            return (message + f" Not saved: runs on fewer than {self.budget.min_saved_samples:,} training "
                              f"samples are for trying settings only.", None, metrics)
        try:
            with self._save_lock:
                name = self._save(ckpt)
                gone = [g for g in prune(self.runs_dir, self.budget.keep_runs) if g != name]
        except Exception as exc:
            return message + f" Could not save the checkpoint: {exc}", None, metrics
        message += f" Saved as {name}; pick it in the Draw tab."
        if gone:
            message += f" Removed the oldest {plural(len(gone), 'run')} to keep the {self.budget.keep_runs} newest."
        return message, name, metrics

    def _save(self, ckpt: dict) -> str:
        acc = ckpt["test_metrics"]["accuracy"]
        base = f"run-{_dt.datetime.now():%Y%m%d-%H%M%S}-{acc:.2f}"
        name, n = f"{base}.pt", 1
        while (self.runs_dir / name).exists():   # never overwrite an existing checkpoint
            n += 1
            name = f"{base}-{n}.pt"
        save_checkpoint(ckpt, self.runs_dir / name)
        return name

    # ------------------------------------------------------------------ the stream
    def stream(self, values: dict, owner: str = "") -> Iterator[TrainUpdate]:
        try:
            job = self.submit(values, owner)
        except ConfigError as exc:
            yield TrainUpdate("refused", f"Not started: {exc}.")
            return
        try:
            yield from self._follow(job)
        finally:  # also on GeneratorExit, when the client went away
            self._cancel(job)
            job.done.wait(CLOSE_WAIT_SECONDS)

    def _follow(self, job: Job) -> Iterator[TrainUpdate]:
        cfg = job.cfg
        shown, last_yield = None, 0.0
        while job.state == "waiting":
            self._dispatch()   # a cluster that grew (or came back) has room now: no other event says so
            position, wait = self.wait_of(job)
            now = time.monotonic()
            if position and (position != shown or now - last_yield >= QUEUED_HEARTBEAT_SECONDS):
                st = self.status()
                shown, last_yield = position, now
                yield TrainUpdate("queued", queued_message(position, wait, st["running"], st["waiting"]),
                                  eta_seconds=wait, epochs=cfg.epochs, position=position)
            job.moved.wait(POLL_SECONDS)
            job.moved.clear()
        if job.started_at is None:   # taken out of the queue before it started
            yield TrainUpdate("stopped", "Taken out of the queue before it started; nothing was trained.",
                              epochs=cfg.epochs)
            return
        n_train = train_samples(cfg)
        curves = Curves(cfg.epochs, n_train, cfg.batch_size)
        history: list[dict] = []
        batch, batches = 0, curves.batches
        run_start = epoch_start = last_yield = time.perf_counter()
        loaded = False   # "loading" (a worker starting, MNIST being read) until the job says it trains
        look: dict | None = None

        def update(state: str, message: str) -> TrainUpdate:
            done = (len(history) + (batch / batches if batches else 0)) / cfg.epochs
            now = time.perf_counter()
            eta = (now - run_start) * (1 - done) / done if 0 < done < 1 else None
            ips = curves.seen(batch) / (now - epoch_start) if batch and now > epoch_start else None
            return TrainUpdate(state, message, list(history), batch, batches, eta, None, list(curves.train),
                               list(curves.test), ips, done, cfg.epochs, look=look)

        while True:
            try:
                event = job.events.get(timeout=POLL_SECONDS)
            except queue.Empty:
                event = None
            kind = event[0] if event else None
            fresh = kind is not None
            if kind == "loading":
                yield TrainUpdate("loading", "Loading MNIST...", epochs=cfg.epochs)
                continue
            if kind == "loaded":
                loaded = True
                if event[1] != curves.samples:
                    curves = Curves(cfg.epochs, event[1], cfg.batch_size)
                    batches = curves.batches
                run_start = epoch_start = time.perf_counter()
            elif kind == "batch":
                batch, batches = event[1][0], event[1][1]
                fresh = curves.on_batch(len(history) + 1, *event[1])   # a new point (every 30+ batches)
            elif kind == "epoch":
                history.append(event[1])
                curves.on_epoch(event[1])
                batch, epoch_start = 0, time.perf_counter()
            elif kind == "look":
                look = merge_look(look, event[1])
            elif kind == "final":
                _, state, message, name, metrics = event
                out = update(state, message)
                out.checkpoint, out.test_metrics = name, metrics
                if state == "finished":
                    out.progress = 1.0
                yield out
                return
            if not job.events.empty() or not loaded:
                continue  # catch up before reporting; nothing new to say while loading
            if not fresh and time.perf_counter() - last_yield < HEARTBEAT_SECONDS:
                continue  # no new point or epoch: the status (batch, ETA) moves with a heartbeat only
            last_yield = time.perf_counter()
            yield update("running", f"Epoch {min(len(history) + 1, cfg.epochs)} of {cfg.epochs}")

    def close(self) -> None:
        self.stop()
        self.backend.close()


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


def _cuda_available() -> bool:
    import torch
    return torch.cuda.is_available()
