"""Figures that only mean something on the real MNIST test set (run in CI; skip elsewhere without data)."""
import json
import subprocess
import sys

import numpy as np
from PIL import Image

from mnist_core.data import load_mnist
from mnist_core.predict import Predictor
from tests.conftest import ROOT
from tests.drawing import render


def test_shipped_checkpoint_reaches_99_4_through_the_cli(real_mnist, shipped_checkpoint):
    out = subprocess.run([sys.executable, "-m", "mnist_core", "evaluate", "--checkpoint", str(shipped_checkpoint),
                          "--data-dir", str(real_mnist), "--no-download", "--json"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300, check=True)
    result = json.loads(out.stdout)
    assert result["total"] == 10000
    assert result["test_accuracy"] >= 99.40, result["test_accuracy"]
    assert np.array(result["confusion_matrix"]).sum() == 10000


def test_drawings_are_recognized_as_well_as_mnist_digits(real_mnist, shipped_checkpoint):
    """Real test digits drawn big onto an 800x800 canvas at random places and sizes, through the
    app's own code path, lose at most 1.5 points of accuracy against the original 28x28 digits."""
    _, test = load_mnist(real_mnist, download=False)
    predictor = Predictor.from_file(shipped_checkpoint)
    rng = np.random.default_rng(0)
    idx = rng.choice(len(test), 600, replace=False)
    digits, labels = test.images[idx].numpy(), test.labels[idx].numpy()
    original = (predictor.probabilities(digits / 255.0).argmax(1) == labels).mean() * 100
    correct = 0
    for d, y in zip(digits, labels):
        height = int(rng.integers(150, 600))
        top, left = int(rng.integers(0, 800 - height)), int(rng.integers(0, 800 - height))
        pred = predictor.predict({"background": None, "layers": [], "composite": render(d, 800, height, top, left)})
        correct += (not pred.empty) and pred.digit == y
    drawn = 100.0 * correct / len(labels)
    print(f"accuracy on originals {original:.2f}%, on drawings {drawn:.2f}%")
    assert drawn >= original - 1.5, (original, drawn)


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
    assert all(abs(g["confidence"] - e["confidence"]) < 1e-5 for g, e in zip(got, expected))
