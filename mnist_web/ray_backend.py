"""Training jobs on a Ray cluster: each job is a Ray task that streams its events back and ends with the
checkpoint's bytes in its last epoch event (no shared filesystem: the app saves them into its own runs
folder; each worker reads MNIST from its own MNIST_DATA_DIR, or downloads it when the app allows).

Only imported when the app is given --ray / $MNIST_RAY_ADDRESS (Ray is an optional requirement:
requirements-ray.txt). The workers run mnist_core.jobs.job_events, the same code as the local worker
processes, so they need this project installed (the same version as the app) and torch.

Resources: a CPU job asks for `cpus_per_job` CPUs (and trains with as many threads), a CUDA job for one
GPU; device "auto" becomes "cuda" when the cluster has a GPU, else "cpu". The app's queue sends a CPU
job only while the cluster has a free place for it (slots = the cluster's CPUs / cpus_per_job, asked
again as machines join or leave), so the order stays the app's, first come first served.
A task is never retried (max_retries=0): a worker that dies takes its run with it, reported as failed.
"""
from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator

import ray
from ray.exceptions import RayError, TaskCancelledError

from mnist_core.jobs import job_events, one_line

from .backends import BackendError, JobFailed

SLOTS_TTL_SECONDS = 2.0     # how long the cluster's size is trusted before asking again
CONNECT_TIMEOUT_SECONDS = 5.0
POLL_SECONDS = 0.1


@ray.remote(num_returns="streaming", max_retries=0)
def train_task(spec: dict) -> Iterator[tuple]:
    """One job on a Ray worker: mnist_core.jobs.job_events, reading MNIST from the worker's own
    $MNIST_DATA_DIR (set where `ray start` ran), else from the app's folder if this machine has it."""
    own = os.environ.get("MNIST_DATA_DIR")
    yield from job_events({**spec, "data_dir": own} if own else spec)


def _reachable(address: str) -> str | None:
    """None if host:port accepts a TCP connection, else why not (ray.init would wait a long time)."""
    if address == "auto" or address.startswith("ray://"):
        return None
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=CONNECT_TIMEOUT_SECONDS):
            return None
    except ValueError:
        return f"{address!r} is not host:port"
    except OSError as exc:
        return exc.strerror or type(exc).__name__


class RayBackend:
    name = "ray"

    def __init__(self, cpus_per_job: int = 1) -> None:
        self.cpus_per_job = max(1, int(cpus_per_job))
        self._slots, self._asked = 0, 0.0
        self._lock = threading.Lock()

    @classmethod
    def connect(cls, address: str, cpus_per_job: int = 1) -> RayBackend:
        """Join the cluster at `address` (as a driver; Ray's own authentication settings apply).
        BackendError with one line when it cannot be reached."""
        why = _reachable(address)
        if why is not None:
            raise BackendError(f"cannot reach the Ray cluster at {address} ({why}); start it with "
                               f"`ray start --head`, or leave out --ray / $MNIST_RAY_ADDRESS to train on this machine")
        try:
            if not ray.is_initialized():
                ray.init(address=address, log_to_driver=False, logging_level="ERROR",
                         namespace="mnist-draw", configure_logging=True)
        except Exception as exc:
            raise BackendError(f"cannot join the Ray cluster at {address}: {one_line(exc)}") from None
        return cls(cpus_per_job)

    def _resources(self) -> dict:
        return ray.cluster_resources()

    def slots(self) -> int:
        now = time.monotonic()
        with self._lock:
            if now - self._asked > SLOTS_TTL_SECONDS:
                cpus = self._resources().get("CPU", 0)
                self._slots, self._asked = int(cpus // self.cpus_per_job), now
            return self._slots

    def describe(self) -> str:
        res = self._resources()
        return (f"a Ray cluster of {int(res.get('CPU', 0))} CPUs and {int(res.get('GPU', 0))} GPUs, "
                f"{self.cpus_per_job} CPU{'s' if self.cpus_per_job > 1 else ''} per run")

    def run(self, spec: dict, stop: threading.Event) -> Iterator[tuple]:
        cfg = dict(spec["config"])
        gpus = self._resources().get("GPU", 0)
        if cfg.get("device") == "auto":
            cfg["device"] = "cuda" if gpus else "cpu"
        if cfg["device"] == "cuda" and not gpus:
            yield ("error", "device 'cuda' was asked for but the Ray cluster has no GPU; use 'cpu' or 'auto'")
            return
        options = {"num_gpus": 1, "num_cpus": 1} if cfg["device"] == "cuda" else {"num_cpus": self.cpus_per_job}
        gen = train_task.options(**options).remote({**spec, "config": cfg, "threads": self.cpus_per_job})
        finished = False
        try:
            while True:
                if stop.is_set():
                    ray.cancel(gen)
                    yield ("end", True)
                    finished = True
                    return
                ready, _ = ray.wait([gen], timeout=POLL_SECONDS)
                if not ready:
                    continue
                try:
                    event = ray.get(next(gen))
                except StopIteration:
                    raise JobFailed("its Ray task ended without a result") from None
                except TaskCancelledError:
                    yield ("end", True)
                    finished = True
                    return
                except RayError as exc:
                    raise JobFailed(f"its Ray worker was lost ({one_line(exc)})") from None
                yield event
                if event[0] in ("end", "error"):
                    finished = True
                    return
        finally:
            if not finished:
                ray.cancel(gen, force=True)

    def close(self) -> None:
        pass
