"""One training job, wherever it runs: a plain spec in, progress events out, the checkpoint as bytes.

The app's queue (mnist_web/training_service.py) hands a job to a worker process of this machine or to
a Ray task on another one; both run `run_job` here, so a run gives the same per-epoch metrics wherever
it goes (CPU runs are deterministic for a seed and thread count). No app imports: only the ML library.

spec: {"config": TrainConfig.to_dict(), "data_dir": str | None, "download": bool, "threads": int}
A spec with "kind": "teach" is a teach (teach.py: fine-tune a model on a user's drawings; its spec in
teach.teach_spec): run_job hands it to run_teach_job, which emits the same events (no Look).
events, in order: small typed records of plain values (tuples with names, so they pickle across a pipe
or Ray's object store; field 0 is the kind, filled in: Loaded(1200, 2, 4242) == ("loaded", 1200, 2, 4242)):
    Loaded(n_train, threads, pid)              MNIST read, training starts (in process pid)
    Batch(done, total, loss, accuracy)         every Trainer.progress_every batches (the epoch's means so far)
    Look(snapshot)                             the run as it trains (watch.py): before the first step,
                                               ~10 times an epoch, after each epoch
    Epoch(record, checkpoint)                  after each finished epoch: its record dict, the run so far
    End(stopped)                               the run is over (finished or stopped)
    Error(reason)                              it could not go on (bad data, a crash): one line
Every epoch carries the whole checkpoint (~60 KB: last and best weights, history, test metrics), so
whoever receives the events holds the last finished epoch even if the worker dies the next second.
"""
from __future__ import annotations

import io
import os
import queue
import threading
from collections.abc import Callable, Iterator
from typing import ClassVar, NamedTuple

import torch

from .config import ConfigError, TrainConfig, train_samples
from .data import DataError, load_mnist
from .teach import TeachError, TeachStopped, finetune, split_held, teach_spec
from .train import StopFlag, Trainer
from .watch import Watcher, snapshot_every

_DATA: dict[tuple, tuple] = {}   # (data_dir, download) -> (train, test): read once per worker process


# ------------------------------------------------------------------------------ the events
class _Tagged:
    """What every event record shares: field 0, `kind`, is the class's KIND, filled in when one is made
    (never passed), and pickling (a pipe, Ray) sends the other fields only. Records compare equal to
    the plain tuple of the same values."""
    __slots__ = ()
    KIND: ClassVar[str] = ""

    def __new__(cls, *fields, **named):
        return super().__new__(cls, cls.KIND, *fields, **named)

    def __getnewargs__(self) -> tuple:
        return tuple(self)[1:]


class _Loaded(NamedTuple):
    kind: str
    n_train: int          # training samples of the run
    threads: int          # torch threads it trains with
    pid: int | None       # the process training it


class Loaded(_Tagged, _Loaded):
    """MNIST read, training starts."""
    __slots__ = ()
    KIND = "loaded"


class _Batch(NamedTuple):
    kind: str
    done: int             # batches of the epoch done
    total: int            # batches in the epoch
    loss: float           # the epoch's mean training loss so far
    accuracy: float       # the epoch's training accuracy so far, %


class Batch(_Tagged, _Batch):
    """Progress within an epoch."""
    __slots__ = ()
    KIND = "batch"


class _Look(NamedTuple):
    kind: str
    snapshot: dict        # watch.Watcher.snapshot: filters, guesses on the probe digits, ...


class Look(_Tagged, _Look):
    """The run as it trains."""
    __slots__ = ()
    KIND = "look"


class _Epoch(NamedTuple):
    kind: str
    record: dict              # EpochRecord.as_dict(): epoch, lr, train and test loss and accuracy, seconds
    checkpoint: bytes | None  # checkpoint_bytes of the run so far


class Epoch(_Tagged, _Epoch):
    """An epoch finished and was evaluated."""
    __slots__ = ()
    KIND = "epoch"


class _End(NamedTuple):
    kind: str
    stopped: bool         # True: asked to stop before its last epoch


class End(_Tagged, _End):
    """The run is over: the last event of a job that did not fail."""
    __slots__ = ()
    KIND = "end"


class _Error(NamedTuple):
    kind: str
    reason: str           # one line


class Error(_Tagged, _Error):
    """The run could not go on: the last event of a job that failed."""
    __slots__ = ()
    KIND = "error"


JobEvent = Loaded | Batch | Look | Epoch | End | Error
EVENTS: dict[str, type] = {cls.KIND: cls for cls in (Loaded, Batch, Look, Epoch, End, Error)}


def as_event(raw: tuple) -> JobEvent:
    """A backend's event as its record: a record as it is; a plain tuple (kind, *fields) in the same order
    through its kind's class. ValueError for an unknown kind, TypeError for the wrong fields."""
    if isinstance(raw, _Tagged):
        return raw
    cls = EVENTS.get(raw[0]) if isinstance(raw, tuple) and raw else None
    if cls is None:
        raise ValueError(f"not a job event: {str(raw)[:80]}")
    return cls(*raw[1:])


def is_last(event: JobEvent) -> bool:
    """End or Error: nothing follows it."""
    return isinstance(event, (End, Error))


# ------------------------------------------------------------------------------ a job
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


def run_job(spec: dict, emit: Callable[[JobEvent], None], stop: StopFlag | None = None) -> None:
    """Train one run, reporting through emit(event); errors become one Error(reason) event."""
    if spec.get("kind") == "teach":
        return run_teach_job(spec, emit, stop)
    try:
        torch.set_num_threads(max(1, int(spec.get("threads") or 1)))
        cfg = TrainConfig.from_dict(spec["config"])
        train, test = _data(spec.get("data_dir"), bool(spec.get("download", False)))
        emit(Loaded(train_samples(cfg, len(train)), torch.get_num_threads(), os.getpid()))
        epoch = 1

        def on_batch(done: int, total: int, loss: float, acc: float) -> None:
            emit(Batch(done, total, loss, acc))
            if done % every == 0 and done < total:
                emit(Look(watcher.snapshot(trainer.model, epoch, done, total)))

        trainer = Trainer(cfg, train, test, stop=stop, on_batch=on_batch)
        batches = len(trainer.train_batches)
        every = snapshot_every(batches, trainer.progress_every)
        watcher = Watcher(test.images, test.labels, trainer.device)
        emit(Look(watcher.snapshot(trainer.model, 1, 0, batches)))
        for record in trainer.run():
            emit(Epoch(record.as_dict(), checkpoint_bytes(trainer.checkpoint())))
            emit(Look(watcher.snapshot(trainer.model, record.epoch, batches, batches,
                                    trainer.test_metrics["per_class_accuracy"])))
            epoch = record.epoch + 1
        emit(End(trainer.stopped))
    except (DataError, ConfigError) as exc:
        emit(Error(str(exc)))
    except Exception as exc:   # reported to the app as one line, never raised into it
        emit(Error(one_line(exc)))


def run_teach_job(spec: dict, emit: Callable[[JobEvent], None], stop: StopFlag | None = None) -> None:
    """One teach (spec: teach.teach_spec): Loaded(taught drawings, threads, pid), Batch(step, steps, loss,
    accuracy) every teach.PROGRESS_EVERY steps, one Epoch(record, checkpoint) at the end (record: an
    EpochMetrics record, epoch 1 of 1, plus the teach's report), End(stopped); or one Error(reason)."""
    try:
        torch.set_num_threads(max(1, int(spec.get("threads") or 1)))
        base, drawings, cfg = teach_spec(spec)
        taught, held = split_held(drawings, cfg.seed)
        train, test = _data(spec.get("data_dir"), bool(spec.get("download", False)))
        emit(Loaded(len(taught), torch.get_num_threads(), os.getpid()))
        try:
            ckpt, _ = finetune(base, taught, train, test, cfg, stop=stop, held=held, base_name=spec.get("base_name"),
                               on_progress=lambda *a: emit(Batch(*a)))
        except TeachStopped:
            emit(End(True))
            return
        emit(Epoch(ckpt["history"][-1], checkpoint_bytes(ckpt)))
        emit(End(False))
    except (DataError, TeachError) as exc:
        emit(Error(str(exc)))
    except Exception as exc:   # reported to the app as one line, never raised into it
        emit(Error(one_line(exc)))


def job_events(spec: dict, stop: StopFlag | None = None) -> Iterator[JobEvent]:
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
            if is_last(event):
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
