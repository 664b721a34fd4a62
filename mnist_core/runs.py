"""Earlier runs, side by side: the settings in which runs differ, the runs folder's pruning, and
RunStore, the Train tab's view of the model store.

The runs themselves (listing, RunInfo, download copies, delete) are the model store's (store.py): keys
"shipped" and "runs/<file name>", looked up in the current listing, never joined onto a path. RunStore
is that store seen as the run catalog of earlier versions: get() is a run's RunInfo, choices() lists the
readable runs only; it holds nothing of its own.
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from .config import MNIST_TRAIN_SIZE, TrainConfig
from .store import HOST, SHIPPED_KEY, ModelStore, RunError, RunFile, RunInfo, run_files

__all__ = ["HOST", "SHIPPED_KEY", "RunError", "RunFile", "RunInfo", "RunStore", "differing_settings", "prune",
           "run_files"]

# Settings shown in the comparison table, in this order, with their UI names.
SETTING_LABELS = {
    "epochs": "epochs", "max_train_samples": "samples", "batch_size": "batch size", "lr": "lr",
    "momentum": "momentum", "step_size": "lr step", "gamma": "lr gamma", "rotation": "rotation",
    "rotation_interpolation": "rotation sampling", "dropout": "dropout", "seed": "seed", "device": "device",
}


class RunStore:
    """A ModelStore seen as the run catalog (the Train tab's): the same listing, caches and files."""

    def __init__(self, shipped: Path | ModelStore, runs_dir: Path | None = None, **options) -> None:
        self.store = shipped if isinstance(shipped, ModelStore) else ModelStore(shipped, runs_dir, **options)
        self.shipped, self.runs_dir = self.store.shipped, self.store.runs_dir

    def get(self, key) -> RunInfo:
        return self.store.info(key)

    def choices(self) -> list[tuple[str, str]]:
        return self.store.run_choices()

    def runs(self) -> list[RunInfo]:
        return self.store.runs()

    def paths(self) -> dict[str, Path]:
        return self.store.paths()

    def sizes(self) -> list[RunFile]:
        return self.store.sizes()

    def export(self, key: str, dest_dir: Path | None = None) -> Path:
        return self.store.export(key, dest_dir)

    def export_onnx(self, key: str, dest_dir: Path | None = None) -> Path:
        return self.store.export_onnx(key, dest_dir)

    def delete(self, key, owner) -> str:
        return self.store.delete(key, owner)

    def forget(self, names_or_keys: Iterable[str] | str) -> None:
        self.store.forget(names_or_keys)


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


def _show(v):
    return v if isinstance(v, (int, float, str)) else str(v)
