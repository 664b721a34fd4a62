"""Where the queue's jobs run: worker processes of this machine (the default), or a thread (tests, tools).
The Ray cluster backend is in ray_backend.py (imported only when asked for).

A backend has `name`, `slots()` (how many jobs may run at once now), `run(spec, stop)` (a generator of
mnist_core.jobs events for one job, ending with its "end" or "error" event; raises JobFailed with a
one-line reason when whatever ran the job died), `describe()` and `close()`. `stop` is a
threading.Event: set, the job stops within a batch and ends with ("end", True).
"""
from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
import threading
import time
from collections.abc import Iterator

from mnist_core.jobs import job_events, worker_loop

POLL_SECONDS = 0.1
STOP_GRACE_SECONDS = 10   # a worker that has not stopped this long after being asked is killed


class BackendError(RuntimeError):
    """The backend cannot be used at all (a Ray cluster unreachable, Ray not installed); one line."""


class JobFailed(RuntimeError):
    """Whatever ran the job is gone (process killed, out of memory, cluster lost); one-line reason."""


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


class LocalBackend:
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

    def slots(self) -> int:
        return self._slots

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

    def run(self, spec: dict, stop: threading.Event) -> Iterator[tuple]:
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
                    if event[0] in ("end", "error"):
                        reusable = True
                        return
                elif not w.proc.is_alive():
                    raise JobFailed(exit_reason(w.proc.exitcode))
                elif asked is not None and time.monotonic() - asked > STOP_GRACE_SECONDS:
                    yield ("end", True)   # it did not stop in time (stuck reading data): killed below
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


class ThreadBackend:
    """Jobs in threads of this process: no isolation, for tests and tools that want no extra processes."""

    name = "thread"

    def __init__(self, slots: int = 1, threads: int | None = None) -> None:
        self._slots, self.threads = slots, threads or 1

    def slots(self) -> int:
        return self._slots

    def describe(self) -> str:
        return f"{self._slots} thread{'s' if self._slots > 1 else ''} in the server process"

    def run(self, spec: dict, stop: threading.Event) -> Iterator[tuple]:
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
