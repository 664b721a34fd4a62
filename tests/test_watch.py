"""Training, visible (issue 26): the snapshots a run sends while it trains (mnist_core/watch.py), through
the job protocol (mnist_core/jobs.py), merged by the training service; checked against the run's own
checkpoint and an independent forward pass."""
from __future__ import annotations

import base64
import io

import numpy as np
import torch
from PIL import Image

from mnist_core.config import MNIST_MEAN, MNIST_STD, make_config
from mnist_core.data import load_mnist
from mnist_core.jobs import checkpoint_from_bytes, run_job
from mnist_core.model import Net
from mnist_core.train import Trainer
from mnist_core.watch import (
    SNAPSHOTS_PER_EPOCH,
    Watcher,
    dequantize,
    digits_png,
    probe_indices,
    quantize,
    snapshot_every,
)
from mnist_web.train_updates import merge_look

RUN = dict(epochs=2, lr=0.02, momentum=0.9, batch_size=16, step_size=6, gamma=0.1, rotation=7.0, dropout=0.05,
           seed=3, max_train_samples=1200, device="cpu")


def test_probe_digits_are_the_first_two_of_each_class_in_order():
    labels = torch.tensor([3, 1, 0, 1, 3, 3, 0, 2, 9, 1, 2, 4, 5, 6, 7, 8, 4, 5, 6, 7, 8, 9])
    idx = probe_indices(labels)
    assert labels[idx].tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9]
    assert idx[:6] == [2, 6, 1, 3, 7, 10]                    # first occurrences
    assert probe_indices(torch.tensor([5, 5, 5, 1])) == [3, 0, 1]   # a class short of samples gives what it has


def test_snapshot_cadence_is_bounded_and_on_the_progress_grid():
    for batches in (1, 9, 10, 47, 300, 938, 60_000):
        every = snapshot_every(batches, 10)
        assert every % 10 == 0
        assert len(range(every, batches, every)) <= SNAPSHOTS_PER_EPOCH
    assert snapshot_every(47, 10) == 10 and snapshot_every(938, 10) == 100


def test_quantized_weights_come_back_within_half_a_step():
    w = torch.randn(16, 8, 3, 3)
    layer = quantize(w)
    back = dequantize(layer)
    assert back.shape == (16, 8, 3, 3) and layer["shape"] == [16, 8, 3, 3]
    assert np.abs(back - w.numpy()).max() <= layer["scale"] / 254 + 1e-6
    assert len(layer["q"]) == 4 * -(-w.numel() // 3)          # one byte a weight, base64
    assert np.all(dequantize(quantize(torch.zeros(8, 1, 3, 3))) == 0)


def test_probe_digits_png_decodes_to_the_images():
    images = torch.randint(0, 256, (20, 28, 28), dtype=torch.uint8)
    png = base64.b64decode(digits_png(images))
    strip = np.array(Image.open(io.BytesIO(png)).convert("L")).astype(int)
    assert strip.shape == (28, 560) and len(png) < 8_200       # random pixels: the worst case for its size
    for i in range(20):
        want = np.round(images[i].numpy().astype(int) / 17) * 17
        assert np.array_equal(strip[:, 28 * i:28 * (i + 1)], want)


def test_a_snapshot_leaves_the_model_and_its_randomness_alone():
    torch.manual_seed(0)
    model = Net(dropout=0.1).train()
    images, labels = torch.randint(0, 256, (40, 28, 28), dtype=torch.uint8), torch.arange(40) % 10
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    snap = Watcher(images, labels, torch.device("cpu")).snapshot(model, 1, 0, 5)
    assert model.training and torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())   # BN statistics too
    assert len(snap["guesses"]) == 20 and snap["labels"] == [d for d in range(10) for _ in range(2)]


def test_a_watched_run_sends_snapshots_that_match_its_checkpoint(synthetic_root):
    events = []
    run_job({"config": make_config(nullable=(), **RUN).to_dict(), "data_dir": str(synthetic_root),
             "download": False, "threads": 1}, events.append)
    kinds = [e[0] for e in events]
    assert kinds[0] == "loaded" and kinds[-1] == "end", kinds
    looks = [e[1] for e in events if e[0] == "look"]
    assert looks[0]["batch"] == 0 and "digits" in looks[0] and all("digits" not in s for s in looks[1:])
    batches = looks[0]["batches"]                                     # 1,200 / 16 = 75
    assert batches == 75 and len(looks) == 1 + 2 * (len(range(10, 75, 10)) + 1)
    ends = [s for s in looks if "per_class" in s]
    assert [s["epoch"] for s in ends] == [1, 2] and all(s["batch"] == batches for s in ends)
    # a look comes after the batch report it belongs to, within its epoch
    assert [(s["epoch"], s["batch"]) for s in looks[1:8]] == [(1, b) for b in (10, 20, 30, 40, 50, 60, 70)]

    ckpt = checkpoint_from_bytes([e for e in events if e[0] == "epoch"][-1][2])
    last = ends[-1]
    assert last["per_class"] == [round(v, 2) for v in ckpt["test_metrics"]["per_class_accuracy"]]
    for name in ("conv1", "conv2"):
        w = ckpt["state_dict"][f"{name}.0.weight"].numpy()
        assert np.abs(dequantize(last[name]) - w).max() <= last[name]["scale"] / 254 + 1e-6
    # the guesses: an independent forward pass of the saved weights on the same 20 test digits
    _, test = load_mnist(str(synthetic_root), download=False)
    idx = probe_indices(test.labels)
    net = Net(dropout=0.05)
    net.load_state_dict(ckpt["state_dict"])
    x = ((test.images[idx].float() / 255 - MNIST_MEAN) / MNIST_STD).unsqueeze(1)
    assert last["guesses"] == net.eval()(x).argmax(1).tolist()
    assert looks[0]["labels"] == test.labels[idx].tolist()

    # watching changed nothing: the same run without the job protocol gives the same metrics
    train, _ = load_mnist(str(synthetic_root), download=False)
    plain = [r.as_dict() for r in Trainer(make_config(nullable=(), **RUN), train, test).run()]
    watched = [e[1] for e in events if e[0] == "epoch"]
    assert [{k: v for k, v in r.items() if k != "seconds"} for r in watched] == \
           [{k: v for k, v in r.items() if k != "seconds"} for r in plain]


def test_the_service_keeps_the_digits_and_every_epochs_row():
    view = merge_look(None, {"epoch": 1, "batch": 0, "guesses": [0], "digits": "png", "labels": [0]})
    view = merge_look(view, {"epoch": 1, "batch": 10, "guesses": [1]})
    view = merge_look(view, {"epoch": 1, "batch": 20, "guesses": [2], "per_class": [50.0] * 10})
    kept = merge_look(view, {"epoch": 2, "batch": 20, "guesses": [3], "per_class": [90.0] * 10})
    assert kept["digits"] == "png" and kept["guesses"] == [3] and kept["per_class"] == [[50.0] * 10, [90.0] * 10]
    assert view["per_class"] == [[50.0] * 10]          # an update already sent keeps its own rows
