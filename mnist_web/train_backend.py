"""What a training backend is: the protocol the training service drives, the two errors it raises, and
the kinds of places its jobs take.

backends.py implements it on this machine (worker processes, or threads for tests), ray_backend.py on a
Ray cluster; both import this module, and nothing here imports either of them.

Places: a backend has, per kind, a number of jobs that may run at once (`capacity()`), and says which
kind a job takes from the device it asks for (`kind_of(device)`). This machine's backends have one
pool (`ONE_POOL`) whatever the device; a Ray cluster has a CPU line and a GPU line ("cpu", "cuda"), and
then the kind is also the device the job runs on ("auto" resolved). The queue starts jobs first come
first served within each kind (train_scheduler.Scheduler.start_ready).
"""
from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Protocol

from mnist_core.jobs import JobEvent

ONE_POOL = "any"   # the one kind of place of a backend that does not place jobs by device


def one_pool(device: str) -> str:
    """kind_of of a backend with one pool: every job takes the same kind of place."""
    return ONE_POOL


class BackendError(RuntimeError):
    """The backend cannot be used at all (a Ray cluster unreachable, Ray not installed); one line."""


class JobFailed(RuntimeError):
    """Whatever ran the job is gone (process killed, out of memory, cluster lost); one-line reason."""


class Backend(Protocol):
    """Where the queue's jobs run. slots, capacity, kind_of and describe answer at once from what the
    backend knows (a cluster is read in the background, never by them): the queue calls them often."""

    name: str   # "local", "thread", "ray": GET /queue_status's "backend"

    def slots(self) -> int:
        """How many jobs may run at once now, all kinds together (the sum of capacity())."""

    def capacity(self) -> dict[str, int]:
        """How many jobs of each kind may run at once now (a kind not named: none)."""

    def kind_of(self, device: str) -> str:
        """The kind of place a job asking for `device` ("cpu", "cuda", "auto") takes now."""

    def run(self, spec: dict, stop: threading.Event) -> Iterator[JobEvent]:
        """One job's mnist_core.jobs events (records, or plain tuples of the same values), ending with its
        End or Error; JobFailed with a one-line reason when whatever ran it died. `stop` set: the job
        stops within a batch and ends with End(stopped=True)."""

    def describe(self) -> str:
        """Where the jobs run, in words (the Train tab's queue line)."""

    def close(self) -> None:
        """Ends whatever the backend started (worker processes, a cluster poller)."""
