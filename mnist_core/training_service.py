"""Training for a shared app: one run at a time, stoppable, streamed as small updates.

The web tab (and anything else) calls `stream(values, owner)` and iterates the updates. Training
runs in a worker thread so that the stream can report progress several times a second and notice a
stop request (Stop button, closed browser tab) between batches. Whatever happens, the finally block
stops the worker, saves the finished epochs (never over an existing file) and releases the lock.
"""
from __future__ import annotations

import datetime as _dt
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from .checkpoint import save_checkpoint
from .config import ConfigError, make_config
from .data import DataError, load_mnist
from .train import Trainer

POLL_SECONDS = 0.25   # how often the stream wakes up to report progress or notice a stop


@dataclass
class TrainUpdate:
    state: str                    # refused | loading | running | finished | stopped | failed
    message: str
    history: list[dict] = field(default_factory=list)
    batch: int = 0                # progress within the current epoch
    batches: int = 0
    eta_seconds: float | None = None
    checkpoint: str | None = None  # file name in the runs folder, once saved


class TrainingService:
    def __init__(self, runs_dir: Path, data_dir: str | None = None, download: bool = True) -> None:
        self.runs_dir = Path(runs_dir)
        self.data_dir = data_dir
        self.download = download
        self._lock = threading.Lock()          # held for the whole of a run: one run at a time
        self._owner: str | None = None
        self._stop: threading.Event | None = None

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

    def stream(self, values: dict, owner: str = "") -> Iterator[TrainUpdate]:
        try:
            cfg = make_config(**values)
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
        if isinstance(saved, str):
            outcome.checkpoint = saved
            outcome.message += f" Saved as {saved}; pick it in the Draw tab."
        elif saved is not None:
            outcome.message += f" Could not save the checkpoint: {saved}"
        elif outcome.state == "stopped":
            outcome.message += " No epoch had finished, so nothing was saved."
        yield outcome

    def _run(self, cfg, stop: threading.Event, threads: list, trainers: list):
        """Yields progress updates; returns the final (unsaved) outcome."""
        yield TrainUpdate("loading", "Loading MNIST...")
        try:
            train, test = load_mnist(self.data_dir, download=self.download)
        except DataError as exc:
            return TrainUpdate("failed", f"Failed: {exc}")
        events: queue.Queue = queue.Queue()

        def work() -> None:
            try:
                trainer = Trainer(cfg, train, test, stop=stop,
                                  on_batch=lambda d, t, l, a: events.put(("batch", (d, t))))
                trainers.append(trainer)
                for record in trainer.run():
                    events.put(("epoch", record.as_dict()))
                events.put(("end", None))
            except Exception as exc:  # reported to the UI, never raised into the server
                events.put(("error", exc))

        threads.append(threading.Thread(target=work, name="mnist-training", daemon=True))
        threads[0].start()
        history: list[dict] = []
        batch = batches = 0
        epoch_start = time.perf_counter()
        while True:
            try:
                kind, payload = events.get(timeout=POLL_SECONDS)
            except queue.Empty:
                kind, payload = None, None
            if kind == "batch":
                batch, batches = payload
            elif kind == "epoch":
                history.append(payload)
                batch, epoch_start = 0, time.perf_counter()
            elif kind == "error":
                return TrainUpdate("failed", f"Failed: {type(payload).__name__}: {payload}.", history)
            elif kind == "end":
                break
            if not events.empty():
                continue  # catch up before reporting
            elapsed = time.perf_counter() - epoch_start
            eta = elapsed / batch * (batches - batch) if batch else None
            yield TrainUpdate("running", f"Epoch {len(history) + 1} of {cfg.epochs}", list(history), batch, batches, eta)
        if stop.is_set():
            return TrainUpdate("stopped", f"Stopped after {len(history)} of {cfg.epochs} epochs.", history)
        return TrainUpdate("finished", f"Finished: test accuracy {history[-1]['test_accuracy']:.2f}% "
                                       f"after {cfg.epochs} epochs.", history)

    def _save(self, trainer: Trainer) -> str:
        ckpt = trainer.checkpoint()
        acc = ckpt["test_metrics"]["accuracy"]
        base = f"run-{_dt.datetime.now():%Y%m%d-%H%M%S}-{acc:.2f}"
        name, n = f"{base}.pt", 1
        while (self.runs_dir / name).exists():   # never overwrite an existing checkpoint
            n += 1
            name = f"{base}-{n}.pt"
        save_checkpoint(ckpt, self.runs_dir / name)
        return name
