"""The usual public pipeline for this recipe, kept only as the baseline the benchmarks measure against.

torchvision's MNIST dataset decoded per image, PIL RandomRotation(-7..7, fill 0), ToTensor,
Normalize, through a DataLoader, then a host-to-device copy per batch.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

from mnist_core.config import MNIST_MEAN, MNIST_STD


def seed_loaders(data_dir: str, batch_size: int, workers: int, pin_memory: bool = False,
                 rotation: float = 7.0, test_batch_size: int = 1000):
    train_tf = transforms.Compose([
        transforms.RandomRotation((-rotation, rotation), fill=(0,)),
        transforms.ToTensor(),
        transforms.Normalize((MNIST_MEAN,), (MNIST_STD,)),
    ])
    test_tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((MNIST_MEAN,), (MNIST_STD,))])
    kw = dict(num_workers=workers, pin_memory=pin_memory, persistent_workers=workers > 0)
    train = DataLoader(datasets.MNIST(data_dir, train=True, download=False, transform=train_tf),
                       batch_size=batch_size, shuffle=True, **kw)
    test = DataLoader(datasets.MNIST(data_dir, train=False, download=False, transform=test_tf),
                      batch_size=test_batch_size, shuffle=False, **kw)
    return train, test


def seed_train_steps(model, loader, optimizer, device, max_batches: int | None = None) -> int:
    """Train over `loader` (or its first max_batches); returns the number of images seen."""
    model.train()
    seen = 0
    for i, (x, y) in enumerate(loader):
        if max_batches is not None and i >= max_batches:
            break
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        optimizer.zero_grad()
        loss = F.nll_loss(model(x), y)
        loss.backward()
        optimizer.step()
        seen += len(y)
    return seen


@torch.no_grad()
def seed_test(model, loader, device) -> float:
    model.eval()
    correct = n = 0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        correct += (model(x).argmax(1) == y).sum().item()
        n += len(y)
    return 100.0 * correct / n
