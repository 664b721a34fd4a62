"""The fast input pipeline: the data set lives on the training device as one uint8 tensor.

Instead of a DataLoader that decodes, rotates (PIL) and normalizes one image at a time, each batch
is gathered by index from a per-epoch permutation, rotated as a whole with affine_grid +
grid_sample (one random angle per image, as torchvision's RandomRotation draws), and normalized in
the same pass. On a GPU nothing crosses the bus after the first copy.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .config import MNIST_MEAN, MNIST_STD


def rotate(x: torch.Tensor, max_degrees: float, generator: torch.Generator | None = None,
           mode: str = "bilinear") -> torch.Tensor:
    """Rotate each image of a [N, C, H, W] batch about its centre by its own angle in [-max, +max] deg.

    Pixels that come from outside the frame are 0, the black of MNIST's background (call this on
    the [0, 1] images, before normalizing, so that 0 really is the background). `mode` "nearest" is
    what torchvision's RandomRotation does by default (the recipe's choice); "bilinear" smooths.
    """
    if max_degrees <= 0:
        return x
    n = x.shape[0]
    angles = (torch.rand(n, device=x.device, generator=generator) * 2 - 1) * math.radians(max_degrees)
    cos, sin = angles.cos(), angles.sin()
    zero = torch.zeros_like(cos)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode=mode, padding_mode="zeros", align_corners=False)


class TensorBatches:
    """Iterates (inputs, labels) batches over uint8 images kept on `device`.

    Each pass draws a fresh permutation and fresh angles from `generator`, so a seeded generator
    makes the whole sequence of batches reproducible.
    """

    def __init__(self, images_u8: torch.Tensor, labels: torch.Tensor, batch_size: int, *,
                 rotation: float = 0.0, shuffle: bool = True, generator: torch.Generator | None = None,
                 mean: float = MNIST_MEAN, std: float = MNIST_STD,
                 memory_format: torch.memory_format = torch.contiguous_format,
                 interpolation: str = "bilinear") -> None:
        self.images = images_u8.unsqueeze(1) if images_u8.dim() == 3 else images_u8
        self.labels = labels
        self.batch_size = batch_size
        self.rotation = rotation
        self.shuffle = shuffle
        self.generator = generator
        self.mean, self.std = mean, std
        self.memory_format = memory_format
        self.interpolation = interpolation

    def __len__(self) -> int:
        return math.ceil(len(self.labels) / self.batch_size)

    def __iter__(self):
        n = len(self.labels)
        device = self.images.device
        order = (torch.randperm(n, device=device, generator=self.generator) if self.shuffle
                 else torch.arange(n, device=device))
        for start in range(0, n, self.batch_size):
            idx = order[start:start + self.batch_size]
            x = self.images[idx].float().div_(255.0)
            x = rotate(x, self.rotation, self.generator, self.interpolation)
            x = x.sub_(self.mean).div_(self.std).contiguous(memory_format=self.memory_format)
            yield x, self.labels[idx]
