"""Training for a shared app: one run at a time, within a budget, stoppable, streamed as small updates.

The web tab (and anything else) calls `stream(values, owner)` and iterates the updates. Values are
checked without coercion and against the TrainingBudget before anything starts. Training runs in a
worker thread so that the stream can report progress several times a second and notice a stop request
(Stop button, closed browser tab) between batches; the Trainer's progress callbacks become windowed
train-curve points (train_views.Curves). An update goes out for each new point, each finished epoch
and a heartbeat. Whatever happens, the finally block stops the worker, saves the finished epochs of a
run on enough samples (never over an existing file), prunes the runs folder and releases the lock.
"""
from __future__ import annotations

import datetime as _dt
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch

from mnist_core.checkpoint import save_checkpoint
from mnist_core.config import ConfigError, TrainingBudget, make_config, train_samples
from mnist_core.data import DataError, load_mnist
from mnist_core.runs import prune
from mnist_core.text import plural
from mnist_core.train import Trainer

from .train_views import Curves

# Training uses the process's default intra-op threads (all cores: 1.6x faster than 1 thread on the 2-core
# CPU, benchmarks/results/cpu_tuning.txt), read at import, before request threads set 1 for inference
# (predict.INFERENCE_THREADS): a new thread starts with the last value set anywhere in the process.
TRAIN_THREADS = torch.get_num_threads()
POLL_SECONDS = 0.25   # how often the stream wakes up to report progress or notice a stop
HEARTBEAT_SECONDS = 0.5   # with no new point or epoch, a status update this often (progress, ETA)


@dataclass
class TrainUpdate:
    state: str                    # refused | loading | running | finished | stopped | failed
    message: str
    history: list[dict] = field(default_factory=list)
    batch: int = 0                # progress within the current epoch
    batches: int = 0
    eta_seconds: float | None = None   # the whole run's remaining time (measured pace)
    checkpoint: str | None = None  # file name in the runs folder, once saved
    train_points: list[tuple] = field(default_factory=list)   # (x, loss, accuracy %), capped per run
    test_points: list[tuple] = field(default_factory=list)    # (epoch, test loss, test accuracy %)
    images_per_s: float | None = None
    progress: float = 0.0          # fraction of the whole run done
    epochs: int = 0
    test_metrics: dict | None = None   # the last evaluation (per class, confusion), at the end


class TrainingService:
    def __init__(self, runs_dir: Path, data_dir: str | None = None, download: bool = True,
                 budget: TrainingBudget | None = None) -> None:
        self.runs_dir = Path(runs_dir)
        self.data_dir = data_dir
        self.download = download
        self.budget = budget or TrainingBudget()
        self._lock = threading.Lock()          # held for the whole of a run: one run at a time
        self._owner: str | None = None
        self._stop: threading.Event | None = None
        self._n_train = 0

    @property
    def busy(self) -> bool:
        return self._lock.locked()

    def stop(self, owner: str | None = None) -> bool:
        """Ask the current run to stop (only the owner's, when an owner is given)."""
        stop = self._stop
        if stop is None or (owner is not None and owner != self._owner):
            return False
        stop.set()
        return True

    def check(self, values: dict):
        """The run's config, or ConfigError: bad values, empty fields (None) or over the budget."""
        cfg = make_config(nullable=(), **values)
        on_cpu = cfg.device == "cpu" or (cfg.device == "auto" and not _cuda_available())
        self.budget.check(cfg, on_cpu=on_cpu)
        return cfg

    def stream(self, values: dict, owner: str = "") -> Iterator[TrainUpdate]:
        try:
            cfg = self.check(values)
        except ConfigError as exc:
            yield TrainUpdate("refused", f"Not started: {exc}.")
            return
        if not self._lock.acquire(blocking=False):
            yield TrainUpdate("refused", "Not started: another training run is in progress on this server "
                                         "(one at a time). Try again when it has finished.")
            return
        stop = threading.Event()
        self._owner, self._stop = owner, stop
        threads: list[threading.Thread] = []
        trainers: list[Trainer] = []
        try:
            outcome = yield from self._run(cfg, stop, threads, trainers)
        finally:  # also on GeneratorExit, when the client went away
            stop.set()
            for t in threads:
                t.join()
            saved = None
            if trainers and trainers[0].epochs_completed:
                try:
                    saved = self._save(trainers[0])
                except Exception as exc:
                    saved = exc
            self._owner, self._stop = None, None
            self._lock.release()
        if trainers:
            outcome.test_metrics = trainers[0].test_metrics
        if isinstance(saved, tuple) and saved[0]:
            outcome.checkpoint = saved[0]
            outcome.message += f" Saved as {saved[0]}; pick it in the Draw tab."
            if saved[1]:
                outcome.message += (f" Removed the oldest {plural(len(saved[1]), 'run')} to keep the "
                                    f"{self.budget.keep_runs} newest.")
        elif isinstance(saved, tuple):
            outcome.message += (f" Not saved: runs on fewer than {self.budget.min_saved_samples:,} training samples "
                                f"are for trying settings only.")
        elif saved is not None:
            outcome.message += f" Could not save the checkpoint: {saved}"
        elif outcome.state == "stopped":
            outcome.message += " No epoch had finished, so nothing was saved."
        yield outcome

    def _run(self, cfg, stop: threading.Event, threads: list, trainers: list):
        """Yields progress updates; returns the final (unsaved) outcome."""
        yield TrainUpdate("loading", "Loading MNIST...", epochs=cfg.epochs)
        try:
            train, test = load_mnist(self.data_dir, download=self.download)
        except DataError as exc:
            return TrainUpdate("failed", f"Failed: {exc}", epochs=cfg.epochs)
        self._n_train = train_samples(cfg, len(train))   # one run at a time: read by _save
        curves = Curves(cfg.epochs, self._n_train, cfg.batch_size)
        events: queue.Queue = queue.Queue()

        def work() -> None:
            torch.set_num_threads(TRAIN_THREADS)
            try:
                trainer = Trainer(cfg, train, test, stop=stop,
                                  on_batch=lambda d, t, loss, a: events.put(("batch", (d, t, loss, a))))
                trainers.append(trainer)
                for record in trainer.run():
                    events.put(("epoch", record.as_dict()))
                events.put(("end", None))
            except Exception as exc:  # reported to the UI, never raised into the server
                events.put(("error", exc))

        threads.append(threading.Thread(target=work, name="mnist-training", daemon=True))
        threads[0].start()
        history: list[dict] = []
        batch, batches = 0, curves.batches
        run_start = epoch_start = last_yield = time.perf_counter()

        def update(state: str, message: str) -> TrainUpdate:
            done = (len(history) + (batch / batches if batches else 0)) / cfg.epochs
            now = time.perf_counter()
            eta = (now - run_start) * (1 - done) / done if 0 < done < 1 else None
            ips = curves.seen(batch) / (now - epoch_start) if batch and now > epoch_start else None
            return TrainUpdate(state, message, list(history), batch, batches, eta, None, list(curves.train),
                               list(curves.test), ips, done, cfg.epochs)

        while True:
            try:
                kind, payload = events.get(timeout=POLL_SECONDS)
            except queue.Empty:
                kind, payload = None, None
            fresh = kind is not None
            if kind == "batch":
                batch, batches = payload[0], payload[1]
                fresh = curves.on_batch(len(history) + 1, *payload)   # a new point (every 30+ batches)
            elif kind == "epoch":
                history.append(payload)
                curves.on_epoch(payload)
                batch, epoch_start = 0, time.perf_counter()
            elif kind == "error":
                return update("failed", f"Failed: {type(payload).__name__}: {payload}.")
            elif kind == "end":
                break
            if not events.empty():
                continue  # catch up before reporting
            if not fresh and time.perf_counter() - last_yield < HEARTBEAT_SECONDS:
                continue  # no new point or epoch: the status (batch, ETA) moves with a heartbeat only
            last_yield = time.perf_counter()
            yield update("running", f"Epoch {len(history) + 1} of {cfg.epochs}")
        if stop.is_set():
            return update("stopped", f"Stopped after {len(history)} of {plural(cfg.epochs, 'epoch')}.")
        return update("finished", f"Finished: test accuracy {history[-1]['test_accuracy']:.2f}% "
                                  f"after {plural(cfg.epochs, 'epoch')}.")

    def _save(self, trainer: Trainer) -> tuple[str | None, list[str]]:
        """(file name, pruned names); (None, []) when the run was too small to keep."""
        if self._n_train < self.budget.min_saved_samples:
            return None, []
        ckpt = trainer.checkpoint()
        acc = ckpt["test_metrics"]["accuracy"]
        base = f"run-{_dt.datetime.now():%Y%m%d-%H%M%S}-{acc:.2f}"
        name, n = f"{base}.pt", 1
        while (self.runs_dir / name).exists():   # never overwrite an existing checkpoint
            n += 1
            name = f"{base}-{n}.pt"
        save_checkpoint(ckpt, self.runs_dir / name)
        gone = [g for g in prune(self.runs_dir, self.budget.keep_runs) if g != name]
        return name, gone


def _cuda_available() -> bool:
    import torch
    return torch.cuda.is_available()
