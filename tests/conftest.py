"""Shared fixtures: small synthetic MNIST-format data sets, the real MNIST when present, app launching."""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# Gradio's temp dir of its own for the test session: apps of other processes on the machine (and the
# delete_cache of apps closed earlier) never touch the files of the apps under test.
os.environ.setdefault("GRADIO_TEMP_DIR", tempfile.mkdtemp(prefix="mnist-tests-gradio-"))

# Tiny test workloads gain nothing from intra-op threads, and OpenMP threads spinning against
# another process (a second test worker, a background training) slow everything down many times.
import torch  # noqa: E402

from mnist_core.data import write_mnist  # noqa: E402

torch.set_num_threads(1)

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
REAL_MNIST = Path(os.environ.get("MNIST_DATA_DIR") or ROOT.parent / "shared" / "mnist")
SHIPPED = ROOT / "checkpoints" / "mnist_cnn.pt"


def need(condition: bool, reason: str) -> None:
    """Skip outside CI when a resource is missing; in CI a missing resource is a failure, not a skip."""
    if not condition:
        if IN_CI:
            pytest.fail(f"required in CI: {reason}")
        pytest.skip(reason)


def synthetic_digits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n 28x28 uint8 images of 10 easy classes: class k is a bright bar at a class-specific place/angle,
    plus noise. Learnable in one short epoch, so training logic can be tested in seconds."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    images = rng.integers(0, 40, (n, 28, 28)).astype(np.uint8)
    for i, k in enumerate(labels):
        r = 4 + 2 * k + rng.integers(-1, 2)
        if k % 2:
            images[i, 4:24, r:r + 3] = 255
        else:
            images[i, r:r + 3, 4:24] = 255
    return images, labels


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synthetic_mnist")
    return write_mnist(root, synthetic_digits(1200, 0), synthetic_digits(300, 1))


@pytest.fixture(scope="session")
def real_mnist() -> Path:
    need((REAL_MNIST / "MNIST" / "raw" / "t10k-images-idx3-ubyte").is_file(),
         f"the real MNIST is not at {REAL_MNIST} (set MNIST_DATA_DIR)")
    return REAL_MNIST


@pytest.fixture(scope="session")
def shipped_checkpoint() -> Path:
    assert SHIPPED.is_file(), "checkpoints/mnist_cnn.pt must be committed"
    return SHIPPED


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, synthetic_root) -> Path:
    """A checkpoint trained for one epoch on the synthetic data (fast, for plumbing tests)."""
    from mnist_core.checkpoint import save_checkpoint
    from mnist_core.config import TrainConfig
    from mnist_core.data import load_mnist
    from mnist_core.train import Trainer

    train, test = load_mnist(synthetic_root, download=False)
    t = Trainer(TrainConfig(epochs=1, batch_size=32, device="cpu"), train, test)
    list(t.run())
    return save_checkpoint(t.checkpoint(), tmp_path_factory.mktemp("ckpt") / "tiny.pt")
