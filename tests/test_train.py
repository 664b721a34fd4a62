import threading

import torch

from mnist_core.batches import TensorBatches, rotate
from mnist_core.checkpoint import load_checkpoint, save_checkpoint
from mnist_core.config import TrainConfig
from mnist_core.data import load_mnist
from mnist_core.train import Trainer


def _run(root, **kw):
    train, test = load_mnist(root, download=False)
    t = Trainer(TrainConfig(device="cpu", **kw), train, test)
    return t, [r.as_dict() for r in t.run()]


def test_one_epoch_on_synthetic_data(synthetic_root, tmp_path):
    t, hist = _run(synthetic_root, epochs=1, batch_size=32)
    assert len(hist) == 1
    r = hist[0]
    assert r["epoch"] == 1 and r["epochs"] == 1 and r["lr"] == 0.02 and r["seconds"] > 0
    assert 0 < r["train_loss"] < 2.4 and 0 < r["test_loss"] < 2.4   # below chance level ln(10) = 2.30...
    assert r["test_accuracy"] > 50   # the synthetic classes are easy: learning really happened
    path = save_checkpoint(t.checkpoint(), tmp_path / "c.pt")
    assert load_checkpoint(path)["history"] == hist


def test_same_seed_same_metrics(synthetic_root):
    _, a = _run(synthetic_root, epochs=2, batch_size=64, max_train_samples=600, seed=3)
    _, b = _run(synthetic_root, epochs=2, batch_size=64, max_train_samples=600, seed=3)
    _, c = _run(synthetic_root, epochs=2, batch_size=64, max_train_samples=600, seed=4)
    strip = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h]
    assert strip(a) == strip(b)
    assert strip(a) != strip(c)


def test_lr_schedule(synthetic_root):
    _, h = _run(synthetic_root, epochs=3, step_size=2, gamma=0.5, max_train_samples=64, batch_size=64)
    assert [r["lr"] for r in h] == [0.02, 0.02, 0.01]


def test_stop_between_batches(synthetic_root):
    train, test = load_mnist(synthetic_root, download=False)
    stop = threading.Event()
    calls = []

    def on_batch(done, total, loss, acc):
        calls.append(done)
        if done >= 10:
            stop.set()

    t = Trainer(TrainConfig(device="cpu", epochs=3, batch_size=8), train, test, stop=stop, on_batch=on_batch)
    assert list(t.run()) == []          # stopped inside epoch 1: no finished epoch
    assert t.stopped and max(calls) == 10   # it stopped at the next batch boundary


def test_max_train_samples(synthetic_root):
    train, test = load_mnist(synthetic_root, download=False)
    t = Trainer(TrainConfig(device="cpu", max_train_samples=100, batch_size=32), train, test)
    assert len(t.train_batches) == 4


def test_rotation_keeps_mass_and_stays_in_frame():
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(64, 1, 28, 28)
    x[:, :, 4:24, 11:17] = 1.0                    # an MNIST-sized upright stroke, 20 px tall
    y = rotate(x, 7.0, g)
    mass = y.sum((1, 2, 3)) / x.sum((1, 2, 3))
    assert torch.all((mass > 0.98) & (mass < 1.02))
    assert y[..., :2, :].abs().sum() == 0 and y[..., -2:, :].abs().sum() == 0   # nothing pushed to the border
    assert not torch.equal(y[0], y[1])             # one angle per image


def test_rotation_angle_range():
    # a thin horizontal line's tilt tells the angle: none beyond +/-7 degrees, both signs present
    g = torch.Generator().manual_seed(1)
    x = torch.zeros(256, 1, 28, 28)
    x[:, :, 14, 2:26] = 1.0
    y = rotate(x, 7.0, g)[:, 0]
    rows = torch.arange(28.0)[:, None]
    left = (y[:, :, 4:8] * rows).sum((1, 2)) / y[:, :, 4:8].sum((1, 2))
    right = (y[:, :, 20:24] * rows).sum((1, 2)) / y[:, :, 20:24].sum((1, 2))
    slope_deg = torch.rad2deg(torch.atan((right - left) / 16.0))
    assert slope_deg.abs().max() < 7.5 and slope_deg.min() < -4 and slope_deg.max() > 4


def test_batches_cover_every_sample_once():
    imgs = torch.arange(10, dtype=torch.uint8).repeat_interleave(784).reshape(10, 28, 28)
    labels = torch.arange(10)
    seen = torch.cat([y for _, y in TensorBatches(imgs, labels, 3, generator=torch.Generator().manual_seed(0))])
    assert sorted(seen.tolist()) == list(range(10))


def test_nearest_rotation_only_moves_existing_values():
    # nearest sampling copies pixels: every output value is 0 or one of the input values
    g = torch.Generator().manual_seed(2)
    x = torch.zeros(8, 1, 28, 28)
    x[:, :, 6:22, 12:16] = 0.7
    y = rotate(x, 7.0, g, mode="nearest")
    vals = torch.unique(y)
    assert torch.all((vals == 0) | torch.isclose(vals, torch.tensor(0.7))) and len(vals) == 2
