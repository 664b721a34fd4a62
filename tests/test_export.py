"""ONNX export (mnist_core/export.py, `python -m mnist_core export`), checked with onnxruntime."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from mnist_core.batches import TensorBatches
from mnist_core.checkpoint import load_checkpoint, model_from_checkpoint
from mnist_core.data import load_mnist
from mnist_core.export import CLASSES, INPUT_NAME, ExportError, export_onnx
from tests.conftest import ROOT, need


@pytest.fixture(scope="module")
def ort():
    need(all(importlib.util.find_spec(m) for m in ("onnx", "onnxscript", "onnxruntime")),
         "the optional ONNX packages are not installed (pip install -r requirements-dev.txt)")
    import onnxruntime
    return onnxruntime


@pytest.fixture(scope="module")
def shipped_onnx(ort, shipped_checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx") / "shipped.onnx"
    res = subprocess.run([sys.executable, "-m", "mnist_core", "export", "--checkpoint", str(shipped_checkpoint),
                          "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert f"wrote {out}" in res.stderr and "mean 0.1307, std 0.3081" in res.stderr
    return out


def session(ort, path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_the_file_is_small_self_contained_and_says_how_to_feed_it(ort, shipped_onnx, shipped_checkpoint):
    import onnx

    assert shipped_onnx.stat().st_size < 100_000
    assert list(shipped_onnx.parent.iterdir()) == [shipped_onnx]       # no external-data side files, no temp left
    model = onnx.load(str(shipped_onnx))
    meta = {p.key: p.value for p in model.metadata_props}
    ckpt = load_checkpoint(shipped_checkpoint)
    assert float(meta["mean"]) == ckpt["normalization"]["mean"] and float(meta["std"]) == ckpt["normalization"]["std"]
    assert json.loads(meta["classes"]) == CLASSES == [str(d) for d in range(10)]
    assert meta["test_accuracy"] == f"{ckpt['test_metrics']['accuracy']:.2f}"
    (inp,) = model.graph.input
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert inp.name == INPUT_NAME and dims[1:] == [1, 28, 28] and isinstance(dims[0], str)   # dynamic batch axis


def test_any_batch_size_runs(ort, shipped_onnx):
    s = session(ort, shipped_onnx)
    for n in (1, 3, 257):
        (out,) = s.run(None, {INPUT_NAME: np.zeros((n, 1, 28, 28), np.float32)})
        assert out.shape == (n, 10)
        np.testing.assert_allclose(np.exp(out).sum(1), 1.0, atol=1e-5)


def test_a_trained_run_exports_too_and_matches_pytorch(ort, tiny_checkpoint, tmp_path):
    ckpt = load_checkpoint(tiny_checkpoint)
    out = export_onnx(ckpt, tmp_path / "sub" / "tiny.onnx")
    x = torch.randn(16, 1, 28, 28)
    with torch.inference_mode():
        want = model_from_checkpoint(ckpt)(x).numpy()
    (got,) = session(ort, out).run(None, {INPUT_NAME: x.numpy()})
    assert np.abs(got - want).max() <= 1e-4


def test_without_the_onnx_packages_the_message_says_what_to_install(monkeypatch, shipped_checkpoint, tmp_path):
    monkeypatch.setitem(sys.modules, "onnxscript", None)        # `import onnxscript` now raises ImportError
    with pytest.raises(ExportError, match=r"optional package 'onnxscript': pip install onnx onnxscript"):
        export_onnx(load_checkpoint(shipped_checkpoint), tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


def test_the_cli_reports_a_bad_checkpoint_in_one_line(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    res = subprocess.run([sys.executable, "-m", "mnist_core", "export", "--checkpoint", str(bad),
                          "--out", str(tmp_path / "x.onnx")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and res.stderr.startswith("error: ") and "Traceback" not in res.stderr
    assert not (tmp_path / "x.onnx").exists()


def test_onnxruntime_agrees_with_pytorch_on_all_10000_test_digits(ort, shipped_onnx, shipped_checkpoint, real_mnist):
    _, test = load_mnist(real_mnist, download=False)
    ckpt = load_checkpoint(shipped_checkpoint)
    model = model_from_checkpoint(ckpt)
    norm = ckpt["normalization"]
    s = session(ort, shipped_onnx)
    worst, same, total = 0.0, 0, 0
    with torch.inference_mode():
        for x, _ in TensorBatches(test.images, test.labels, 1000, shuffle=False, mean=norm["mean"], std=norm["std"]):
            want = model(x).numpy()
            (got,) = s.run(None, {INPUT_NAME: x.numpy()})
            worst = max(worst, float(np.abs(got - want).max()))
            same += int((got.argmax(1) == want.argmax(1)).sum())
            total += len(x)
    assert total == 10_000 and same == 10_000
    assert worst <= 1e-4, worst


def test_a_run_is_exported_once_named_after_it(ort, shipped_checkpoint, tiny_checkpoint, tmp_path):
    import shutil

    from mnist_core.runs import SHIPPED_KEY, RunError, RunStore

    runs_dir = tmp_path / "runs"
    runs_dir.mkdir()
    shutil.copy(tiny_checkpoint, runs_dir / "tiny-run.pt")
    store, dest = RunStore(shipped_checkpoint, runs_dir), tmp_path / "out"
    first = store.export_onnx("runs/tiny-run.pt", dest)
    assert first.name == "tiny-run.onnx" and first.stat().st_size < 100_000
    stamp = first.stat().st_mtime_ns
    assert store.export_onnx("runs/tiny-run.pt", dest).stat().st_mtime_ns == stamp       # reused, not remade
    assert store.export_onnx(SHIPPED_KEY, dest).name == "mnist_cnn.onnx"
    with pytest.raises(RunError):
        store.export_onnx("runs/../../etc/passwd", dest)
