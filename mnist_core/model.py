"""The 7,416-parameter network of the design.

Receptive field grows with 3x3 convs, a 1x1 "transition" conv squeezes 16 channels to 8 before the
only max-pool, and a global average pool + 1x1 conv replace a fully connected head. No conv has a
bias: each is followed by BatchNorm (which has its own shift) or feeds the log-softmax directly.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

ARCHITECTURE = "mnist-cnn-7416"


def _block(cin: int, cout: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, bias=False), nn.ReLU(), nn.BatchNorm2d(cout), nn.Dropout(dropout)
    )


class Net(nn.Module):
    def __init__(self, dropout: float = 0.05) -> None:
        super().__init__()
        self.dropout = dropout
        self.conv1 = nn.Sequential(nn.Conv2d(1, 8, 3, bias=False), nn.ReLU())    # 28 -> 26, RF 3
        self.conv2 = _block(8, 16, dropout)                                        # 26 -> 24, RF 5
        self.trans = nn.Sequential(nn.Conv2d(16, 8, 1, bias=False), nn.MaxPool2d(2))  # 24 -> 12, RF 6
        self.conv3 = _block(8, 16, dropout)                                        # 12 -> 10, RF 10
        self.conv4 = _block(16, 8, dropout)                                        # 10 -> 8,  RF 14
        self.conv5 = _block(8, 16, dropout)                                        # 8 -> 6,   RF 18
        self.conv6 = _block(16, 16, dropout)                                       # 6 -> 4,   RF 22
        self.gap = nn.AvgPool2d(4)                                                 # 4 -> 1
        self.head = nn.Conv2d(16, 10, 1, bias=False)                               # 16 -> 10 classes

    def stages(self) -> list[tuple[str, nn.Module]]:
        return [(n, getattr(self, n)) for n in
                ("conv1", "conv2", "trans", "conv3", "conv4", "conv5", "conv6", "gap", "head")]

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
