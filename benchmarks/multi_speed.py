"""8 seeds as one batched network (mnist_core/multi.py) vs 8 single Trainer runs one after the other.

Both train the same short run (by default 1 epoch on the first 10,000 training images, evaluation on
the 10,000 test images included) for the same seeds, in this one process, alternating: each round
runs the 8 single runs and then the multi run (or the reverse order on odd rounds), so load from
other processes hits both alike. It also reports how far apart the two ended (final test accuracy
per seed): they are the same runs, up to float rounding.

    python benchmarks/multi_speed.py --data-dir ../shared/mnist --seeds 8 --rounds 2

--step-bench instead times bare training steps (forward, backward, SGD) of K models on random
batches, three ways: K single networks one after the other, the grouped-convolution network of
mnist_core/multi.py, and torch.func (stack_module_state + vmap over functional_call), which was the
other candidate design:

    python benchmarks/multi_speed.py --step-bench --seeds 8 --rounds 3
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def step_bench(k: int, rounds: int, steps: int, device: str) -> None:
    import copy

    import torch
    import torch.nn.functional as F
    from torch.func import functional_call, stack_module_state, vmap

    from mnist_core.model import Net
    from mnist_core.multi import MultiNet

    dev = torch.device(device)
    layout = torch.channels_last if dev.type == "cpu" else torch.contiguous_format
    nets = []
    for s in range(1, k + 1):
        torch.manual_seed(s)
        nets.append(Net(dropout=0.0).to(dev, memory_format=layout))
    opts = [torch.optim.SGD(n.parameters(), lr=0.02, momentum=0.9) for n in nets]
    grouped = MultiNet(k)
    grouped.load_singles(nets)
    grouped.to(dev, memory_format=layout)
    gopt = torch.optim.SGD(grouped.parameters(), lr=0.02, momentum=0.9)
    params, buffers = stack_module_state(nets)
    base = copy.deepcopy(nets[0]).to("meta")
    vopt = torch.optim.SGD(params.values(), lr=0.02, momentum=0.9)
    vfwd = vmap(lambda p, b, x: functional_call(base, (p, b), (x,)))
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(k, 64, 1, 28, 28, generator=gen).to(dev)
    y = torch.randint(0, 10, (k, 64), generator=gen).to(dev)
    xs = [x[i].contiguous(memory_format=layout) for i in range(k)]
    xg = x[:, :, 0].transpose(0, 1).contiguous(memory_format=layout)
    yg = y.t().contiguous()

    def single_steps():
        for i in range(k):
            loss = F.nll_loss(nets[i](xs[i]), y[i])
            opts[i].zero_grad(set_to_none=True)
            loss.backward()
            opts[i].step()

    def grouped_step():
        out = grouped(xg)
        loss = -out.gather(2, yg.unsqueeze(2)).mean(0).sum()
        gopt.zero_grad(set_to_none=True)
        loss.backward()
        gopt.step()

    def vmap_step():
        out = vfwd(params, buffers, x)                      # [K, 64, 10]
        loss = -out.gather(2, y.unsqueeze(2)).mean(1).sum()
        vopt.zero_grad(set_to_none=True)
        loss.backward()
        vopt.step()

    def timed(fn) -> float:
        for _ in range(3):
            fn()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(steps):
            fn()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return (time.perf_counter() - t0) / steps * 1e3

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {device}: one training step of {k} "
          f"models, batch 64 each, ms (best of {rounds} rounds of {steps} steps, alternated)", flush=True)
    best = {"single x K": [], "grouped conv": [], "torch.func vmap": []}
    for rnd in range(rounds):
        for name, fn in (("single x K", single_steps), ("grouped conv", grouped_step), ("torch.func vmap", vmap_step)):
            best[name].append(timed(fn))
        print(f"round {rnd + 1}: " + ", ".join(f"{n} {v[-1]:.1f}" for n, v in best.items()), flush=True)
    ref = min(best["single x K"])
    for name, v in best.items():
        print(f"{name:16s} {min(v):8.1f} ms/step  ({ref / min(v):.2f}x vs single x K)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--seeds", type=int, default=8, help="seeds 1..N")
    p.add_argument("--samples", type=int, default=10_000, help="training images per run (the first N)")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    p.add_argument("--step-bench", action="store_true", help="time bare steps: singles vs grouped vs vmap")
    p.add_argument("--steps", type=int, default=20, help="--step-bench: timed steps per measurement")
    a = p.parse_args()
    import torch
    if a.threads:
        torch.set_num_threads(a.threads)
    if a.step_bench:
        step_bench(a.seeds, a.rounds, a.steps, a.device)
        return
    from mnist_core.config import TrainConfig
    from mnist_core.data import load_mnist
    from mnist_core.multi import MultiTrainer
    from mnist_core.train import Trainer

    train, test = load_mnist(a.data_dir, download=False)
    seeds = list(range(1, a.seeds + 1))
    cfg = TrainConfig(device=a.device, epochs=a.epochs, max_train_samples=a.samples)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {a.device}; "
          f"{a.seeds} seeds x {a.epochs} epoch(s) on {a.samples} images, batch {cfg.batch_size}", flush=True)

    def sync():
        if a.device.startswith("cuda"):
            torch.cuda.synchronize()

    def singles() -> tuple[float, list[float]]:
        t0 = time.perf_counter()
        finals = []
        for s in seeds:
            t = Trainer(TrainConfig(**{**cfg.to_dict(), "seed": s}), train, test)
            finals.append([r.test_accuracy for r in t.run()][-1])
        sync()
        return time.perf_counter() - t0, finals

    def multi() -> tuple[float, list[float]]:
        t0 = time.perf_counter()
        m = MultiTrainer(cfg, seeds, train, test)
        last = list(m.run())[-1]
        sync()
        return time.perf_counter() - t0, [r["test_accuracy"] for r in last]

    ratios = []
    for rnd in range(1, a.rounds + 1):
        if rnd % 2:
            ts, fs = singles()
            tm, fm = multi()
        else:
            tm, fm = multi()
            ts, fs = singles()
        ratios.append(ts / tm)
        diff = max(abs(x - y) for x, y in zip(fs, fm, strict=True))
        print(f"round {rnd}: {a.seeds} sequential single runs {ts:.1f} s, one multi run {tm:.1f} s: "
              f"speed-up {ts / tm:.2f}x; final test acc. per seed, max |single - multi| = {diff:.2f} points",
              flush=True)
        print(f"  single: {' '.join(f'{v:.2f}' for v in fs)}\n  multi:  {' '.join(f'{v:.2f}' for v in fm)}", flush=True)
    print(f"median speed-up over {a.rounds} round(s): {statistics.median(ratios):.2f}x")


if __name__ == "__main__":
    main()
