"""The network for inference elsewhere (the page's JavaScript): BatchNorm folded into the convolutions.

Each BatchNorm of this network comes after a ReLU, so it cannot merge into the convolution before it;
it is an affine map per channel (y = a x + b, with the running statistics) and merges exactly into the
convolution *after* it: that convolution's weights are multiplied by a over the input channels, and it
gains a bias, the sum of its weights times b (every convolution here is unpadded, so b reaches every
output pixel through all the weights). The last BatchNorm folds through the average pool into the head.
What is left is 8 convolutions with biases, ReLUs, one max-pool and one average pool:

    conv1 relu | conv2 relu | trans, maxpool 2 | conv3 relu | conv4 relu | conv5 relu | conv6 relu |
    avgpool 4 | head | log-softmax

`payload` packs that as a small JSON-able dict (float32 arrays in base64, about 40 KB) and
`forward` is the reference implementation of its arithmetic in numpy (float64), which the tests hold
against PyTorch and the page's JavaScript against both.
"""
from __future__ import annotations

import base64

import numpy as np
import torch
from torch import nn

from .model import ARCHITECTURE, Net

# name, input channels, output channels, kernel, ReLU after it, pool after it ("max2" / "avg4" / "")
LAYERS = [("conv1", 1, 8, 3, True, ""), ("conv2", 8, 16, 3, True, ""), ("trans", 16, 8, 1, False, "max2"),
          ("conv3", 8, 16, 3, True, ""), ("conv4", 16, 8, 3, True, ""), ("conv5", 8, 16, 3, True, ""),
          ("conv6", 16, 16, 3, True, "avg4"), ("head", 16, 10, 1, False, "")]
FORMAT = "mnist-folded-1"


def _bn_affine(bn: nn.BatchNorm2d) -> tuple[np.ndarray, np.ndarray]:
    a = bn.weight.detach().double() / torch.sqrt(bn.running_var.double() + bn.eps)
    b = bn.bias.detach().double() - bn.running_mean.double() * a
    return a.numpy(), b.numpy()


def fold(model: Net) -> list[tuple[np.ndarray, np.ndarray]]:
    """(weight [cout, cin, k, k], bias [cout]) per layer of LAYERS, float64, BatchNorm folded in."""
    convs = [model.conv1[0], model.conv2[0], model.trans[0], model.conv3[0], model.conv4[0], model.conv5[0],
             model.conv6[0], model.head]
    # the BatchNorm that comes right before each conv's input (None: nothing to fold)
    before = [None, None, model.conv2[2], None, model.conv3[2], model.conv4[2], model.conv5[2], model.conv6[2]]
    out = []
    for conv, bn in zip(convs, before, strict=True):
        w = conv.weight.detach().double().numpy().copy()
        bias = np.zeros(w.shape[0])
        if bn is not None:
            a, b = _bn_affine(bn)
            bias = (w * b[None, :, None, None]).sum((1, 2, 3))
            w = w * a[None, :, None, None]
        out.append((w, bias))
    # conv3's input comes from the max-pool after trans: its BatchNorm is conv2's, already folded into trans
    return out


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
    for (_name, _cin, _cout, _k, relu, pool), (w, b) in zip(LAYERS, layers, strict=True):
        x = _conv(x, w, b)
        if relu:
            x = np.maximum(x, 0.0)
        if pool == "max2":
            c, h, wd = x.shape
            x = x.reshape(c, h // 2, 2, wd // 2, 2).max((2, 4))
        elif pool == "avg4":
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
        "layers": [{"name": name, "cin": cin, "cout": cout, "k": k, "relu": relu, "pool": pool,
                    "weight": _b64(w), "bias": _b64(b)}
                   for (name, cin, cout, k, relu, pool), (w, b) in zip(LAYERS, layers, strict=True)],
    }


def from_payload(data: dict) -> list[tuple[np.ndarray, np.ndarray]]:
    """The layers of a payload back as float64 arrays (what the page computes with); checks the shapes."""
    if data.get("format") != FORMAT or len(data.get("layers", [])) != len(LAYERS):
        raise ValueError("not a folded network of this architecture")
    out = []
    for spec, (name, cin, cout, k, _relu, _pool) in zip(data["layers"], LAYERS, strict=True):
        w = np.frombuffer(base64.b64decode(spec["weight"]), "<f4").astype(np.float64)
        b = np.frombuffer(base64.b64decode(spec["bias"]), "<f4").astype(np.float64)
        if spec["name"] != name or w.size != cout * cin * k * k or b.size != cout:
            raise ValueError(f"layer {spec.get('name')!r} has the wrong shape")
        out.append((w.reshape(cout, cin, k, k), b))
    return out
