"""GPU: wall time of the full default run with our pipeline vs the DataLoader pipeline, same GPU.

    python benchmarks/gpu_train.py --data-dir ../shared/mnist [--baseline-epochs 15]

Prints one line per measurement. The baseline may be run for fewer epochs to save device time;
its 15-epoch figure is then its measured per-epoch time x 15, and the output says so.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch

from mnist_core.config import TrainConfig
from mnist_core.data import load_mnist
from mnist_core.model import Net
from mnist_core.train import Trainer
from seed_pipeline import seed_loaders, seed_test, seed_train_steps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--baseline-epochs", type=int, default=15)
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers of the baseline")
    a = p.parse_args()
    if not torch.cuda.is_available():
        sys.exit("no CUDA GPU: this benchmark needs one")
    dev = torch.device("cuda")
    print(f"GPU: {torch.cuda.get_device_name(0)}; torch {torch.__version__}; cpus {os.cpu_count()}", flush=True)
    cfg = TrainConfig(device="cuda")

    # Ours: everything from data on the host to the 15th evaluation, timed as a user would feel it.
    # First with CUDA graphs (the default), then without, to show what the graphs are worth.
    results = {}
    for graphs in (True, False):
        name = "ours" if graphs else "ours without CUDA graphs"
        t0 = time.perf_counter()
        train, test = load_mnist(a.data_dir, download=False)
        trainer = Trainer(TrainConfig(device="cuda", cuda_graphs=graphs), train, test)
        for r in trainer.run():
            print(f"  {name} epoch {r.epoch:2d}: test {r.test_accuracy:.2f}% in {r.seconds:.2f} s", flush=True)
        torch.cuda.synchronize()
        results[name] = time.perf_counter() - t0
        print(f"{name}: {cfg.epochs} epochs in {results[name]:.1f} s (load + train + eval), "
              f"final test {r.test_accuracy:.2f}%, graphs used: {trainer.graphed is not None}", flush=True)
    ours = results["ours"]

    # Baseline: same model, optimizer, schedule and batch size; DataLoader + PIL rotation.
    torch.manual_seed(cfg.seed)
    model = Net(cfg.dropout).to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum)
    sched = torch.optim.lr_scheduler.StepLR(opt, cfg.step_size, cfg.gamma)
    t0 = time.perf_counter()
    tl, vl = seed_loaders(a.data_dir, cfg.batch_size, a.workers, pin_memory=True)
    for e in range(1, a.baseline_epochs + 1):
        te = time.perf_counter()
        seed_train_steps(model, tl, opt, dev)
        sched.step()
        acc = seed_test(model, vl, dev)
        print(f"  baseline epoch {e:2d}: test {acc:.2f}% in {time.perf_counter() - te:.2f} s", flush=True)
    base = time.perf_counter() - t0
    base15 = base / a.baseline_epochs * cfg.epochs
    how = "measured" if a.baseline_epochs == cfg.epochs else f"{a.baseline_epochs} epochs measured, x{cfg.epochs / a.baseline_epochs:g}"
    print(f"baseline: {cfg.epochs} epochs in {base15:.1f} s ({how}); ours is {base15 / ours:.2f}x faster", flush=True)


if __name__ == "__main__":
    main()
