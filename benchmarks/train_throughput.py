"""CPU training throughput: the usual DataLoader pipeline vs ours, same model, batch size and steps.

    python benchmarks/train_throughput.py [--data-dir ../shared/mnist] [--batches 150] [--rounds 3] [--full]

The two pipelines are alternated in one process over the same number of batches (round 1: seed,
ours; round 2: seed, ours; ...), each with a fresh model and optimizer, so machine noise hits both.
Images/s counts a whole training step: input pipeline + forward + backward + SGD update.
--full also times the complete default 15-epoch run with ours (evaluation included), as the CLI does it.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch
import torch.nn.functional as F
from seed_pipeline import seed_loaders, seed_train_steps

from mnist_core.config import TrainConfig
from mnist_core.data import load_mnist
from mnist_core.model import Net
from mnist_core.train import Trainer


def ours(train, test, cfg, batches: int) -> float:
    """The training step exactly as Trainer runs it (its own model, optimizer and batches)."""
    trainer = Trainer(cfg, train, test)
    model, opt = trainer.model, trainer.optimizer
    t0 = time.perf_counter()
    seen = 0
    for i, (x, y) in enumerate(trainer.train_batches):
        if i >= batches:
            break
        loss = F.nll_loss(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        seen += len(y)
    return seen / (time.perf_counter() - t0)


def seed(loader, cfg, batches: int) -> float:
    torch.manual_seed(0)
    model = Net(cfg.dropout)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum)
    t0 = time.perf_counter()
    seen = seed_train_steps(model, loader, opt, torch.device("cpu"), max_batches=batches)
    return seen / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--batches", type=int, default=150, help="training steps per measurement")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers for the seed pipeline")
    p.add_argument("--full", action="store_true", help="also time the full default 15-epoch run (about 4 min)")
    a = p.parse_args()
    cfg = TrainConfig(device="cpu")
    train, test = load_mnist(a.data_dir, download=False)
    loader, _ = seed_loaders(a.data_dir, cfg.batch_size, a.workers)
    print(f"machine: {os.cpu_count()} CPUs, torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"batch {cfg.batch_size}, {a.batches} steps per measurement, DataLoader workers {a.workers}, "
          f"ours with channels_last={cfg.channels_last}, {cfg.rotation_interpolation} rotation")
    seed(loader, cfg, 10), ours(train, test, cfg, 10)  # warm-up: worker start, allocator, kernels
    s_rates, o_rates = [], []
    for r in range(1, a.rounds + 1):
        s_rates.append(seed(loader, cfg, a.batches))
        o_rates.append(ours(train, test, cfg, a.batches))
        print(f"round {r}: seed pipeline {s_rates[-1]:7.0f} img/s   ours {o_rates[-1]:7.0f} img/s   "
              f"ratio {o_rates[-1] / s_rates[-1]:.2f}")
    s, o = statistics.median(s_rates), statistics.median(o_rates)
    print(f"median: seed pipeline {s:.0f} img/s, ours {o:.0f} img/s, ratio {o / s:.2f} (target >= 2.0)")
    if a.full:
        t0 = time.perf_counter()
        trainer = Trainer(cfg, train, test)
        rec = list(trainer.run())[-1]
        print(f"full default run with ours: {cfg.epochs} epochs in {time.perf_counter() - t0:.0f} s "
              f"(evaluation included; target < 240 s), final test accuracy {rec.test_accuracy:.2f}%")


if __name__ == "__main__":
    main()
