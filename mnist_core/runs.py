"""Earlier runs, side by side: list, describe, compare, export, delete and prune the saved checkpoints.

The keys are the model picker's (registry.py): "shipped" for the shipped model, "runs/<file name>"
for a checkpoint in the runs folder. Users only ever choose keys from `choices()`; a key is looked up
in the current listing, never joined onto a path, so no input can name a file outside the folder.
The shipped model can be listed, compared and downloaded, never deleted.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from .checkpoint import CheckpointError, describe, load_checkpoint
from .config import MNIST_TRAIN_SIZE, TrainConfig
from .export import export_onnx_file

SHIPPED_KEY = "shipped"   # the same key as registry.SHIPPED_KEY
# Settings shown in the comparison table, in this order, with their UI names.
SETTING_LABELS = {
    "epochs": "epochs", "max_train_samples": "samples", "batch_size": "batch size", "lr": "lr",
    "momentum": "momentum", "step_size": "lr step", "gamma": "lr gamma", "rotation": "rotation",
    "rotation_interpolation": "rotation sampling", "dropout": "dropout", "seed": "seed", "device": "device",
}


class RunError(ValueError):
    """A run cannot be shown, exported or deleted; the message says why in one sentence."""


@dataclass(frozen=True)
class RunInfo:
    key: str
    name: str                  # "Shipped model" or the file's stem
    path: Path
    history: list[dict]
    config: dict
    test_metrics: dict | None
    description: str           # "99.48%, 15 epochs"
    created: str | None

    @property
    def deletable(self) -> bool:
        return self.key != SHIPPED_KEY

    @property
    def label(self) -> str:
        return f"{self.name} ({self.description})"


class RunStore:
    def __init__(self, shipped: Path, runs_dir: Path) -> None:
        self.shipped, self.runs_dir = Path(shipped), Path(runs_dir)
        self._cache: dict[str, tuple[tuple, RunInfo | None]] = {}
        self._lock = threading.Lock()

    def paths(self) -> dict[str, Path]:
        """key -> path; newest run first, the shipped model first of all."""
        found = {SHIPPED_KEY: self.shipped} if self.shipped.is_file() else {}
        for p in run_files(self.runs_dir):
            found[f"runs/{p.name}"] = p
        return found

    def _info(self, key: str, path: Path) -> RunInfo | None:
        try:
            st = path.stat()
        except FileNotFoundError:
            return None
        stamp = (st.st_size, st.st_mtime_ns)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and hit[0] == stamp:
                return hit[1]
        try:
            ck = load_checkpoint(path)
            info = RunInfo(key, "Shipped model" if key == SHIPPED_KEY else path.stem, path,
                           list(ck.get("history") or []), dict(ck.get("config") or {}), ck.get("test_metrics"),
                           describe(ck), ck.get("created"))
        except CheckpointError:
            info = None
        with self._lock:
            self._cache[key] = (stamp, info)
        return info

    def runs(self) -> list[RunInfo]:
        """Every readable run; unreadable files are left out (the model picker labels them)."""
        return [i for i in (self._info(k, p) for k, p in self.paths().items()) if i is not None]

    def choices(self) -> list[tuple[str, str]]:
        return [(i.label, i.key) for i in self.runs()]

    def get(self, key) -> RunInfo:
        if not isinstance(key, str):
            raise RunError("choose a run from the list")
        path = self.paths().get(key)
        info = self._info(key, path) if path is not None else None
        if info is None:
            raise RunError(f"there is no readable run called {_short(key)} (it may have been deleted)")
        return info

    def export(self, key: str, dest_dir: Path | None = None) -> Path:
        """A copy of the run's checkpoint, named after the run, in dest_dir (default: a fresh temporary
        folder), for download. Written atomically, so a concurrent download never sees half a file."""
        info = self.get(key)
        dest = Path(dest_dir) if dest_dir is not None else Path(tempfile.mkdtemp(prefix="mnist-run-"))
        dest.mkdir(parents=True, exist_ok=True)
        out = dest / ("mnist_cnn.pt" if key == SHIPPED_KEY else info.path.name)
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=dest)
        os.close(fd)
        try:
            shutil.copyfile(info.path, tmp)
            os.replace(tmp, out)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return out

    def export_onnx(self, key: str, dest_dir: Path) -> Path:
        """The run as an ONNX file named after it, in dest_dir; made once per checkpoint version (a file
        newer than the checkpoint is reused). Raises RunError, ExportError or CheckpointError."""
        info = self.get(key)
        out = Path(dest_dir) / ("mnist_cnn" if key == SHIPPED_KEY else info.path.stem)
        out = out.with_name(out.name + ".onnx")
        if out.is_file() and out.stat().st_mtime_ns >= info.path.stat().st_mtime_ns:
            return out
        return export_onnx_file(info.path, out)

    def delete(self, key) -> str:
        """Delete a run from the runs folder; the shipped model and unknown keys are refused."""
        if key == SHIPPED_KEY:
            raise RunError("the shipped model cannot be deleted")
        if not isinstance(key, str) or key not in self.paths():
            raise RunError("choose a run from the list to delete")
        path = self.paths()[key]
        path.unlink()
        with self._lock:
            self._cache.pop(key, None)
        return path.name


def run_files(runs_dir: Path) -> list[Path]:
    """The checkpoints in a runs folder, newest first (temp files of atomic writes are not listed)."""
    if not Path(runs_dir).is_dir():
        return []
    files = [p for p in Path(runs_dir).glob("*.pt") if p.is_file() and not p.name.startswith(".")]
    return sorted(files, key=lambda p: (p.stat().st_mtime_ns, p.name), reverse=True)


def prune(runs_dir: Path, keep: int) -> list[str]:
    """Delete all but the `keep` newest checkpoints of the runs folder; returns the deleted names."""
    gone = []
    for p in run_files(runs_dir)[max(0, keep):]:
        try:
            p.unlink()
            gone.append(p.name)
        except FileNotFoundError:
            pass
    return gone


def differing_settings(runs: list[RunInfo]) -> tuple[list[str], list[list]]:
    """(columns, rows) of a table with one row per run and only the settings that differ between them.

    Missing settings count as the recipe's defaults (a checkpoint from an older version). With one
    run (or identical settings) the table has just the run and its accuracy.
    """
    defaults = TrainConfig().to_dict()
    values = [{k: r.config.get(k, defaults.get(k)) for k in SETTING_LABELS} for r in runs]
    for v in values:   # None means all 60,000: the same run as an explicit 60000
        v["max_train_samples"] = min(v["max_train_samples"] or MNIST_TRAIN_SIZE, MNIST_TRAIN_SIZE)
    differ = [k for k in SETTING_LABELS if len({repr(v[k]) for v in values}) > 1]
    columns = ["run", "test acc %"] + [SETTING_LABELS[k] for k in differ]
    rows = []
    for r, v in zip(runs, values, strict=True):
        acc = (r.test_metrics or {}).get("accuracy")
        rows.append([r.name, round(acc, 2) if isinstance(acc, (int, float)) else None]
                    + [_show(v[k]) for k in differ])
    return columns, rows


def _short(key: str, limit: int = 80) -> str:
    text = repr(key)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _show(v):
    return v if isinstance(v, (int, float, str)) else str(v)
