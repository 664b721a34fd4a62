"""One training job, wherever it runs: a plain spec in, progress events out, the checkpoint as bytes.

The app's queue (mnist_web/training_service.py) hands a job to a worker process of this machine or to
a Ray task on another one; both run `run_job` here, so a run gives the same per-epoch metrics wherever
it goes (CPU runs are deterministic for a seed and thread count). No app imports: only the ML library.

spec: {"config": TrainConfig.to_dict(), "data_dir": str | None, "download": bool, "threads": int}
events, in order (plain tuples of plain values, so they cross a pipe or Ray's object store):
    ("loaded", n_train, threads, pid)                     MNIST read, training starts (in process pid)
    ("batch", (done, total, mean loss, mean accuracy %))  every Trainer.progress_every batches
    ("look", snapshot dict)                               the run as it trains (watch.py): before the
                                                          first step, ~10 times an epoch, after each epoch
    ("epoch", record dict, checkpoint bytes)              after each finished epoch: the run so far
    ("end", stopped: bool)                                the run is over (finished or stopped)
    ("error", one-line reason)                            it could not go on (bad data, a crash)
Every epoch carries the whole checkpoint (~60 KB: last and best weights, history, test metrics), so
whoever receives the events holds the last finished epoch even if the worker dies the next second.
"""
from __future__ import annotations

import io
import os
import queue
import threading
from collections.abc import Callable, Iterator

import torch

from .config import ConfigError, TrainConfig, train_samples
from .data import DataError, load_mnist
from .train import StopFlag, Trainer
from .watch import Watcher, snapshot_every

_DATA: dict[tuple, tuple] = {}   # (data_dir, download) -> (train, test): read once per worker process


def checkpoint_bytes(ckpt: dict) -> bytes:
    buf = io.BytesIO()
    torch.save(ckpt, buf)
    return buf.getvalue()


def checkpoint_from_bytes(data: bytes) -> dict:
    """The dict back (weights_only: bytes from another machine can hold tensors and plain values only)."""
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300]}" if text else type(exc).__name__


def _data(data_dir: str | None, download: bool):
    key = (data_dir, download)
    if key not in _DATA:
        _DATA[key] = load_mnist(data_dir, download=download)
    return _DATA[key]


def run_job(spec: dict, emit: Callable[[tuple], None], stop: StopFlag | None = None) -> None:
    """Train one run, reporting through emit(event); errors become one ("error", reason) event."""
    try:
        torch.set_num_threads(max(1, int(spec.get("threads") or 1)))
        cfg = TrainConfig.from_dict(spec["config"])
        train, test = _data(spec.get("data_dir"), bool(spec.get("download", False)))
        emit(("loaded", train_samples(cfg, len(train)), torch.get_num_threads(), os.getpid()))
        epoch = 1

        def on_batch(done: int, total: int, loss: float, acc: float) -> None:
            emit(("batch", (done, total, loss, acc)))
            if done % every == 0 and done < total:
                emit(("look", watcher.snapshot(trainer.model, epoch, done, total)))

        trainer = Trainer(cfg, train, test, stop=stop, on_batch=on_batch)
        batches = len(trainer.train_batches)
        every = snapshot_every(batches, trainer.progress_every)
        watcher = Watcher(test.images, test.labels, trainer.device)
        emit(("look", watcher.snapshot(trainer.model, 1, 0, batches)))
        for record in trainer.run():
            emit(("epoch", record.as_dict(), checkpoint_bytes(trainer.checkpoint())))
            emit(("look", watcher.snapshot(trainer.model, record.epoch, batches, batches,
                                           trainer.test_metrics["per_class_accuracy"])))
            epoch = record.epoch + 1
        emit(("end", trainer.stopped))
    except (DataError, ConfigError) as exc:
        emit(("error", str(exc)))
    except Exception as exc:   # reported to the app as one line, never raised into it
        emit(("error", one_line(exc)))


def job_events(spec: dict, stop: StopFlag | None = None) -> Iterator[tuple]:
    """run_job as a generator (for Ray's streaming tasks): the run in a thread, its events yielded here.
    Closing the generator stops the run within a batch."""
    events: queue.Queue = queue.Queue()
    flag = threading.Event()

    class Either:
        def is_set(self) -> bool:
            return flag.is_set() or (stop is not None and stop.is_set())

    t = threading.Thread(target=run_job, args=(spec, events.put, Either()), name="mnist-job", daemon=True)
    t.start()
    try:
        while True:
            event = events.get()
            yield event
            if event[0] in ("end", "error"):
                return
    finally:
        flag.set()
        t.join()


def worker_loop(conn, stop) -> None:
    """A worker process's whole life (multiprocessing, spawn): receive job specs over the pipe, send
    each one's events back, until told to quit (None) or the pipe closes. `stop` (an Event shared with
    the app) asks the current job to stop; the app clears it before sending the next job."""
    torch.set_num_threads(1)
    while True:
        try:
            spec = conn.recv()
        except (EOFError, OSError):
            return
        if spec is None:
            return
        try:
            run_job(spec, conn.send, stop)
        except (BrokenPipeError, OSError):
            return
