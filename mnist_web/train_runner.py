"""A training job's life once it has a slot: dispatch it to the backend, relay its events, keep its result.

`Runner.run(job)` runs in the job's own thread (the facade, training_service.py, starts it) and owns the
result, not the stream: whatever happens (finished, stopped, failed, the worker killed), it saves the
last finished epoch of a run on enough samples atomically (never over an existing file, a new name per
run) and prunes the runs folder to the budget's newest. What it tells the stream goes through
job.events, in order: Loading, then the job's own mnist_core.jobs events (Loaded, Batch, Look, Epoch),
then one Final. Freeing the slot and starting the next job is the scheduler's, after run() returns.

A teach job (job.teach: fine-tune a model on a visitor's own drawings, mnist_core/teach.py) runs the
same way, as spec kind "teach": its one epoch's checkpoint is saved whatever its sample count, as
"teach-<time>-<accuracy>.pt" named "<base model> + your handwriting", and its Final carries the report
(held-aside drawings and MNIST test accuracy, before and after).
"""
from __future__ import annotations

import datetime as _dt
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mnist_core.checkpoint import save_checkpoint
from mnist_core.config import TrainingBudget
from mnist_core.jobs import Batch, End, Epoch, Error, Loaded, Look, as_event, checkpoint_from_bytes, one_line
from mnist_core.pruning import Removal, plan, remove
from mnist_core.store import ModelStore
from mnist_core.text import plural

from .owners import record_of
from .train_backend import Backend, JobFailed
from .train_queue import RunClock
from .train_scheduler import Job


@dataclass(frozen=True)
class Loading:
    """The job has a slot: a worker is starting, MNIST is being read."""


@dataclass(frozen=True)
class Final:
    """The run is over, its result kept: the last thing the stream hears."""
    state: str                     # finished | stopped | failed
    message: str                   # what happened, what was saved (or why not)
    checkpoint: str | None = None  # file name in the runs folder, once saved
    test_metrics: dict | None = None   # the last evaluation (per class, confusion)
    report: dict | None = None     # a teach job's report (teach_report), else None


RunnerEvent = Loading | Loaded | Batch | Look | Epoch | Final


@dataclass
class Outcome:
    """What the runner gathered from a job's events."""
    state: str = "failed"
    reason: str = "the run ended without a result"
    epochs_done: int = 0
    last_test_accuracy: float = 0.0
    checkpoint: bytes | None = None   # the last finished epoch's
    n_train: int = 0
    record: dict | None = None        # the last finished epoch's record


class Runner:
    """Runs jobs on `backend`, saving into `runs_dir` within `budget`; `on_eval(seconds)` hears how long
    each evaluation of the test set took (for the ETA of the jobs behind)."""

    def __init__(self, backend: Backend, runs_dir: Path, budget: TrainingBudget, data_dir: str | None,
                 download: bool, on_eval: Callable[[float], None] = lambda seconds: None) -> None:
        self.backend, self.runs_dir, self.budget = backend, Path(runs_dir), budget
        self.data_dir, self.download, self.on_eval = data_dir, download, on_eval
        self._save_lock = threading.Lock()   # two runs ending in the same second get different names
        self.store = ModelStore(self.runs_dir / ".none", self.runs_dir)   # the runs and their owners, for pruning;
        # the app's own store once services.py hands it over (it also forgets what the pruned runs held)
        self._notices: dict[str | None, list[str]] = {}   # owner -> what the server's bound removed of theirs

    def spec(self, job: Job) -> dict:
        where = {"data_dir": self.data_dir, "download": self.download}
        if job.teach is not None:
            return {**job.teach, "kind": "teach", **where}
        return {"config": job.cfg.to_dict(), **where}

    def run(self, job: Job) -> Final:
        """The job from dispatch to its kept result. Never raises for what the job or backend did."""
        job.events.put(Loading())
        out = self._relay(job)
        owner = record_of(job.owner)
        if job.teach is not None:
            state, message = teach_verdict(out)
            report = teach_report(out.record) if state == "finished" else None
            if report is None:   # stopped or failed: nothing half-taught is kept
                return Final(state, message)
            name = f"{job.teach.get('base_name') or 'the model'} + your handwriting"
            message, saved, metrics = self._keep(out.checkpoint, out.n_train, state, message, owner, name)
            return Final(state, message, saved, metrics, report)
        state, message = verdict(out, job.cfg.epochs)
        message, name, metrics = self._keep(out.checkpoint, out.n_train, state, message, owner)
        return Final(state, message, name, metrics)

    def _relay(self, job: Job) -> Outcome:
        """The backend's events for the job, passed on to the stream; the job's clock and pid kept up."""
        out = Outcome()
        clock = job.clock = RunClock(job.cfg.epochs)
        try:
            for raw in self.backend.run(self.spec(job), job.stop):
                event, now = as_event(raw), time.monotonic()
                if isinstance(event, Loaded):
                    out.n_train, job.loaded_at, job.worker_pid = event.n_train, now, event.pid
                    clock.on_loaded(now)
                elif isinstance(event, Batch):
                    clock.on_batch(event.done, event.total, now)
                elif isinstance(event, Epoch):
                    out.epochs_done += 1
                    out.last_test_accuracy, out.checkpoint = event.record["test_accuracy"], event.checkpoint
                    out.record = event.record
                    took = clock.on_epoch(now)
                    if took is not None:
                        self.on_eval(took)
                elif isinstance(event, End):
                    out.state = "stopped" if event.stopped else "finished"
                    continue
                elif isinstance(event, Error):
                    out.state, out.reason = "failed", event.reason
                    continue
                job.events.put(event)
        except JobFailed as exc:
            out.state, out.reason = "failed", str(exc)
        except Exception as exc:   # the backend itself broke: this run fails, the server goes on
            out.state, out.reason = "failed", one_line(exc)
        return out

    def _keep(self, last: bytes | None, n_train: int, state: str, message: str, owner: str | None,
              taught: str | None = None):
        """Save the last finished epoch (atomically, a new name, with its owner), then prune;
        (message, file name, test metrics). `taught`: a teach job's run name (saved whatever its size)."""
        if last is None:
            if state == "stopped":
                message += " No epoch had finished, so nothing was saved."
            return message, None, None
        try:
            ckpt = checkpoint_from_bytes(last)
        except Exception as exc:
            return message + f" Could not read the run's checkpoint: {one_line(exc)}", None, None
        metrics = ckpt.get("test_metrics")
        if taught is None and n_train < self.budget.min_saved_samples:
            return (message + f" Not saved: runs on fewer than {self.budget.min_saved_samples:,} training "
                              f"samples are for trying settings only.", None, metrics)
        try:
            with self._save_lock:
                extra = {"owner": owner} if taught is None else {"owner": owner, "name": taught}
                name = self._save({**ckpt, **extra}, "run" if taught is None else "teach")
                gone = self._prune(owner, name)
        except Exception as exc:
            return message + f" Could not save the checkpoint: {exc}", None, metrics
        message += (f" Saved as {name}; pick it in the Draw tab." if taught is None
                    else f" Saved as {name} ({taught}); the Draw tab uses it now.")
        return message + pruned_message(gone, owner, self.budget), name, metrics

    def _prune(self, owner: str | None, saved: str) -> list[Removal]:
        """The runs folder back within its bounds (mnist_core/pruning.py); owners whose runs the server's
        bound removed are told on their next look at the Train tab (notices())."""
        b = self.budget
        gone = remove(self.runs_dir, plan(self.store.sizes(), owner, b.keep_runs, b.max_runs,
                                          b.max_run_bytes, keep=frozenset({saved})))
        for r in gone:
            if r.why == "server" and r.run.owner != owner:
                self._notices.setdefault(r.run.owner, []).append(
                    f"Your run {r.run.name} was removed: the server keeps at most {b.max_runs} runs, and yours "
                    f"were among the most.")
        if gone:
            self.store.forget([r.run.name for r in gone])
        return gone

    def notices(self, owner: str | None) -> list[str]:
        """What the server's bound removed of this owner's runs since they last asked (then forgotten)."""
        with self._save_lock:
            return self._notices.pop(owner, [])

    def _save(self, ckpt: dict, prefix: str = "run") -> str:
        acc = ckpt["test_metrics"]["accuracy"]
        base = f"{prefix}-{_dt.datetime.now():%Y%m%d-%H%M%S}-{acc:.2f}"
        name, n = f"{base}.pt", 1
        while (self.runs_dir / name).exists():   # never overwrite an existing checkpoint
            n += 1
            name = f"{base}-{n}.pt"
        save_checkpoint(ckpt, self.runs_dir / name)
        return name


def pruned_message(gone: list[Removal], owner: str | None, budget: TrainingBudget) -> str:
    """What the saving page is told about the runs its save removed."""
    own = [r for r in gone if r.why == "owner"]
    others = [r for r in gone if r.why == "server"]
    text = ""
    if own:
        text += f" Removed the oldest {plural(len(own), 'run')} to keep the {budget.keep_runs} newest of yours."
    if others:
        names = ", ".join(r.run.name for r in others)
        text += (f" The server keeps at most {budget.max_runs} runs: removed {names} (the oldest of whoever "
                 f"had the most).")
    return text


def verdict(out: Outcome, epochs: int) -> tuple[str, str]:
    """(state, message) of a run from what it sent: a run that ended without all its epochs stopped."""
    state = "stopped" if out.state == "finished" and out.epochs_done < epochs else out.state
    if state == "finished":
        return state, f"Finished: test accuracy {out.last_test_accuracy:.2f}% after {plural(epochs, 'epoch')}."
    if state == "stopped":
        return state, f"Stopped after {out.epochs_done} of {plural(epochs, 'epoch')}."
    return state, f"Failed: {out.reason.rstrip('.')}."


REPORT_KEYS = ("held_before", "held_after", "mnist_before", "mnist_after", "taught", "held")


def teach_report(record: dict | None) -> dict | None:
    """A teach job's report from its epoch record (mnist_core/teach.py): accuracy on the drawings kept
    aside and on the MNIST test set, before and after, and how many drawings were taught and kept aside."""
    if not record or "mnist_after" not in record:
        return None
    return {k: _finite(record.get(k)) for k in REPORT_KEYS}


def _finite(v):
    """A report's value as JSON can carry it: nan (no drawing held aside) -> None."""
    return None if isinstance(v, float) and not math.isfinite(v) else v


def teach_verdict(out: Outcome) -> tuple[str, str]:
    """(state, message) of a teach job: finished once its one epoch came back, with the report in words."""
    report = teach_report(out.record)
    if out.state == "finished" and report is not None:
        return "finished", f"Taught: {report_sentence(report)}"
    if out.state in ("finished", "stopped"):
        return "stopped", "Stopped before the model was taught; nothing was saved."
    return "failed", f"Failed: {out.reason.rstrip('.')}."


def _pct(v, digits: int = 1) -> str:
    return f"{v:.{digits}f}%" if isinstance(v, (int, float)) else "?"


def report_sentence(r: dict) -> str:
    """The report in one sentence: the held-aside drawings (when some were kept aside), then MNIST."""
    held = r.get("held") or 0
    taught = r.get("taught")
    text = f"{plural(taught, 'drawing')} of yours. " if isinstance(taught, int) else ""
    if held:
        text += (f"On the {plural(held, 'drawing')} kept aside: {_pct(r.get('held_before'))} right before, "
                 f"{_pct(r.get('held_after'))} after. ")
    else:
        text += "None kept aside to check (that needs 3 or more of a digit). "
    before, after = _pct(r.get("mnist_before"), 2), _pct(r.get("mnist_after"), 2)
    return text + f"MNIST test accuracy: {before} before, {after} after."
