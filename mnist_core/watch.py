"""Training, visible: small snapshots of a run while it trains (conv1's and conv2's filters, the current
guesses on a fixed set of test digits, the per-class test accuracy after each epoch).

A snapshot is a plain dict of plain values (it crosses a pipe or Ray's object store as a job event, see
jobs.py), a few KB: weights are quantized to int8 per layer and sent as base64, the probe digits (sent
once, in the first snapshot) as one PNG strip. Taking one never changes the run: the model is read in
eval mode under no_grad (no batch-norm statistics updated, no random numbers drawn) and put back in the
mode it was in, so a watched run gives the same metrics as the CLI for the same seed.

    {"epoch": 1, "batch": 20, "batches": 47,          where in the run (batch 0: before the first step)
     "guesses": [20 digits], "confidence": [20 %],     the model's answer on each probe digit now
     "conv1": {"shape": [8, 1, 3, 3], "scale": s, "q": base64 int8},   weights ~= q / 127 * scale
     "conv2": {"shape": [16, 8, 3, 3], ...},
     "digits": PNG (base64, 16 greys) 28 x 28*20, "labels": [20 digits]     first snapshot only
     "per_class": [10 %]}                                           after an epoch's evaluation only
"""
from __future__ import annotations

import base64
import io

import numpy as np
import torch
from PIL import Image

from .config import MNIST_MEAN, MNIST_STD

PROBE_PER_CLASS = 2          # 2 of each digit: a fixed grid of 20 test digits
SNAPSHOTS_PER_EPOCH = 10     # at most, plus the one after each epoch's evaluation
WATCHED = ("conv1", "conv2")


def probe_indices(labels: torch.Tensor, per_class: int = PROBE_PER_CLASS) -> list[int]:
    """The first `per_class` test digits of each class, ordered by digit (0, 0, 1, 1, ...): fixed for
    the data set, so every run shows the same grid. A class with fewer samples gives what it has."""
    out: list[int] = []
    lab = labels.tolist()
    for d in range(10):
        out += [i for i, v in enumerate(lab) if v == d][:per_class]
    return out


def snapshot_every(batches: int, progress_every: int) -> int:
    """Batches between snapshots within an epoch: a multiple of the progress interval (snapshots are
    taken in the progress callback), at most SNAPSHOTS_PER_EPOCH per epoch."""
    pe = max(1, progress_every)
    return pe * max(1, -(-batches // (SNAPSHOTS_PER_EPOCH * pe)))


def quantize(w: torch.Tensor) -> dict:
    """A weight tensor as int8 (symmetric, one scale for the layer) in base64: ~1.3 bytes a weight."""
    w = w.detach().float().cpu()
    scale = float(w.abs().max())
    q = torch.zeros_like(w) if scale == 0 else torch.round(w / scale * 127)
    data = q.to(torch.int8).contiguous().numpy().tobytes()
    return {"shape": list(w.shape), "scale": round(scale, 6), "q": base64.b64encode(data).decode("ascii")}


def dequantize(layer: dict) -> np.ndarray:
    q = np.frombuffer(base64.b64decode(layer["q"]), dtype=np.int8).astype(np.float32)
    return (q / 127.0 * layer["scale"]).reshape(layer["shape"])


def digits_png(images_u8: torch.Tensor) -> str:
    """N 28x28 uint8 digits side by side as one 16-level grey PNG (4 bits a pixel, base64): ~4 KB for 20
    MNIST digits, at most ~11 KB whatever the pixels (a bound for the stream's largest update). Each
    pixel comes back as round(v / 17) * 17."""
    strip = images_u8.cpu().numpy().astype(np.uint16).transpose(1, 0, 2).reshape(images_u8.shape[1], -1)
    img = Image.fromarray(((strip + 8) // 17).astype(np.uint8), mode="P")
    img.putpalette([c for i in range(16) for c in (17 * i,) * 3])
    buf = io.BytesIO()
    img.save(buf, format="PNG", bits=4, optimize=True)
    return base64.b64encode(buf.getvalue()).decode("ascii")


class Watcher:
    """Takes a run's snapshots: holds the probe digits on the model's device."""

    def __init__(self, test_images_u8: torch.Tensor, test_labels: torch.Tensor, device: torch.device) -> None:
        idx = probe_indices(test_labels)
        self.images = test_images_u8[idx]
        self.labels = [int(v) for v in test_labels[idx].tolist()]
        self.x = ((self.images.float() / 255.0 - MNIST_MEAN) / MNIST_STD).unsqueeze(1).to(device)
        self.sent_digits = False

    @torch.no_grad()
    def snapshot(self, model: torch.nn.Module, epoch: int, batch: int, batches: int,
                 per_class: list[float] | None = None) -> dict:
        was_training = model.training
        model.eval()
        try:
            probs = model(self.x).exp()
        finally:
            model.train(was_training)
        conf, guess = probs.max(1)
        out = {"epoch": epoch, "batch": batch, "batches": batches,
               "guesses": [int(g) for g in guess.tolist()],
               "confidence": [round(100.0 * float(c), 1) for c in conf.tolist()]}
        for name in WATCHED:
            out[name] = quantize(getattr(model, name)[0].weight)
        if not self.sent_digits:
            out["digits"], out["labels"] = digits_png(self.images), list(self.labels)
            self.sent_digits = True
        if per_class is not None:
            out["per_class"] = [None if v != v else round(float(v), 2) for v in per_class]   # NaN: absent
        return out
