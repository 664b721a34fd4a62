"""One place for models: the runs a visitor can pick, and everything derived from each model, bounded.

ModelStore lists the shipped checkpoints and the runs folder. Keys: "shipped" (the recipe's model),
"canvas" (the model trained for the canvas, when its file is there) and "runs/<file name>"; a
key is looked up in the current listing, never joined onto a path, so no input can name a file outside
the folder; a file that disappears while the folder is listed is left out. For every run it knows its
RunInfo (history, settings, test metrics, owner: small, one per file on disk). Of the models it loads it
keeps, least recently used out first, at most `max_models` and `max_bytes`: the Predictor and its parts
(parts.py: the weights body, look-alike features, mistakes, unit index, built once, the slow ones in
one capped background worker). Deleting a run (only by its owner; the shipped model never), or forget()
after someone else removed files (the pruner; a listing that finds a cached run's file gone does it
too), drops all of it and its download copies. Download copies (export, export_onnx) live in a folder
the store keeps to `max_downloads` files.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .checkpoint import CheckpointError, describe, load_checkpoint
from .export import export_onnx_file
from .parts import BuildWorker, Parts
from .predict import Predictor

SHIPPED_KEY = "shipped"
CANVAS_KEY = "canvas"
BUILTIN_KEYS = (SHIPPED_KEY, CANVAS_KEY)     # the models shipped in checkpoints/: listed first, never deleted
BUILTIN_NAMES = {SHIPPED_KEY: "Recipe model", CANVAS_KEY: "Canvas model"}
BUILTIN_FILES = {SHIPPED_KEY: "mnist_cnn.pt", CANVAS_KEY: "mnist_canvas.pt"}   # their download names
# Defaults, measured (benchmarks/model_store.py, RESULTS.md "The model store"): a picked and explained
# model holds ~4 MB (the look-alike features of 60,000 digits: 3.8 MB); 16 of them stay well inside the
# issue's 400 MB budget for 60 runs, and a class switching between its newest runs rarely reloads.
MAX_MODELS = 16
MAX_BYTES = 96 * 2**20
MAX_DOWNLOADS = 32


class RunError(ValueError):
    """A run cannot be shown, exported or deleted; the message says why in one sentence."""


class _Host:
    def __repr__(self) -> str:
        return "HOST"


HOST = _Host()   # delete()'s owner for the host (the command line, a test): any run but the shipped model


@dataclass(frozen=True)
class RunInfo:
    key: str
    name: str                  # "Recipe model", "Canvas model" or the file's stem
    path: Path
    history: list[dict]
    config: dict
    test_metrics: dict | None
    description: str           # "99.48%, 15 epochs"
    created: str | None
    owner: str | None = None   # the checkpoint's "owner" (a hash); None: the shipped model, older runs

    @property
    def deletable(self) -> bool:
        return self.key not in BUILTIN_KEYS

    @property
    def label(self) -> str:
        return f"{self.name} ({self.description})"


@dataclass(frozen=True)
class RunFile:
    """A run on disk, for a pruning policy: its file name, owner (None: unreadable, or no owner), mtime
    (seconds) and size in bytes."""
    key: str
    name: str
    owner: str | None
    mtime: float
    size: int


@dataclass
class _Model:
    stamp: tuple
    predictor: Predictor
    nbytes: int                                    # the model's own tensors
    parts: dict = field(default_factory=dict)      # name -> (value, bytes)

    def total(self) -> int:
        return self.nbytes + sum(n for _, n in self.parts.values())


def run_stats(runs_dir: Path) -> list[tuple[Path, os.stat_result]]:
    """The checkpoints of a runs folder with their stat, newest first. Temp files of atomic writes are
    not listed; a file removed while the folder is read is left out."""
    try:
        entries = list(os.scandir(runs_dir))
    except (FileNotFoundError, NotADirectoryError):
        return []
    found = []
    for e in entries:
        if not e.name.endswith(".pt") or e.name.startswith("."):
            continue
        try:
            st = e.stat()
        except FileNotFoundError:
            continue
        if stat.S_ISREG(st.st_mode):
            found.append((Path(e.path), st))
    return sorted(found, key=lambda f: (f[1].st_mtime_ns, f[0].name), reverse=True)


def run_files(runs_dir: Path) -> list[Path]:
    """The checkpoints in a runs folder, newest first (see run_stats)."""
    return [p for p, _ in run_stats(runs_dir)]


def _stamp(st: os.stat_result) -> tuple:
    return st.st_size, st.st_mtime_ns


def _short(key, limit: int = 80) -> str:
    text = repr(key)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _key(name: str) -> str:
    return name if name in BUILTIN_KEYS or name.startswith("runs/") else f"runs/{Path(name).name}"


def _model_bytes(predictor: Predictor) -> int:
    return sum(t.nelement() * t.element_size() for t in predictor.model.state_dict().values())


class ModelStore(Parts):
    """See the module's docstring. Thread-safe: one lock for the listing's caches and the models."""

    def __init__(self, shipped: Path, runs_dir: Path, downloads: Path | None = None, max_models: int = MAX_MODELS,
                 max_bytes: int = MAX_BYTES, max_downloads: int = MAX_DOWNLOADS,
                 worker: BuildWorker | None = None, canvas: Path | None = None) -> None:
        super().__init__(worker)
        self.shipped, self.runs_dir = Path(shipped), Path(runs_dir)
        self.canvas = Path(canvas) if canvas is not None else None
        self.builtins = {SHIPPED_KEY: self.shipped} | ({CANVAS_KEY: self.canvas} if self.canvas else {})
        self.max_models, self.max_bytes, self.max_downloads = max_models, max_bytes, max_downloads
        self._downloads = Path(downloads) if downloads is not None else None
        self._models: OrderedDict[str, _Model] = OrderedDict()     # least recently used first
        self._infos: dict[str, tuple[tuple, RunInfo | CheckpointError]] = {}

    # ------------------------------------------------------------------------------ listing
    def _listing(self) -> dict[str, tuple[Path, os.stat_result]]:
        found = {}
        for key, path in self.builtins.items():
            with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                st = path.stat()
                if stat.S_ISREG(st.st_mode):
                    found[key] = (path, st)
        for p, st in run_stats(self.runs_dir):
            found[f"runs/{p.name}"] = (p, st)
        with self._lock:
            gone = (set(self._models) | set(self._infos)) - set(found)
        if gone:
            self.forget(gone)
        return found

    def paths(self) -> dict[str, Path]:
        """key -> path; the shipped models first, then the runs, newest first."""
        return {k: p for k, (p, _) in self._listing().items()}

    def _info(self, key: str, path: Path, st: os.stat_result | None = None) -> RunInfo | CheckpointError:
        """The run's RunInfo (read once per file version), or why it cannot be read."""
        stamp = _stamp(st if st is not None else path.stat())
        with self._lock:
            hit = self._infos.get(key)
            if hit is not None and hit[0] == stamp:
                return hit[1]
        try:
            info: RunInfo | CheckpointError = self._run_info(key, path, load_checkpoint(path))
        except CheckpointError as exc:
            # Messages reach web users: name the model by its key, never by its server path.
            info = CheckpointError(str(exc).replace(str(path), key).replace(path.name, key))
        with self._lock:
            self._infos[key] = (stamp, info)
        return info

    @staticmethod
    def _run_info(key: str, path: Path, ck: dict) -> RunInfo:
        owner, named = ck.get("owner"), ck.get("name")   # "name": e.g. "Canvas model + your handwriting"
        name = BUILTIN_NAMES.get(key) or (named[:80] if isinstance(named, str) and named.strip() else path.stem)
        return RunInfo(key, name, path,
                       list(ck.get("history") or []), dict(ck.get("config") or {}), ck.get("test_metrics"),
                       describe(ck), ck.get("created"), owner if isinstance(owner, str) and owner else None)

    def _infos_listed(self) -> list[RunInfo | CheckpointError]:
        out = []
        for key, (path, st) in self._listing().items():
            try:
                out.append(self._info(key, path, st))
            except FileNotFoundError:
                continue
        return out

    def choices(self) -> list[tuple[str, str]]:
        """The model picker's (label, key) pairs: every model, labelled with its test accuracy, an
        unreadable file labelled so."""
        out = []
        for key, (path, st) in self._listing().items():
            try:
                info = self._info(key, path, st)
            except FileNotFoundError:
                continue
            if isinstance(info, RunInfo):
                out.append((info.label, key))
            else:
                out.append((f"{BUILTIN_NAMES.get(key, path.stem)} (unreadable)", key))
        return out

    def runs(self) -> list[RunInfo]:
        """Every readable run; unreadable files are left out (the model picker labels them)."""
        return [i for i in self._infos_listed() if isinstance(i, RunInfo)]

    def run_choices(self) -> list[tuple[str, str]]:
        """The Train tab's (label, key) pairs: the readable runs."""
        return [(i.label, i.key) for i in self.runs()]

    def info(self, key) -> RunInfo:
        """The run of a key from the listing; RunError if there is none, or it cannot be read."""
        if not isinstance(key, str):
            raise RunError("choose a run from the list")
        path = self.paths().get(key)
        try:
            info = self._info(key, path) if path is not None else None
        except FileNotFoundError:
            info = None
        if not isinstance(info, RunInfo):
            raise RunError(f"there is no readable run called {_short(key)} (it may have been deleted)")
        return info

    def sizes(self) -> list[RunFile]:
        """The runs folder's runs (not the shipped model), newest first, for a pruning policy."""
        out = []
        for key, (path, st) in self._listing().items():
            if key in BUILTIN_KEYS:
                continue
            try:
                info = self._info(key, path, st)
            except FileNotFoundError:
                continue
            owner = info.owner if isinstance(info, RunInfo) else None
            out.append(RunFile(key, path.name, owner, st.st_mtime, st.st_size))
        return out

    # ------------------------------------------------------------------------------ models
    def get(self, key) -> Predictor:
        """The model of a key from choices(); CheckpointError if it is unknown or unusable."""
        path = self.paths().get(key) if isinstance(key, str) else None
        if path is None:
            raise CheckpointError(f"no checkpoint called {_short(key)} is available")
        try:
            stamp = _stamp(path.stat())
        except FileNotFoundError:
            raise CheckpointError(f"{key} was removed") from None
        with self._lock:
            hit = self._models.get(key)
            if hit is not None and hit.stamp == stamp:
                self._models.move_to_end(key)
                return hit.predictor
            return self._load(key, path, stamp)

    def _load(self, key: str, path: Path, stamp: tuple) -> Predictor:
        """Load under the lock (a model is loaded once); a failure is remembered per file version."""
        known = self._infos.get(key)
        if known is not None and known[0] == stamp and isinstance(known[1], CheckpointError):
            raise known[1]
        self._drop(key)
        try:
            ck = load_checkpoint(path)
        except CheckpointError as exc:
            error = CheckpointError(str(exc).replace(str(path), key).replace(path.name, key))
            self._infos[key] = (stamp, error)
            raise error from None
        predictor = Predictor.from_checkpoint(ck, key)
        self._infos[key] = (stamp, self._run_info(key, path, ck))
        self._models[key] = _Model(stamp, predictor, _model_bytes(predictor))
        self._evict()
        return predictor

    def held(self) -> tuple[int, int]:
        """(models held, bytes they hold with their parts)."""
        with self._lock:
            return len(self._models), sum(m.total() for m in self._models.values())

    def _evict(self) -> None:
        """Least recently used out first, until within the bounds; the newest model always stays."""
        with self._lock:
            while len(self._models) > 1 and (len(self._models) > self.max_models
                                             or sum(m.total() for m in self._models.values()) > self.max_bytes):
                self._drop(next(iter(self._models)))

    def _drop(self, key: str) -> None:
        with self._lock:
            model = self._models.pop(key, None)
        if model is not None:
            self.worker.cancel(id(model.predictor))
            model.parts.clear()

    # Parts' hooks: a model the store loaded keeps its parts in its entry (and counts them); any other
    # Predictor (evicted meanwhile, or loaded elsewhere) keeps them weakly, as Parts does.
    def _owned(self, predictor) -> str | None:
        for key, model in self._models.items():
            if model.predictor is predictor:
                return key
        return None

    def _slot(self, predictor) -> dict:
        with self._lock:
            key = self._owned(predictor)
            if key is None:
                return super()._slot(predictor)
            self._models.move_to_end(key)    # using a model's parts is using it
            return self._models[key].parts

    def _added(self, predictor) -> None:
        self._evict()

    def wants(self, predictor) -> bool:
        with self._lock:
            return self._owned(predictor) is not None

    # ------------------------------------------------------------------------------ files
    @property
    def downloads(self) -> Path:
        """The folder of download copies (made on first use)."""
        with self._lock:
            if self._downloads is None:
                self._downloads = Path(tempfile.mkdtemp(prefix="mnist-downloads-"))
            self._downloads.mkdir(parents=True, exist_ok=True)
            return self._downloads

    def export(self, key: str, dest_dir: Path | None = None) -> Path:
        """A copy of the run's checkpoint, named after the run, in dest_dir (default: the store's
        downloads folder), for download. Written atomically, so a concurrent download never sees half a
        file."""
        info = self.info(key)
        dest = Path(dest_dir) if dest_dir is not None else self.downloads
        dest.mkdir(parents=True, exist_ok=True)
        out = dest / BUILTIN_FILES.get(key, info.path.name)
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=dest)
        os.close(fd)
        try:
            shutil.copyfile(info.path, tmp)
            os.replace(tmp, out)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._trim(dest)
        return out

    def export_onnx(self, key: str, dest_dir: Path | None = None) -> Path:
        """The run as an ONNX file named after it, in dest_dir (default: the downloads folder); made once
        per checkpoint version (a file newer than the checkpoint is reused). Raises RunError, ExportError
        or CheckpointError."""
        info = self.info(key)
        dest = Path(dest_dir) if dest_dir is not None else self.downloads
        out = dest / (Path(BUILTIN_FILES.get(key, info.path.name)).stem + ".onnx")
        if out.is_file() and out.stat().st_mtime_ns >= info.path.stat().st_mtime_ns:
            return out
        made = export_onnx_file(info.path, out)
        self._trim(dest)
        return made

    def _trim(self, folder: Path) -> None:
        """The downloads folder keeps its max_downloads newest files (other folders are the caller's)."""
        if self._downloads is None or folder.resolve() != self._downloads.resolve():
            return
        files = []
        for p in folder.iterdir():
            try:
                files.append((p.stat().st_mtime_ns, p))
            except FileNotFoundError:
                continue
        for _, p in sorted(files, reverse=True)[self.max_downloads:]:
            p.unlink(missing_ok=True)

    def delete(self, key, owner) -> str:
        """Delete a run of the runs folder: only its owner may (HOST: the host, any run); the shipped
        model never, a run without owner only the host. Drops everything the store holds of it."""
        if key in BUILTIN_KEYS:
            raise RunError("a shipped model cannot be deleted")
        paths = self.paths()
        if not isinstance(key, str) or key not in paths:
            raise RunError("choose a run from the list to delete")
        if owner is not HOST:
            try:
                run_owner = self.info(key).owner
            except RunError:
                run_owner = None
            if run_owner is None or not isinstance(owner, str) or run_owner != owner:
                raise RunError("that run is not yours to delete")
        try:
            paths[key].unlink()
        finally:
            self.forget([key])
        return paths[key].name

    def forget(self, names_or_keys: Iterable[str] | str) -> None:
        """Drop everything held of these runs (keys, or file names of the runs folder): the model, its
        parts, its RunInfo, its download copies. For runs removed by someone else (the pruner)."""
        keys = {_key(n) for n in ([names_or_keys] if isinstance(names_or_keys, str) else names_or_keys)}
        for key in keys:
            with self._lock:
                self._drop(key)
                self._infos.pop(key, None)
            if self._downloads is not None:
                name = BUILTIN_FILES.get(key, key.removeprefix("runs/"))
                for copy in (name, Path(name).stem + ".onnx"):
                    (self._downloads / copy).unlink(missing_ok=True)
