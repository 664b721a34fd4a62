"""Training for a shared app: a fair FIFO queue of jobs within a budget, run by a backend, streamed as updates.

`TrainingService` is the facade the app uses (the Train tab's handlers, GET /queue_status, the server's
launch): `stream(values, owner)` yields TrainUpdates; `stop`, `status`, `close`. Values are checked
without coercion and against the TrainingBudget before anything is queued. Start always gets an
answer at once: the job starts now ("loading"), waits ("queued", with its position and an ETA from the
measured pace of the runs ahead, updated as the queue moves), or is refused (bad values, over budget,
a second job of the same browser session, the queue full). Closing the stream (the tab went away)
takes a waiting job out of the queue and stops a running one.

Teaching (`stream_teach`: fine-tune a model on a visitor's own drawings, mnist_core/teach.py) is a job
of its own kind in the same queue: the drawings are checked before anything is queued (one line when
refused), then it waits, runs in the same backend and streams like a run.

It wires three pieces: the scheduler (train_scheduler.py: who waits, who runs, positions and ETA), the
runner (train_runner.py: one thread per running job here, relaying the backend's events, saving the
result; the jobs themselves run in the backend, backends.py or ray_backend.py, never in the server's
threads) and the presentation (train_updates.py: the updates a stream yields).
"""
from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from mnist_core.config import ConfigError, TrainConfig, TrainingBudget, estimate_seconds, make_config
from mnist_core.teach import TeachConfig, TeachError, split_held, validate_drawings

from .backends import LocalBackend
from .train_backend import Backend
from .train_runner import Final, Runner
from .train_scheduler import Job, Scheduler
from .train_updates import POLL_SECONDS, TrainUpdate, follow_run, queued, refused, taken_out

__all__ = ["MAX_WAITING", "TrainUpdate", "TrainingService"]

QUEUED_HEARTBEAT_SECONDS = 2.0   # a waiting page's ETA is refreshed this often (and at once when it moves up)
MAX_WAITING = 40      # jobs that may wait; past it Start answers "the queue is full"
CLOSE_WAIT_SECONDS = 30   # a closed stream waits this long for its stopped run to wind down
ORPHAN_GRACE_SECONDS = 60  # a job whose page closed (an owner with a token) waits this long for a reload
TEACH_JOB = TrainConfig(epochs=1, device="cpu")   # how the queue sees a teach job: one pass, on a CPU place
TEACH_ESTIMATE_SECONDS = 20.0   # a teach on 1 CPU thread (issue 33's bound), for the ETA of the jobs behind


class TrainingService:
    def __init__(self, runs_dir: Path, data_dir: str | None = None, download: bool = True,
                 budget: TrainingBudget | None = None, backend: Backend | None = None,
                 max_waiting: int = MAX_WAITING, per_address: int = 0, teach: dict | None = None) -> None:
        self.runs_dir = Path(runs_dir)
        self.teach_options = teach   # a teach job's settings (mnist_core/teach.py TeachConfig); None: its defaults
        self.data_dir = data_dir
        self.download = download
        self.budget = budget or TrainingBudget()
        self.backend = backend if backend is not None else LocalBackend()
        self.scheduler = Scheduler(max_waiting, per_address)
        self._follow_lock = threading.Lock()
        self.runner = Runner(self.backend, self.runs_dir, self.budget, data_dir, download,
                             on_eval=self.scheduler.record_eval)

    # ------------------------------------------------------------------ state
    @property
    def max_waiting(self) -> int:
        return self.scheduler.max_waiting

    @max_waiting.setter
    def max_waiting(self, n: int) -> None:
        self.scheduler.max_waiting = n

    @property
    def pace(self):
        """What the finished runs measured here (train_queue.Pace)."""
        return self.scheduler.pace

    @property
    def _running(self) -> dict[int, Job]:   # the running jobs by id (tests reach a job's worker)
        return self.scheduler.running

    @property
    def busy(self) -> bool:
        return any(self.scheduler.counts())

    def status(self) -> dict:
        """What /queue_status and the Train tab show."""
        running, waiting = self.scheduler.counts()
        return {"running": running, "waiting": waiting, "slots": self._slots(), "max_waiting": self.max_waiting,
                "backend": self.backend.name, "where": self.backend.describe()}

    def running_pids(self) -> list[int]:
        """The processes training the running jobs (tests, an admin): local workers or Ray workers."""
        return self.scheduler.running_pids()

    def _capacity(self) -> dict[str, int]:
        """Places per kind now. Backends answer from what they know (a cluster is read in the background);
        one that cannot tell has no free place now: waiting jobs wait, none is ever cancelled for it."""
        try:
            return {str(k): max(0, int(n)) for k, n in self.backend.capacity().items()}
        except Exception:
            return {}

    def _kind_of(self, device: str) -> str:
        try:
            return self.backend.kind_of(device)
        except Exception:   # as above: a kind with no place, the job waits
            return device

    def _slots(self) -> int:
        return sum(self._capacity().values())

    def stop(self, owner: str | None = None) -> bool:
        """Stop the owner's job: a waiting one leaves the queue, a running one stops within a batch.
        Without an owner: every job (shutdown, tests). False when there was nothing to stop."""
        jobs = self.scheduler.jobs(owner)
        for job in jobs:
            self.scheduler.cancel(job)
        return bool(jobs)

    def check(self, values: dict) -> TrainConfig:
        """The run's config, or ConfigError: bad values, empty fields (None) or over the budget."""
        cfg = make_config(nullable=(), **values)
        on_cpu = cfg.device == "cpu" or (cfg.device == "auto" and not _cuda_available())
        self.budget.check(cfg, on_cpu=on_cpu)
        return cfg

    # ------------------------------------------------------------------ the queue
    def submit(self, values: dict, owner: str = "", client: str = "", persistent: bool = False) -> Job:
        """Queue a job (and start it if a slot is free). ConfigError with the reason when refused.
        `client`: the address it came from (jobs per address); `persistent`: its owner has a token."""
        cfg = self.check(values)
        job = self.scheduler.admit(cfg, owner, estimate_seconds(cfg), self._slots(), client, persistent)
        self._dispatch()
        return job

    def submit_teach(self, drawings, base: bytes, base_name: str, owner: str = "", client: str = "",
                     persistent: bool = False) -> Job:
        """Queue a teach job: fine-tune the model `base` (checkpoint bytes) on the drawings. ConfigError
        with the reason when the drawings are too few or invalid, or the queue refuses it."""
        try:
            checked = validate_drawings(drawings)
            split_held(checked, TeachConfig.from_dict(self.teach_options).seed)   # too few of a digit: refused
        except TeachError as exc:
            raise ConfigError(str(exc)) from None
        spec = {"base": base, "base_name": base_name, "drawings": checked}
        if self.teach_options:
            spec["teach"] = dict(self.teach_options)
        job = self.scheduler.admit(TEACH_JOB, owner, TEACH_ESTIMATE_SECONDS, self._slots(), client, persistent,
                                   teach=spec)
        self._dispatch()
        return job

    def wait_of(self, job: Job) -> tuple[int, float | None]:
        """(position in the line of its kind, seconds until it starts) of a waiting job; (0, 0) once it is
        not waiting."""
        return self.scheduler.wait_of(job, self._capacity(), self._kind_of)

    def _dispatch(self) -> None:
        """Start waiting jobs, first come first served within each kind of place, while their kind has a
        free place: each in its thread. On a backend that places jobs by device (Ray), "auto" becomes the
        device of the place the job took, so it runs where it was counted."""
        for job in self.scheduler.start_ready(self._capacity(), self._kind_of):
            if job.cfg.device == "auto" and job.kind in ("cpu", "cuda"):
                job.cfg = replace(job.cfg, device=job.kind)
            threading.Thread(target=self._execute, args=(job,), name=f"mnist-train-job-{job.id}",
                             daemon=True).start()

    def _execute(self, job: Job) -> None:
        """A job's runner thread: run it, then free its slot, tell its stream, start the next job."""
        final = Final("failed", "Failed: the run ended without a result.")
        try:
            final = self.runner.run(job)
        finally:
            # the measured pace is the training runs' (a teach's seconds say nothing of an epoch's)
            self.scheduler.finish(job, finished=final.state == "finished" and job.teach is None)
            job.final = final
            job.events.put(final)
            job.done.set()
            self._dispatch()

    # ------------------------------------------------------------------ the stream
    def stream(self, values: dict, owner: str = "", client: str = "",
               persistent: bool = False) -> Iterator[TrainUpdate]:
        try:
            job = self.submit(values, owner, client, persistent)
        except ConfigError as exc:
            yield refused(str(exc))
            return
        yield from self._follow(job)

    def stream_teach(self, drawings, base: bytes, base_name: str, owner: str = "", client: str = "",
                     persistent: bool = False) -> Iterator[TrainUpdate]:
        """A teach job's updates, as stream()'s: refused, queued, loading, running, then its end (the
        saved run's file name and the report in the last one)."""
        try:
            job = self.submit_teach(drawings, base, base_name, owner, client, persistent)
        except ConfigError as exc:
            yield refused(str(exc))
            return
        yield from self._follow(job)

    def resume(self, owner: str) -> Iterator[TrainUpdate]:
        """The owner's waiting or running job, shown again from where it is (a reloaded page); nothing
        when the owner has none. The stream that showed it before ends."""
        jobs = self.scheduler.jobs(owner) if owner else []
        if jobs:
            yield from self._follow(jobs[0])

    def release(self, owner: str) -> None:
        """The owner's page closed: their job (if any) is shown by nobody now and is stopped unless a
        reload takes it up within ORPHAN_GRACE_SECONDS (an owner without a token: stopped at once)."""
        for job in self.scheduler.jobs(owner):
            with self._follow_lock:
                job.follower += 1
                me = job.follower
            self._let_go(job, me)

    def _follow(self, job: Job) -> Iterator[TrainUpdate]:
        with self._follow_lock:
            job.follower += 1
            me = job.follower
        try:
            yield from self._queued(job, me)
            if job.follower != me:
                return
            if job.started_at is None:   # taken out of the queue before it started
                yield taken_out(job.cfg.epochs)
                return
            yield from follow_run(job, me)
        finally:  # also on GeneratorExit, when the client went away
            if job.follower == me:
                self._let_go(job, me)

    def _let_go(self, job: Job, me: int) -> None:
        """Nobody shows the job any more: a job of a session owner is taken out or stopped now; one of a
        token owner after a grace period, unless a reload's stream took it up meanwhile."""
        if job.done.is_set():
            return
        if not job.persistent:
            self.scheduler.cancel(job)
            job.done.wait(CLOSE_WAIT_SECONDS)
            return
        timer = threading.Timer(ORPHAN_GRACE_SECONDS, lambda: job.follower == me and self.scheduler.cancel(job))
        timer.daemon = True
        timer.start()

    def _queued(self, job: Job, me: int = 0) -> Iterator[TrainUpdate]:
        """A waiting job's updates: its position at once when it moves up, its ETA refreshed now and then."""
        shown, last_yield = None, 0.0
        while job.state == "waiting" and job.follower == me:
            self._dispatch()   # a cluster that grew (or came back) has room now: no other event says so
            position, wait = self.wait_of(job)
            now = time.monotonic()
            if position and (position != shown or now - last_yield >= QUEUED_HEARTBEAT_SECONDS):
                running, waiting = self.scheduler.counts()
                shown, last_yield = position, now
                yield queued(position, wait, running, waiting, job.cfg.epochs)
            job.moved.wait(POLL_SECONDS)
            job.moved.clear()

    def close(self) -> None:
        self.stop()
        self.backend.close()


def _cuda_available() -> bool:
    import torch
    return torch.cuda.is_available()
