"""The network for inference elsewhere (the page's JavaScript): BatchNorm folded into the convolutions.

Each BatchNorm of this network comes after a ReLU, so it cannot merge into the convolution before it;
it is an affine map per channel (y = a x + b, with the running statistics) and merges exactly into the
convolution *after* it: that convolution's weights are multiplied by a over the input channels, and it
gains a bias, the sum of its weights times b (every convolution here is unpadded, so b reaches every
output pixel through all the weights). The last BatchNorm folds through the average pool into the head.
What is left is 8 convolutions with biases, ReLUs, one max-pool and one average pool, then the
log-softmax: arch.FOLDED, derived from the stage description of arch.py (which BatchNorm folds into
which convolution, the pool after each), not listed again here.
`payload` packs that as a small JSON-able dict (float32 arrays in base64, about 40 KB, with each
layer's spec and the network view's stages, arch.view_table()) and `forward` is the reference
implementation of its arithmetic in numpy (float64), which the tests hold against PyTorch and the
page's JavaScript against both.
"""
from __future__ import annotations

import base64

import numpy as np
import torch
from torch import nn

from .arch import ARCHITECTURE, FOLDED, view_table
from .model import Net

# name, input channels, output channels, kernel, ReLU after it, pool after it ("max2" / "avg4" / ""),
# and the stage whose BatchNorm folds into it (arch.FoldedLayer)
LAYERS = FOLDED
FORMAT = "mnist-folded-1"


def _bn_affine(bn: nn.BatchNorm2d) -> tuple[np.ndarray, np.ndarray]:
    a = bn.weight.detach().double() / torch.sqrt(bn.running_var.double() + bn.eps)
    b = bn.bias.detach().double() - bn.running_mean.double() * a
    return a.numpy(), b.numpy()


def _first(module: nn.Module, kind: type) -> nn.Module:
    return next(m for m in module.modules() if isinstance(m, kind))


def fold(model: Net) -> list[tuple[np.ndarray, np.ndarray]]:
    """(weight [cout, cin, k, k], bias [cout]) per layer of LAYERS, float64, BatchNorm folded in."""
    out = []
    for layer in LAYERS:            # conv3's input comes after trans's max-pool: conv2's BatchNorm is in trans
        w = _first(getattr(model, layer.name), nn.Conv2d).weight.detach().double().numpy().copy()
        bias = np.zeros(w.shape[0])
        if layer.folds is not None:       # the BatchNorm that comes right before this conv's input
            a, b = _bn_affine(_first(getattr(model, layer.folds), nn.BatchNorm2d))
            bias = (w * b[None, :, None, None]).sum((1, 2, 3))
            w = w * a[None, :, None, None]
        out.append((w, bias))
    return out


def pooled_affine(model: Net) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) per channel, float64: the model's pooled features (the last layer's input, with the BatchNorm
    that folds into that layer) are a * the folded network's (its last-but-one layer's output) + b. The
    page maps its own features with these to search the server's look-alike index (insight.py)."""
    last = LAYERS[-1]
    if last.folds is None:
        return np.ones(last.cin), np.zeros(last.cin)
    return _bn_affine(_first(getattr(model, last.folds), nn.BatchNorm2d))


def _conv(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Valid (unpadded) convolution of x [cin, h, w] with w [cout, cin, k, k] plus bias."""
    cout, cin, k, _ = w.shape
    h, wd = x.shape[1] - k + 1, x.shape[2] - k + 1
    out = np.broadcast_to(b[:, None, None], (cout, h, wd)).copy()
    for dy in range(k):
        for dx in range(k):
            out += np.einsum("oc,chw->ohw", w[:, :, dy, dx], x[:, dy:dy + h, dx:dx + wd])
    return out


def forward(layers, image28: np.ndarray, mean: float, std: float) -> tuple[np.ndarray, list[np.ndarray]]:
    """Reference forward pass: a 28x28 image in [0, 1] -> (log-probabilities [10], every stage's output)."""
    x = ((np.asarray(image28, np.float64) - mean) / std)[None]
    stages = []
    for layer, (w, b) in zip(LAYERS, layers, strict=True):
        x = _conv(x, w, b)
        if layer.relu:
            x = np.maximum(x, 0.0)
        if layer.pool == "max2":
            c, h, wd = x.shape
            x = x.reshape(c, h // 2, 2, wd // 2, 2).max((2, 4))
        elif layer.pool.startswith("avg"):
            x = x.mean((1, 2), keepdims=True)
        stages.append(x)
    logits = x.ravel()
    m = logits.max()
    return logits - (m + np.log(np.exp(logits - m).sum())), stages


def _b64(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a, "<f4").tobytes()).decode()


def payload(model: Net, normalization: dict) -> dict:
    """The folded network as JSON-able data for the page: float32 little-endian arrays in base64."""
    layers = fold(model.eval())
    return {
        "format": FORMAT, "architecture": ARCHITECTURE,
        "mean": float(normalization["mean"]), "std": float(normalization["std"]),
        "layers": [{"name": layer.name, "cin": layer.cin, "cout": layer.cout, "k": layer.k, "relu": layer.relu,
                    "pool": layer.pool, "folds": layer.folds, "weight": _b64(w), "bias": _b64(b)}
                   for layer, (w, b) in zip(LAYERS, layers, strict=True)],
        "stages": view_table(),
    }


def from_payload(data: dict) -> list[tuple[np.ndarray, np.ndarray]]:
    """The layers of a payload back as float64 arrays (what the page computes with); checks the shapes."""
    if data.get("format") != FORMAT or len(data.get("layers", [])) != len(LAYERS):
        raise ValueError("not a folded network of this architecture")
    out = []
    for spec, (name, cin, cout, k, *_) in zip(data["layers"], LAYERS, strict=True):
        w = np.frombuffer(base64.b64decode(spec["weight"]), "<f4").astype(np.float64)
        b = np.frombuffer(base64.b64decode(spec["bias"]), "<f4").astype(np.float64)
        if spec["name"] != name or w.size != cout * cin * k * k or b.size != cout:
            raise ValueError(f"layer {spec.get('name')!r} has the wrong shape")
        out.append((w.reshape(cout, cin, k, k), b))
    return out
