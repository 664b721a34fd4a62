"""Locating, downloading and reading MNIST.

The files are torchvision's layout: <root>/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte.
torchvision.datasets.MNIST does the download for users on the internet; reading is done here, with
the header and size of every file checked, so that a truncated download says so instead of failing
later as a reshape error deep inside torch.
"""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

DEFAULT_DATA_DIR = "./data"
ENV_VAR = "MNIST_DATA_DIR"
FILES = {
    True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions
_LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension


class DataError(RuntimeError):
    """MNIST is missing, unreadable or damaged; the message says what to do, in one sentence."""


@dataclass(frozen=True)
class Split:
    images: torch.Tensor  # uint8 [N, 28, 28], white digit on black, as stored
    labels: torch.Tensor  # int64 [N]

    def __len__(self) -> int:
        return len(self.labels)


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """--data-dir wins, then $MNIST_DATA_DIR, then ./data."""
    return Path(data_dir or os.environ.get(ENV_VAR) or DEFAULT_DATA_DIR).expanduser()


def raw_dir(root: Path) -> Path:
    return Path(root) / "MNIST" / "raw"


def _where_message(root: Path) -> str:
    names = ", ".join(FILES[True] + FILES[False])
    return (f"put the four uncompressed MNIST files ({names}) in {raw_dir(root).resolve()}, "
            f"or point --data-dir / ${ENV_VAR} at a folder that has MNIST/raw/ with them")


def ensure_mnist(root: Path, download: bool = True) -> Path:
    """Return the raw folder, downloading with torchvision when files are missing."""
    root = Path(root)
    raw = raw_dir(root)
    missing = [n for n in FILES[True] + FILES[False] if not (raw / n).is_file()]
    if not missing:
        return raw
    reason = "downloading is switched off"
    if download:
        try:
            from torchvision.datasets import MNIST
            for train in (True, False):
                MNIST(str(root), train=train, download=True)
            if all((raw / n).is_file() for n in missing):
                return raw
            reason = "the download finished without the files"
        except Exception as exc:  # network, permissions, checksum: all mean "not available"
            detail = str(exc).splitlines()[0][:120] if str(exc) else "no detail"
            reason = f"the download failed ({type(exc).__name__}: {detail})"
    raise DataError(f"MNIST is not in {raw} ({', '.join(missing)} missing) and {reason}: {_where_message(root)}.")


def read_idx(path: Path, magic: int, expected_shape: tuple[int, ...] = ()) -> np.ndarray:
    """Read one uncompressed IDX file, checking magic number, dimensions and file size."""
    path = Path(path)
    ndim = magic & 0xFF
    try:
        with open(path, "rb") as f:
            header = f.read(4 + 4 * ndim)
            if len(header) < 4 + 4 * ndim:
                raise DataError(f"{path} is too short to be an IDX file ({len(header)} bytes): the file is damaged; "
                                "delete it and download again.")
            got_magic, *dims = struct.unpack(f">I{ndim}I", header)
            if got_magic != magic:
                raise DataError(f"{path} is not the expected IDX file (magic {got_magic:#010x}, expected "
                                f"{magic:#010x}); is it compressed or the wrong file?")
            if expected_shape and tuple(dims[1:]) != expected_shape:
                raise DataError(f"{path} holds {'x'.join(map(str, dims[1:]))} items, "
                                f"expected {'x'.join(map(str, expected_shape))}.")
            count = int(np.prod(dims))
            data = np.frombuffer(f.read(), dtype=np.uint8)
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}.") from None
    if data.size != count:
        raise DataError(f"{path} is truncated or padded: its header promises {count:,} bytes of data but it has "
                        f"{data.size:,}; delete it and download again.")
    return data.reshape(dims)


def read_split(raw: Path, train: bool) -> Split:
    img_name, lbl_name = FILES[train]
    images = read_idx(Path(raw) / img_name, _IMAGES_MAGIC, (28, 28))
    labels = read_idx(Path(raw) / lbl_name, _LABELS_MAGIC)
    if len(images) != len(labels):
        raise DataError(f"{img_name} has {len(images):,} images but {lbl_name} has {len(labels):,} labels; "
                        "one of them is damaged.")
    if labels.size and labels.max() > 9:
        raise DataError(f"{lbl_name} has a label {int(labels.max())}; MNIST labels are 0-9.")
    return Split(torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64)))


def load_mnist(data_dir: str | os.PathLike | None = None, download: bool = True) -> tuple[Split, Split]:
    """(train, test) splits as uint8 tensors; raises DataError with a one-sentence fix."""
    raw = ensure_mnist(resolve_data_dir(data_dir), download=download)
    return read_split(raw, True), read_split(raw, False)


def idx_bytes(array: np.ndarray) -> bytes:
    """uint8 data as an IDX file's bytes (MNIST's format: magic 0x08 0x0N, big-endian sizes, then the data)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    return struct.pack(f">I{array.ndim}I", 0x00000800 | array.ndim, *array.shape) + array.tobytes()


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write uint8 data as an IDX file (tests and tools make small synthetic data sets with it)."""
    Path(path).write_bytes(idx_bytes(array))


def write_mnist(root: Path, train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray]) -> Path:
    """Write (images, labels) pairs in torchvision's layout under root; returns root."""
    raw = raw_dir(Path(root))
    raw.mkdir(parents=True, exist_ok=True)
    for is_train, (images, labels) in ((True, train), (False, test)):
        write_idx(raw / FILES[is_train][0], images)
        write_idx(raw / FILES[is_train][1], labels)
    return Path(root)
