"""Training jobs on a Ray cluster: each job is a Ray task that streams its events back and ends with the
checkpoint's bytes in its last epoch event (no shared filesystem: the app saves them into its own runs
folder; each worker reads MNIST from its own MNIST_DATA_DIR, or downloads it when the app allows).

Only imported when the app is given --ray / $MNIST_RAY_ADDRESS (Ray is an optional requirement:
requirements-ray.txt). The workers run mnist_core.jobs.job_events, the same code as the local worker
processes, so they need this project installed (the same version as the app) and torch.

Resources: the cluster's size is read by one poller (a daemon thread of the backend, every
RESOURCES_POLL_SECONDS, stopped by close()) and kept; everything else (the queue's places, "auto", the
queue line, GET /queue_status) answers from that last read and never asks the cluster. A failed read
keeps the last known size, so a blip of the cluster changes nothing in the queue; before the first
successful read there is no place yet and jobs wait. A CPU job asks for `cpus_per_job` CPUs (and trains
with as many threads), a CUDA job for one GPU and one CPU; device "auto" becomes "cuda" when the cluster
has a GPU, else "cpu". The places per kind: "cuda" = the cluster's GPUs, "cpu" = the CPUs left after one
per GPU, divided by cpus_per_job; the app's queue sends a job only while its kind has a free place, so
Ray never holds a job back and the order stays the app's, first come first served within each kind.
A task is never retried (max_retries=0): a worker that dies takes its run with it, reported as failed.
A teach job (spec kind "teach": fine-tuning on a visitor's drawings) is the same task on a CPU place;
its spec carries the base model's bytes and the drawings, so the worker needs nothing of the app's.
"""
from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping

import ray
from ray.exceptions import RayError, TaskCancelledError

from mnist_core.jobs import End, Error, JobEvent, is_last, job_events, one_line

from .train_backend import BackendError, JobFailed

RESOURCES_POLL_SECONDS = 2.0   # how often the poller reads the cluster's size
GPU_JOB_CPUS = 1             # a CUDA job's CPUs (its process, data loading)
CONNECT_TIMEOUT_SECONDS = 5.0
POLL_SECONDS = 0.1


@ray.remote(num_returns="streaming", max_retries=0)
def train_task(spec: dict) -> Iterator[JobEvent]:
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



class ResourcePoller:
    """The cluster's resources, read by one daemon thread every `every` seconds and kept. value() is the
    last successful read (None before the first); a failed read changes nothing but `failures`/`error`."""

    def __init__(self, read: Callable[[], Mapping], every: float = RESOURCES_POLL_SECONDS) -> None:
        self._read, self.every = read, every
        self._lock = threading.Lock()
        self._value: dict[str, float] | None = None
        self.read_at: float | None = None        # time.monotonic() of the last successful read
        self.reads = self.failures = 0
        self.error: str | None = None            # why the last read failed; None once one succeeds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="mnist-ray-resources", daemon=True)

    def start(self) -> ResourcePoller:
        """One read now (the first jobs find the cluster's size), then one every `every` seconds."""
        self.poll()
        self._thread.start()
        return self

    def poll(self) -> bool:
        """Read the cluster once; False (the last value kept) when the read failed."""
        try:
            value = {str(k): float(v) for k, v in dict(self._read()).items()}
        except Exception as exc:   # the cluster did not answer: keep what was known
            with self._lock:
                self.failures, self.error = self.failures + 1, one_line(exc)
            return False
        with self._lock:
            self._value, self.read_at, self.error = value, time.monotonic(), None
            self.reads += 1
        return True

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            self.poll()

    def value(self) -> dict[str, float] | None:
        with self._lock:
            return dict(self._value) if self._value is not None else None

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(self.every + CONNECT_TIMEOUT_SECONDS)


class RayBackend:
    """Jobs as Ray tasks, placed by device: a line of CPU places and one of GPU places (see the module)."""

    name = "ray"

    def __init__(self, cpus_per_job: int = 1, poll_seconds: float = RESOURCES_POLL_SECONDS) -> None:
        self.cpus_per_job = max(1, int(cpus_per_job))
        self.poller = ResourcePoller(lambda: self._resources(), poll_seconds).start()

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

    def _resources(self) -> Mapping:
        """The one call that asks the cluster (the poller's thread only)."""
        return ray.cluster_resources()

    def capacity(self) -> dict[str, int]:
        res = self.poller.value()
        if res is None:   # never read yet: no place (jobs wait, none is lost)
            return {"cpu": 0, "cuda": 0}
        gpus = int(res.get("GPU", 0))
        cpus = res.get("CPU", 0) - gpus * GPU_JOB_CPUS
        return {"cpu": max(0, int(cpus // self.cpus_per_job)), "cuda": gpus}

    def slots(self) -> int:
        return sum(self.capacity().values())

    def kind_of(self, device: str) -> str:
        """"cuda" for a CUDA job or "auto" when the cluster has a GPU, else "cpu" (a CUDA job on a cluster
        without a GPU takes a CPU place, and its run says at once that there is no GPU)."""
        return "cuda" if device in ("cuda", "auto") and self.capacity()["cuda"] else "cpu"

    def describe(self) -> str:
        res = self.poller.value()
        if res is None:
            return f"a Ray cluster whose size is not known yet ({self.poller.error or 'not read yet'})"
        text = (f"a Ray cluster of {int(res.get('CPU', 0))} CPUs and {int(res.get('GPU', 0))} GPUs, "
                f"{self.cpus_per_job} CPU{'s' if self.cpus_per_job > 1 else ''} per run")
        if self.poller.error is not None and self.poller.read_at is not None:
            text += f" (as read {time.monotonic() - self.poller.read_at:.0f} s ago: the cluster is not answering)"
        return text

    def run(self, spec: dict, stop: threading.Event) -> Iterator[JobEvent]:
        if spec.get("kind") == "teach":   # a teach job (mnist_core/teach.py): a CPU place, like a CPU run
            gen = train_task.options(num_cpus=self.cpus_per_job).remote({**spec, "threads": self.cpus_per_job})
            yield from self._follow(gen, stop)
            return
        cfg = dict(spec["config"])
        if cfg.get("device") == "auto":   # the queue passes its decision; a spec from elsewhere is resolved here
            cfg["device"] = self.kind_of("auto")
        if cfg["device"] == "cuda" and not self.capacity()["cuda"]:
            yield Error("device 'cuda' was asked for but the Ray cluster has no GPU; use 'cpu' or 'auto'")
            return
        options = ({"num_gpus": 1, "num_cpus": GPU_JOB_CPUS} if cfg["device"] == "cuda"
                   else {"num_cpus": self.cpus_per_job})
        gen = train_task.options(**options).remote({**spec, "config": cfg, "threads": self.cpus_per_job})
        yield from self._follow(gen, stop)

    def _follow(self, gen, stop: threading.Event) -> Iterator[JobEvent]:
        """The task's events until its last one; cancelled when `stop` is set or the caller goes away."""
        finished = False
        try:
            while True:
                if stop.is_set():
                    ray.cancel(gen)
                    yield End(True)
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
                    yield End(True)
                    finished = True
                    return
                except RayError as exc:
                    raise JobFailed(f"its Ray worker was lost ({one_line(exc)})") from None
                yield event
                if is_last(event):
                    finished = True
                    return
        finally:
            if not finished:
                ray.cancel(gen, force=True)

    def close(self) -> None:
        """Stops the poller (the cluster and its tasks are not this app's to end)."""
        self.poller.close()
