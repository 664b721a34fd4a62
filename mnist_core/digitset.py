"""My digits as an MNIST-format data set: a zip to take home, and the same zip (or its jsonl) read back.

The zip holds the four files of `MNIST/raw/` that torchvision's MNIST class checks for (train-* the
drawings taught, t10k-* the ones held aside, 28x28 uint8 as the network sees them: raster.py, the page's
twin), so `torchvision.datasets.MNIST(root, train=..., download=False)` loads both splits from the folder it
is unpacked in, plus `strokes.jsonl`: the drawings themselves, one JSON object a line
({"strokes": <canvas JSON>, "label": 0-9}), which is what an upload restores (the images follow from it).

An upload is untrusted: its size is bounded before it is read, a zip's members are checked by name,
count, declared size and compression ratio, and strokes.jsonl is read with a bounded read (a zip that
lies about sizes cannot inflate past the bound); every drawing is then checked as /classify_strokes
checks one (teach.validate_drawings). Any problem is one DigitSetError line, and nothing is returned
half-read: the caller gets all the drawings or an error.
"""
from __future__ import annotations

import io
import json
import os
import zipfile
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

import numpy as np

from .data import idx_bytes
from .teach import MAX_DRAWINGS, TeachError, render, validate_drawings
from .teach import held_indices as teach_held

MAX_UPLOAD_BYTES = 16 * 1024 * 1024    # the uploaded file (zip or jsonl)
MAX_JSONL_BYTES = 16 * 1024 * 1024     # strokes.jsonl unpacked (500 drawings of the largest sane size fit)
MAX_MEMBERS = 16                       # entries of a zip (ours has 5; a re-zipped folder adds a few)
MAX_RATIO = 100                        # unpacked / packed size of a member (JSON packs ~5-10x)
JSONL = "strokes.jsonl"
RAW = "MNIST/raw"
FILES = {True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
ZIP_TIME = (2024, 1, 1, 0, 0, 0)       # fixed member times: the same drawings give the same bytes


class DigitSetError(ValueError):
    """An upload (or the drawings to pack) cannot be used; one line says why."""


# ------------------------------------------------------------------------------ writing
def to_zip(drawings: list[dict], held_indices: Iterable[int] | None = None) -> bytes:
    """The drawings as the data set zip: MNIST/raw/train-* (all but held_indices), MNIST/raw/t10k-* (those),
    strokes.jsonl (every drawing, in order). held_indices None: as a teach holds them aside
    (teach.held_indices), or the last drawing when that keeps none (every digit drawn once or twice).
    torchvision cannot read an empty split, so both must have a drawing: DigitSetError otherwise, and for
    bad drawings or indices."""
    try:
        checked = validate_drawings(drawings)
    except TeachError as exc:
        raise DigitSetError(str(exc)) from None
    if held_indices is None:
        held_indices = teach_held(checked) or [len(checked) - 1]
    held = set()
    for i in held_indices:
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not 0 <= i < len(checked):
            raise DigitSetError("a held-aside index is not one of the drawings")
        held.add(int(i))
    if not held or len(held) == len(checked):
        raise DigitSetError("the data set needs at least one drawing held aside and one taught "
                            "(torchvision cannot read an empty split)")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for train in (True, False):
            part = [d for i, d in enumerate(checked) if (i in held) != train]
            images = np.stack([render(d) for d in part]) if part else np.zeros((0, 28, 28), np.uint8)
            labels = np.array([d["label"] for d in part], np.uint8)
            for name, data in zip(FILES[train], (images, labels), strict=True):
                z.writestr(zipfile.ZipInfo(f"{RAW}/{name}", ZIP_TIME), idx_bytes(data), zipfile.ZIP_DEFLATED)
        lines = "".join(json.dumps({"strokes": d["strokes"], "label": d["label"]}, separators=(",", ":")) + "\n"
                        for d in checked)
        z.writestr(zipfile.ZipInfo(JSONL, ZIP_TIME), lines, zipfile.ZIP_DEFLATED)
    return buf.getvalue()


# ------------------------------------------------------------------------------ reading
def _read_upload(path_or_bytes) -> bytes:
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        data = bytes(path_or_bytes)
    elif isinstance(path_or_bytes, (str, os.PathLike)):
        path = Path(path_or_bytes)
        try:
            size = path.stat().st_size
            if size > MAX_UPLOAD_BYTES:
                raise DigitSetError(f"the file is too large ({size / 1e6:.1f} MB; the limit is "
                                    f"{MAX_UPLOAD_BYTES / 1e6:.0f} MB)")
            with open(path, "rb") as f:
                data = f.read(MAX_UPLOAD_BYTES + 1)
        except OSError:
            raise DigitSetError("the file cannot be read") from None
    else:
        raise DigitSetError("the upload must be a file")
    if len(data) > MAX_UPLOAD_BYTES:
        raise DigitSetError(f"the file is too large (the limit is {MAX_UPLOAD_BYTES / 1e6:.0f} MB)")
    if not data:
        raise DigitSetError("the file is empty")
    return data


def _safe_name(name: str) -> bool:
    p = PurePosixPath(name)
    return not (name.startswith(("/", "\\")) or "\\" in name or ".." in p.parts or ":" in name or "\x00" in name)


def _jsonl_from_zip(data: bytes) -> bytes:
    try:
        z = zipfile.ZipFile(io.BytesIO(data))
        infos = z.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        raise DigitSetError("the file is not a readable zip") from None
    if len(infos) > MAX_MEMBERS:
        raise DigitSetError(f"the zip has too many files ({len(infos)}; the limit is {MAX_MEMBERS})")
    if any(not _safe_name(i.filename) for i in infos):
        raise DigitSetError("the zip has a file with an unsafe name")
    found = [i for i in infos if PurePosixPath(i.filename).name == JSONL and not i.is_dir()]
    if len(found) != 1:
        raise DigitSetError(f"the zip must hold one {JSONL} (the drawings); it has {len(found)}")
    info = found[0]
    if info.file_size > MAX_JSONL_BYTES:
        raise DigitSetError(f"{JSONL} is too large unpacked (the limit is {MAX_JSONL_BYTES / 1e6:.0f} MB)")
    if info.file_size > MAX_RATIO * max(info.compress_size, 1):
        raise DigitSetError(f"{JSONL} is packed suspiciously tightly (a zip bomb?)")
    try:
        with z.open(info) as f:
            text = f.read(MAX_JSONL_BYTES + 1)     # bounded even when the header lies about the size
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError, RuntimeError):
        raise DigitSetError(f"{JSONL} in the zip cannot be read (damaged or encrypted)") from None
    if len(text) > MAX_JSONL_BYTES or len(text) > MAX_RATIO * max(info.compress_size, 1):
        raise DigitSetError(f"{JSONL} unpacks to more than its zip entry says (a zip bomb?)")
    return text


def parse_jsonl(text: bytes) -> list[dict]:
    """strokes.jsonl's lines as drawings (not yet validated); DigitSetError naming the first bad line."""
    try:
        lines = text.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        raise DigitSetError(f"{JSONL} is not UTF-8 text") from None
    items = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if len(items) >= MAX_DRAWINGS:
            raise DigitSetError(f"too many drawings (the limit is {MAX_DRAWINGS})")
        try:
            items.append(json.loads(line))
        except (ValueError, RecursionError):
            raise DigitSetError(f"line {n} of {JSONL} is not valid JSON") from None
    return items


def from_upload(path_or_bytes) -> list[dict]:
    """A data set zip (to_zip's) or a bare strokes.jsonl (a path or its bytes) -> the validated drawings
    [{"strokes", "label"}] in order, all or none; DigitSetError (one line) for anything wrong."""
    data = _read_upload(path_or_bytes)
    text = _jsonl_from_zip(data) if data[:2] == b"PK" else data
    if len(text) > MAX_JSONL_BYTES:
        raise DigitSetError(f"{JSONL} is too large (the limit is {MAX_JSONL_BYTES / 1e6:.0f} MB)")
    items = parse_jsonl(text)
    try:
        return validate_drawings(items)
    except TeachError as exc:
        raise DigitSetError(f"{JSONL}: {exc}") from None
