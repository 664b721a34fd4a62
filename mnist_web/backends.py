"""Where the queue's jobs run: worker processes of this machine (the default), or a thread (tests, tools),
and `make_backend`, which picks one from the app's options. The Ray cluster backend is in ray_backend.py
(imported only when asked for: Ray is optional). What a backend must do (train_backend.Backend): `name`,
`slots()`, `capacity()`, `kind_of(device)`, `run(spec, stop)` (one job's mnist_core.jobs events),
`describe()`, `close()`. Both backends here have one pool of `slots` places, whatever device a job asks for.
"""
from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
import threading
import time
from collections.abc import Iterator

from mnist_core.jobs import End, JobEvent, is_last, job_events, worker_loop

from .train_backend import ONE_POOL, BackendError, JobFailed

__all__ = ["BackendError", "JobFailed", "LocalBackend", "OnePool", "ThreadBackend", "cpu_count", "exit_reason",
           "make_backend"]

POLL_SECONDS = 0.1
STOP_GRACE_SECONDS = 10   # a worker that has not stopped this long after being asked is killed


def cpu_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def exit_reason(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = " (out of memory, or stopped by an administrator)" if -code == signal.SIGKILL else ""
        return f"its worker process was killed by {name}{hint}"
    return f"its worker process ended unexpectedly (exit code {code})"


class OnePool:
    """`_slots` places of one kind, whatever device a job asks for (each worker resolves "auto" itself)."""

    _slots: int

    def slots(self) -> int:
        return self._slots

    def capacity(self) -> dict[str, int]:
        return {ONE_POOL: self._slots}

    def kind_of(self, device: str) -> str:
        return ONE_POOL


class _Worker:
    """One spawned process running mnist_core.jobs.worker_loop, reused job after job."""

    def __init__(self, ctx) -> None:
        self.conn, child = ctx.Pipe()
        self.stop = ctx.Event()
        self.proc = ctx.Process(target=worker_loop, args=(child, self.stop), name="mnist-train-worker", daemon=True)
        self.proc.start()
        child.close()

    def close(self) -> None:
        if self.proc.is_alive():
            with contextlib.suppress(OSError):
                self.conn.send(None)
            self.proc.join(2)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)
        self.conn.close()


class LocalBackend(OnePool):
    """`slots` worker processes (multiprocessing, spawn: a clean interpreter, no threads or locks inherited
    from the server), started when first needed and kept for the next jobs (torch imported and MNIST read
    once per worker). A worker that dies takes only its own job with it; the next job gets a new one."""

    name = "local"

    def __init__(self, slots: int = 1, threads: int | None = None) -> None:
        if slots < 1:
            raise ValueError("train slots must be at least 1")
        self._slots = slots
        self.threads = threads or max(1, cpu_count() // slots)
        self._ctx = mp.get_context("spawn")
        self._idle: list[_Worker] = []
        self._busy: set[_Worker] = set()
        self._lock = threading.Lock()

    def describe(self) -> str:
        return (f"{self._slots} worker process{'es' if self._slots > 1 else ''} on this machine, "
                f"{self.threads} thread{'s' if self.threads > 1 else ''} each")

    def pids(self) -> list[int]:
        """The processes running a job now (for tests and the admin)."""
        with self._lock:
            return [w.proc.pid for w in self._busy if w.proc.pid is not None]

    def _take(self) -> _Worker:
        with self._lock:
            while self._idle:
                w = self._idle.pop()
                if w.proc.is_alive():
                    self._busy.add(w)
                    return w
                w.close()
        w = _Worker(self._ctx)
        with self._lock:
            self._busy.add(w)
        return w

    def run(self, spec: dict, stop: threading.Event) -> Iterator[JobEvent]:
        w = self._take()
        reusable = False
        try:
            w.stop.clear()
            w.conn.send({**spec, "threads": self.threads})
            asked = None
            while True:
                if stop.is_set() and asked is None:
                    w.stop.set()
                    asked = time.monotonic()
                if w.conn.poll(POLL_SECONDS):
                    try:
                        event = w.conn.recv()
                    except (EOFError, OSError):
                        w.proc.join(5)
                        raise JobFailed(exit_reason(w.proc.exitcode)) from None
                    yield event
                    if is_last(event):
                        reusable = True
                        return
                elif not w.proc.is_alive():
                    raise JobFailed(exit_reason(w.proc.exitcode))
                elif asked is not None and time.monotonic() - asked > STOP_GRACE_SECONDS:
                    yield End(True)   # it did not stop in time (stuck reading data): killed below
                    return
        finally:
            with self._lock:
                self._busy.discard(w)
                if reusable and w.proc.is_alive():
                    self._idle.append(w)
                    w = None
            if w is not None:
                w.close()

    def close(self) -> None:
        with self._lock:
            workers, self._idle = self._idle, []
        for w in workers:
            w.close()


class ThreadBackend(OnePool):
    """Jobs in threads of this process: no isolation, for tests and tools that want no extra processes."""

    name = "thread"

    def __init__(self, slots: int = 1, threads: int | None = None) -> None:
        self._slots, self.threads = slots, threads or 1

    def describe(self) -> str:
        return f"{self._slots} thread{'s' if self._slots > 1 else ''} in the server process"

    def run(self, spec: dict, stop: threading.Event) -> Iterator[JobEvent]:
        yield from job_events({**spec, "threads": self.threads}, stop)   # the run in a thread; closed: stops

    def close(self) -> None:
        pass


def make_backend(slots: int = 1, threads: int | None = None, ray_address: str | None = None):
    """The app's backend: a Ray cluster when an address is given (BackendError when it cannot be
    reached), else `slots` worker processes here."""
    if ray_address:
        from .ray_backend import RayBackend  # Ray is imported only here: optional

        return RayBackend.connect(ray_address, cpus_per_job=threads or 1)
    return LocalBackend(slots, threads)
