"""The 7,416-parameter network of the design, built from its description in arch.py (STAGES).

Receptive field grows with 3x3 convs, a 1x1 "transition" conv squeezes 16 channels to 8 before the
only max-pool, and a global average pool + 1x1 conv replace a fully connected head. No conv has a
bias: each is followed by BatchNorm (which has its own shift) or feeds the log-softmax directly.
One module per stage, named as the stage (conv1 ... conv6, trans, gap, head): a Sequential of
Conv, ReLU, BatchNorm, Dropout and pool as the stage has them, or the one module when it has one.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .arch import ARCHITECTURE, GEOMETRY, STAGES, Geometry, Stage

__all__ = ["ARCHITECTURE", "Net", "build_model", "count_parameters"]


def _stage(stage: Stage, shape: Geometry, dropout: float) -> nn.Module:
    layers: list[nn.Module] = []
    if stage.kernel:
        layers.append(nn.Conv2d(shape.cin, stage.channels, stage.kernel, bias=False))
    if stage.relu:
        layers.append(nn.ReLU())
    if stage.batchnorm:
        layers += [nn.BatchNorm2d(stage.channels), nn.Dropout(dropout)]
    if stage.pool == "max2":
        layers.append(nn.MaxPool2d(2))
    elif stage.pool == "mean":
        layers.append(nn.AvgPool2d(shape.side_in))
    return layers[0] if len(layers) == 1 else nn.Sequential(*layers)


class Net(nn.Module):
    def __init__(self, dropout: float = 0.05) -> None:
        super().__init__()
        self.dropout = dropout
        for stage, shape in zip(STAGES, GEOMETRY, strict=True):     # 28 -> 26 -> 24 -> 12 -> ... -> 4 -> 1
            self.add_module(stage.name, _stage(stage, shape, dropout))

    def stages(self) -> list[tuple[str, nn.Module]]:
        return [(s.name, getattr(self, s.name)) for s in STAGES]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for _, stage in self.stages():
            x = stage(x)
        return F.log_softmax(x.flatten(1), dim=1)

    def model_args(self) -> dict:
        """What a checkpoint needs to rebuild this exact network."""
        return {"architecture": ARCHITECTURE, "dropout": self.dropout}


def build_model(model_args: dict) -> Net:
    if model_args.get("architecture") != ARCHITECTURE:
        raise ValueError(f"unknown architecture {model_args.get('architecture')!r}, expected {ARCHITECTURE!r}")
    return Net(dropout=float(model_args.get("dropout", 0.0)))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
