"""A checkpoint as an ONNX file, for onnxruntime on a phone, in a browser or in a C++ service.

torch's exporter (`torch.onnx.export(..., dynamo=True)`) traces the network in eval mode (BatchNorm with
its running statistics, no dropout) with a dynamic batch axis. The graph's input is what the network
sees: `image`, float32 (N, 1, 28, 28), a white digit on black, scaled to 0..1 then normalized with
(x - mean) / std; the output `log_probs`, float32 (N, 10), the log-softmax over the digits 0..9. The
file's metadata says so (`mean`, `std`, `classes`, `input`, `output`) with the model's own figures.

The ONNX packages (`onnx`, `onnxscript`) are optional: without them `export_onnx` raises ExportError
saying what to install, and nothing else of mnist_core needs them.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import torch

from .checkpoint import FILE_MODE, model_from_checkpoint

INPUT_NAME, OUTPUT_NAME = "image", "log_probs"
CLASSES = [str(d) for d in range(10)]
INSTALL_HINT = "pip install onnx onnxscript (or: pip install -e '.[onnx]')"


class ExportError(RuntimeError):
    """The export cannot be made; the message says why in one sentence."""


def onnx_metadata(ckpt: dict) -> dict[str, str]:
    """The strings stored in the ONNX file's metadata_props (all values are strings in ONNX)."""
    norm = ckpt["normalization"]
    meta = {
        "architecture": str(ckpt["model_args"].get("architecture")),
        "mean": repr(float(norm["mean"])), "std": repr(float(norm["std"])),
        "classes": json.dumps(CLASSES),
        "input": f"{INPUT_NAME}: float32 [N,1,28,28], white digit on black, (pixel/255 - mean) / std",
        "output": f"{OUTPUT_NAME}: float32 [N,10], log-softmax over the classes",
    }
    acc = (ckpt.get("test_metrics") or {}).get("accuracy")
    if isinstance(acc, (int, float)):
        meta["test_accuracy"] = f"{acc:.2f}"
    return meta


def missing_exporter() -> str | None:
    """None when the ONNX packages are importable, else the one sentence that says what to install."""
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as exc:
        return f"ONNX export needs the optional package {exc.name!r}: {INSTALL_HINT}"
    return None


def export_onnx(ckpt: dict, out: str | os.PathLike) -> Path:
    """Write `ckpt`'s last weights to `out` as one self-contained ONNX file, atomically (temp + os.replace)."""
    if (why := missing_exporter()) is not None:
        raise ExportError(why)
    out = Path(out)
    model = model_from_checkpoint(ckpt).float()
    example = torch.zeros(2, 1, 28, 28)
    batch = torch.export.Dim("batch", min=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")     # the exporter's progress notes and deprecations are not the user's
        program = torch.onnx.export(model, (example,), dynamo=True, input_names=[INPUT_NAME],
                                    output_names=[OUTPUT_NAME], dynamic_shapes=({0: batch},), verbose=False)
    program.model.metadata_props.update(onnx_metadata(ckpt))
    program.model.doc_string = "7,416-parameter MNIST CNN (mnist_core); see the metadata for the input's scaling"
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    try:
        program.save(tmp, external_data=False)
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out


def export_onnx_file(checkpoint: str | os.PathLike, out: str | os.PathLike, timeout: float = 300) -> Path:
    """export_onnx in a process of its own (`python -m mnist_core export`): torch's exporter traces the
    model with global state of its own (dynamo), which must not meet the training runs and inference of
    a server's other threads; a crash or a hang of the exporter stays in that process too."""
    if (why := missing_exporter()) is not None:
        raise ExportError(why)
    cmd = [sys.executable, "-m", "mnist_core", "export", "--checkpoint", str(checkpoint), "--out", str(out)]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                             cwd=Path(__file__).resolve().parent.parent)
    except subprocess.TimeoutExpired:
        raise ExportError(f"the ONNX export took longer than {timeout:.0f} s") from None
    if res.returncode != 0:
        lines = [line for line in res.stderr.strip().splitlines() if line.strip()]
        raise ExportError(lines[-1].removeprefix("error: ") if lines else f"the exporter failed ({res.returncode})")
    return Path(out)
