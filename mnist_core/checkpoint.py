"""Checkpoints: a plain dict that rebuilds the model exactly, written atomically, read safely.

Layout (FORMAT_VERSION 1):
    format_version, model_args, state_dict, normalization {mean, std}, config (TrainConfig dict),
    history (one dict per finished epoch), test_metrics (of state_dict's weights), status,
    epochs_completed, best {epoch, test_accuracy, state_dict}, created, torch_version
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

from .model import Net, build_model
from .text import plural

FORMAT_VERSION = 1
FILE_MODE = 0o644   # rw-r--r--: readable by a server running as another user, writable by the owner only
REQUIRED_KEYS = ("format_version", "model_args", "state_dict", "normalization")


class CheckpointError(RuntimeError):
    """A file is not a usable checkpoint of this model; the message says why, in one sentence."""


def save_checkpoint(checkpoint: dict, path: str | os.PathLike) -> Path:
    """Write atomically: a temp file in the same folder, fsync, then os.replace; the file is mode 0644.

    A crash, full disk or exception at any point leaves the previous file at `path` byte-identical
    and removes the temp file; readers never see a half-written checkpoint.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), FILE_MODE)  # mkstemp makes 0600; a model is for every user of the app to read
            torch.save(checkpoint, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Load and validate a checkpoint (weights_only=True: no pickled code can run).

    Raises CheckpointError for a missing, empty, truncated or foreign file, or one whose weights do
    not fit the architecture it names.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist (train one with `python -m mnist_core train`)")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path} is empty (0 bytes): it is not a checkpoint")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path} is not a readable checkpoint (truncated, or not made by mnist_core): "
                              f"{first}") from None
    if not isinstance(ckpt, dict) or any(k not in ckpt for k in REQUIRED_KEYS):
        raise CheckpointError(f"{path} is not an mnist_core checkpoint "
                              f"(expected a dict with {', '.join(REQUIRED_KEYS)})")
    if ckpt["format_version"] != FORMAT_VERSION:
        raise CheckpointError(f"{path} has checkpoint format {ckpt['format_version']!r}; "
                              f"this version reads format {FORMAT_VERSION}")
    try:
        model_from_checkpoint(ckpt)
    except Exception as exc:
        raise CheckpointError(f"{path} is for another architecture: {str(exc).splitlines()[0][:200]}") from None
    return ckpt


def model_from_checkpoint(ckpt: dict, which: str = "last") -> Net:
    """Rebuild the network in eval mode; `which` is "last" (state_dict) or "best"."""
    model = build_model(ckpt["model_args"])
    state = ckpt["state_dict"] if which == "last" else ckpt["best"]["state_dict"]
    model.load_state_dict(state, strict=True)
    return model.eval()


def describe(ckpt: dict) -> str:
    """One human line: accuracy and how complete the run was.

    "99.48%, 15 epochs", "97.10%, 1 epoch", "98.90%, stopped after 3/10 epochs", "accuracy unknown";
    with a drawn test accuracy stored ("drawn_metrics", the re-drawn test set of redraw.py):
    "99.48% MNIST, 99.31% drawn, 15 epochs".
    """
    acc = (ckpt.get("test_metrics") or {}).get("accuracy")
    drawn = (ckpt.get("drawn_metrics") or {}).get("accuracy")
    done, total = ckpt.get("epochs_completed"), (ckpt.get("config") or {}).get("epochs")
    parts = [f"{acc:.2f}%" if isinstance(acc, (int, float)) else "accuracy unknown"]
    if isinstance(drawn, (int, float)):
        parts = [f"{parts[0]} MNIST", f"{drawn:.2f}% drawn"]
    if ckpt.get("status") == "stopped" and done is not None:
        parts.append(f"stopped after {done}/{plural(total, 'epoch') if isinstance(total, int) else total}")
    elif isinstance(done, int):
        parts.append(plural(done, "epoch"))
    return ", ".join(parts)
