"""Figures that only mean something on the real MNIST test set (run in CI; skip elsewhere without data)."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from mnist_core.checkpoint import load_checkpoint
from mnist_core.data import load_mnist
from mnist_core.predict import Predictor
from tests.conftest import ROOT
from tests.drawing import render


def test_shipped_checkpoint_reaches_99_4_through_the_cli(real_mnist, shipped_checkpoint):
    out = subprocess.run([sys.executable, "-m", "mnist_core", "evaluate", "--checkpoint", str(shipped_checkpoint),
                          "--data-dir", str(real_mnist), "--no-download", "--json"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300, check=True)
    result = json.loads(out.stdout)
    stored = load_checkpoint(shipped_checkpoint)
    # exactly what the training run measured for these weights (last epoch), not just "high enough"
    assert result["test_accuracy"] == stored["history"][-1]["test_accuracy"] == stored["test_metrics"]["accuracy"]
    assert result["correct"] == stored["test_metrics"]["correct"]
    assert result["confusion_matrix"] == stored["test_metrics"]["confusion_matrix"]
    assert result["per_class_accuracy"] == stored["test_metrics"]["per_class_accuracy"]
    assert result["test_loss"] == pytest.approx(stored["history"][-1]["test_loss"], rel=1e-6)
    assert result["test_accuracy"] >= 99.40, result["test_accuracy"]
    # totals, per class and confusion matrix agree with each other and with the test set's labels
    _, test = load_mnist(real_mnist, download=False)
    cm = np.array(result["confusion_matrix"])
    assert result["total"] == 10000 == cm.sum()
    assert cm.sum(1).tolist() == torch.bincount(test.labels, minlength=10).tolist()      # rows = true class
    assert np.trace(cm) == result["correct"] and result["test_accuracy"] == 100.0 * result["correct"] / 10000
    assert result["per_class_accuracy"] == [round(100.0 * cm[c, c] / cm[c].sum(), 4) for c in range(10)]
    assert cm.sum(0).tolist() != cm.sum(1).tolist()        # columns are the predictions, and differ from rows


def test_drawings_are_recognized_as_well_as_mnist_digits(real_mnist, shipped_checkpoint):
    """Real test digits drawn big onto an 800x800 canvas at random places and sizes, through the
    app's own code path, lose at most 1.5 points of accuracy against the original 28x28 digits."""
    _, test = load_mnist(real_mnist, download=False)
    predictor = Predictor.from_file(shipped_checkpoint)
    rng = np.random.default_rng(0)
    idx = rng.choice(len(test), 600, replace=False)
    digits, labels = test.images[idx].numpy(), test.labels[idx].numpy()
    original = (predictor.probabilities(digits / 255.0).argmax(1) == labels).mean() * 100
    correct, aligned, l1 = 0, 0, []
    for d, y in zip(digits, labels, strict=True):
        height = int(rng.integers(150, 600))
        top, left = int(rng.integers(0, 800 - height)), int(rng.integers(0, 800 - height))
        pred = predictor.predict({"background": None, "layers": [], "composite": render(d, 800, height, top, left)})
        correct += (not pred.empty) and pred.digit == y
        # MNIST placed each digit by its centre of mass; so must the app: the 28x28 image it makes from
        # the drawing should need no shift to lie on the original digit
        o = d / 255.0
        shifts = {(dy, dx): np.abs(np.roll(pred.image, (dy, dx), (0, 1)) - o).sum()
                  for dy in range(-3, 4) for dx in range(-3, 4)}
        aligned += min(shifts, key=shifts.get) == (0, 0)
        l1.append(shifts[(0, 0)] / o.sum())
    drawn = 100.0 * correct / len(labels)
    print(f"accuracy on originals {original:.2f}%, on drawings {drawn:.2f}%; best shift (0, 0) for "
          f"{aligned}/{len(labels)}, median relative L1 {np.median(l1):.3f}")
    assert drawn >= original - 1.5, (original, drawn)
    # Measured on these 600 drawings: correct code 518/600 best aligned at (0, 0), median relative L1
    # 0.202; with the bounding box centred instead of the centre of mass: 76/600 and 0.670 (and accuracy
    # 98.33% against 99.00%, which the 1.5-point bar above cannot tell apart).
    assert aligned >= 0.6 * len(labels) and np.median(l1) < 0.4, (aligned, np.median(l1))


def test_cli_predict_gives_the_app_answer(real_mnist, shipped_checkpoint, tmp_path):
    _, test = load_mnist(real_mnist, download=False)
    predictor = Predictor.from_file(shipped_checkpoint)
    paths, expected = [], []
    for i in range(5):
        canvas = render(test.images[i].numpy(), 600, 300, 50 + 40 * i, 100, mode="RGB")
        Image.fromarray(canvas).save(tmp_path / f"{i}.png")
        paths.append(str(tmp_path / f"{i}.png"))
        expected.append(predictor.predict(canvas).as_dict())
    out = subprocess.run([sys.executable, "-m", "mnist_core", "predict", "--checkpoint", str(shipped_checkpoint),
                          "--json", *paths], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True)
    got = [json.loads(line) for line in out.stdout.splitlines()]
    assert [g["digit"] for g in got] == [e["digit"] for e in expected] == test.labels[:5].tolist()
    assert all(abs(g["confidence"] - e["confidence"]) < 1e-5 for g, e in zip(got, expected, strict=True))
