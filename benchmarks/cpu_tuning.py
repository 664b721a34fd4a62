"""CPU tuning, measured: which knobs speed up our training step and evaluation on this machine.

    python benchmarks/cpu_tuning.py [--data-dir ../shared/mnist] [--batches 120]

Each variant trains a fresh model for the same batches (our tensor pipeline, batch size 64 unless
stated) and reports images/s; variants are measured twice, interleaved. Evaluation is timed over the
10,000 test images at several batch sizes.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch
import torch.nn.functional as F

from mnist_core.batches import TensorBatches
from mnist_core.data import load_mnist
from mnist_core.evaluate import evaluate
from mnist_core.model import Net


def train_rate(train, batches, batch_size=64, threads=None, channels_last=False, bf16=False, compiled=False):
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = Net(0.0)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    step_model = torch.compile(model) if compiled else model
    opt = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
    data = TensorBatches(train.images, train.labels, batch_size, rotation=7.0,
                         generator=torch.Generator().manual_seed(0))
    warm = 15 if compiled else 3
    seen, t0 = 0, None
    for i, (x, y) in enumerate(data):
        if i == warm:
            t0, seen = time.perf_counter(), 0
        if i >= batches + warm:
            break
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = F.nll_loss(step_model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        seen += len(y)
    rate = seen / (time.perf_counter() - t0)
    torch.set_num_threads(os.cpu_count())
    return rate


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--batches", type=int, default=120)
    p.add_argument("--compile", action="store_true", help="also try torch.compile (slow to warm up)")
    a = p.parse_args()
    train, test = load_mnist(a.data_dir, download=False)
    print(f"machine: {os.cpu_count()} CPUs, torch {torch.__version__}, default threads {torch.get_num_threads()}")
    variants = {
        "baseline (fp32, default threads, batch 64)": {},
        "1 thread": dict(threads=1),
        "channels_last": dict(channels_last=True),
        "bf16 autocast": dict(bf16=True),
        "batch 128 (for reference; not the recipe)": dict(batch_size=128),
    }
    if a.compile:
        variants["torch.compile"] = dict(compiled=True)
    rates = {k: [] for k in variants}
    for _ in range(2):
        for name, kw in variants.items():
            rates[name].append(train_rate(train, a.batches, **kw))
    base = max(rates["baseline (fp32, default threads, batch 64)"])
    for name, r in rates.items():
        print(f"train  {name:45s} {max(r):7.0f} img/s  ({max(r) / base:.2f}x)")
    model = Net(0.0)
    for bs in (500, 1000, 2000, 5000, 10000):
        tb = TensorBatches(test.images, test.labels, bs, shuffle=False)
        evaluate(model, tb)
        t0 = time.perf_counter()
        evaluate(model, tb)
        print(f"eval   batch {bs:5d}: {time.perf_counter() - t0:.2f} s for 10,000 images")


if __name__ == "__main__":
    main()
