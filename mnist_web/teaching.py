"""Teach the model your handwriting (issue 33), the server's side: /teach, and My digits as a data set.

My digits live in the browser (web/mydigits.js keeps them in localStorage); the server sees them only
when the visitor teaches, downloads or restores them, and keeps nothing of them but the taught run.

- `teach(drawings, model_key)`, /teach: fine-tune the chosen model (else the default one) on the
  drawings as a job of its own kind in the training queue (TrainingService.stream_teach: the same queue,
  budget, worker processes or Ray cluster as a run); streams the status line (the /train stream's
  states) and a result dict; the last one names the saved run's key and carries the report. The page
  then switches to that run (`taught`).
- `download(drawings)`: My digits as an MNIST-format zip (mnist_core/digitset.py to_zip: the drawings kept
  aside by a teach are its t10k files).
- `restore(file)`: a zip or jsonl upload back into drawings, all or nothing (one line when refused).
"""
from __future__ import annotations

import json
import shutil
import tempfile
import uuid
from pathlib import Path

import gradio as gr

from mnist_core.checkpoint import CheckpointError
from mnist_core.digitset import DigitSetError, from_upload, to_zip
from mnist_core.registry import ModelRegistry
from mnist_core.store import RunError
from mnist_core.teach import TeachError, held_indices, validate_drawings

from .owners import client_address, owner_of
from .train_views import status_html
from .training_service import TrainingService, TrainUpdate

ZIP_NAME = "my-digits.zip"
KEEP_ZIPS = 8          # the newest zips kept for download (Gradio serves its own copy once returned)


def result_value(u: TrainUpdate, key: str | None = None) -> dict:
    """What /teach's JSON output says of one update: its state and message, and at the end the saved
    run's key and the report (held-aside and MNIST test accuracy before and after)."""
    return {"state": u.state, "message": u.message, "key": key, "report": u.report,
            "progress": round(u.progress, 3), "position": u.position}


def teach_status(u: TrainUpdate) -> str:
    """The status line of a teach (the /train stream's line: div.train-status[data-state])."""
    return status_html(u.state, u.message, u.batch, u.batches, u.eta_seconds, u.images_per_s, u.progress,
                       u.position)


def decoded(drawings):
    """/teach's drawings as sent: a list, or its JSON text (TeachError when that text is not JSON)."""
    if isinstance(drawings, (str, bytes, bytearray)):
        try:
            return json.loads(drawings)
        except ValueError:
            raise TeachError("the drawings are not valid JSON") from None
    return drawings


class TeachHandlers:
    """/teach, the taught run chosen in the page, My digits downloaded and restored."""

    def __init__(self, training: TrainingService, registry: ModelRegistry, export_dir: Path,
                 trusted_proxies: frozenset[str] = frozenset(), default_key: str | None = None) -> None:
        self.training, self.registry, self.trusted_proxies = training, registry, trusted_proxies
        self.default_key = default_key
        self.zips = Path(export_dir) / "my-digits"

    def base(self, model_key) -> tuple[str, bytes, str]:
        """(key, checkpoint bytes, name) of the model to teach: the chosen one, else the default one.
        TeachError when there is none or it cannot be read."""
        key = model_key if isinstance(model_key, str) and model_key else self.default_key
        try:
            info = self.registry.info(key)
            return key, info.path.read_bytes(), info.name
        except (RunError, CheckpointError, OSError) as exc:
            raise TeachError(f"no model to teach ({exc})") from None

    def teach(self, drawings, model_key, request: gr.Request = None):
        """/teach: streams (status line HTML, result dict) as the job waits, loads, runs and ends."""
        try:
            items = decoded(drawings)
            _, base, name = self.base(model_key)
        except TeachError as exc:
            u = TrainUpdate(state="refused", message=f"Not started: {exc}.")
            yield teach_status(u), result_value(u)
            return
        owner = owner_of(request)
        stream = self.training.stream_teach(items, base, name, owner.id,
                                            client_address(request, self.trusted_proxies), owner.persistent)
        for u in stream:
            key = f"runs/{u.checkpoint}" if u.checkpoint else None
            yield teach_status(u), result_value(u, key)

    def taught(self, result, current_key, note=""):
        """After a teach: the saved run becomes the visitor's model (key, picker, note); else nothing changes."""
        key = result.get("key") if isinstance(result, dict) else None
        if not isinstance(key, str) or key not in self.registry.paths():
            return current_key, gr.update(choices=self.registry.choices(), value=current_key), note
        return (key, gr.update(choices=self.registry.choices(), value=key),
                f"Using {self.registry.info(key).label}: your handwriting taught.")

    def download(self, drawings, model_key=None):
        """My digits as an MNIST-format zip: (its path or None, one-line message).
        `model_key`: unused (the page sends the same inputs as to /teach)."""
        try:
            checked = validate_drawings(decoded(drawings))
        except TeachError as exc:
            return None, f"Nothing to download: {exc}."
        try:
            held = held_indices(checked)
        except TeachError:   # too few of a digit to keep any aside: every drawing is a training one
            held = []
        try:
            data = to_zip(checked, held)
        except DigitSetError as exc:
            return None, f"Could not make the zip: {exc}."
        path = self._new_zip_path()
        path.write_bytes(data)
        return str(path), (
            f"{len(checked)} drawings: {len(checked) - len(held)} in the train files, {len(held)} in the t10k "
            f"files (the ones a teach keeps aside to check itself).")

    def _new_zip_path(self) -> Path:
        """A fresh folder for one zip (named my-digits.zip when saved), the oldest beyond KEEP_ZIPS removed."""
        self.zips.mkdir(parents=True, exist_ok=True)
        old = sorted(self.zips.iterdir(), key=lambda p: p.stat().st_mtime)
        for p in old[:max(0, len(old) - KEEP_ZIPS + 1)]:
            shutil.rmtree(p, ignore_errors=True)
        return Path(tempfile.mkdtemp(prefix=uuid.uuid4().hex[:8], dir=self.zips)) / ZIP_NAME

    def restore(self, upload) -> dict:
        """An uploaded zip or jsonl -> {"drawings": [...]} for the page to put in My digits, or
        {"error": one line}: all of them or none."""
        if upload is None:
            return {"error": "no file was uploaded"}
        path = getattr(upload, "name", upload)
        try:
            return {"drawings": from_upload(str(path))}
        except (DigitSetError, TeachError) as exc:
            return {"error": f"Not restored: {exc}"}
        except OSError as exc:
            return {"error": f"Not restored: the file could not be read ({exc.strerror or exc})"}
