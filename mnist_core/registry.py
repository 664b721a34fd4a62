"""The checkpoints the app can offer: the shipped one plus those in the runs folder.

Users pick by key from this list; no user input is ever used as a path. Loaded models are cached
by (key, file size, mtime) so a re-trained file is reloaded and an unchanged one is loaded once.
"""
from __future__ import annotations

import threading
from pathlib import Path

from .checkpoint import CheckpointError, load_checkpoint
from .predict import Predictor

SHIPPED_KEY = "shipped"


class ModelRegistry:
    def __init__(self, shipped: Path, runs_dir: Path) -> None:
        self.shipped = Path(shipped)
        self.runs_dir = Path(runs_dir)
        self._cache: dict[str, tuple[tuple, Predictor | CheckpointError]] = {}
        self._lock = threading.Lock()  # the cache is shared by all sessions; loads are serialized

    def paths(self) -> dict[str, Path]:
        found = {SHIPPED_KEY: self.shipped} if self.shipped.is_file() else {}
        if self.runs_dir.is_dir():
            for p in sorted(self.runs_dir.glob("*.pt"), key=lambda p: p.stat().st_mtime, reverse=True):
                found[f"runs/{p.name}"] = p
        return found

    def _load(self, key: str, path: Path) -> Predictor:
        st = path.stat()
        stamp = (st.st_size, st.st_mtime_ns)
        with self._lock:
            hit = self._cache.get(key)
            if hit is None or hit[0] != stamp:
                try:
                    result: Predictor | CheckpointError = Predictor.from_checkpoint(load_checkpoint(path), key)
                except CheckpointError as exc:
                    # Messages reach web users: name the model by its key, never by its server path.
                    result = CheckpointError(str(exc).replace(str(path), key).replace(path.name, key))
                self._cache[key] = (stamp, result)
                hit = self._cache[key]
        if isinstance(hit[1], CheckpointError):
            raise hit[1]
        return hit[1]

    def get(self, key: str) -> Predictor:
        """The model for a key from choices(); CheckpointError if it is unknown or unusable."""
        path = self.paths().get(key)
        if path is None:
            raise CheckpointError(f"no checkpoint called {key!r} is available")
        try:
            return self._load(key, path)
        except FileNotFoundError:
            raise CheckpointError(f"{key} was removed") from None

    def choices(self) -> list[tuple[str, str]]:
        """(label, key) pairs, labelled with test accuracy; unreadable files are labelled so."""
        out = []
        for key, path in self.paths().items():
            name = "Shipped model" if key == SHIPPED_KEY else path.stem
            try:
                p = self._load(key, path)
                out.append((f"{name} ({p.description})", key))
            except (CheckpointError, OSError):
                out.append((f"{name} (unreadable)", key))
        return out
