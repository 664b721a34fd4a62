"""Run the recipe for several (batch size, dropout, seed) combinations, in parallel processes.

Used to choose the defaults the design left open and to measure the 5-seed reliability of the
recipe. Each finished run is appended to --out as one JSON line (so a cut-off sweep keeps what it did).

    python benchmarks/sweep.py --batch-sizes 64 128 --dropouts 0 0.05 0.1 --seeds 1 2 3 4 5 \
        --jobs 2 --data-dir ../shared/mnist --out sweep.jsonl

With --multi K, each job trains K seeds at once as one batched network (mnist_core/multi.py:
per seed the same run as the single Trainer, up to float rounding, several times faster on a
CPU). Only --multi runs take the sweep-only candidates --bn-momentum, --bn-eps and --init:

    python benchmarks/sweep.py --multi 5 --seeds $(seq 1 20) --device cpu --data-dir ../shared/mnist \
        --out benchmarks/results/sweep20_cpu_default.jsonl
"""
from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing as mp
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(args: tuple) -> dict:
    batch_size, dropout, seed, data_dir, device, epochs, threads, save_dir, extra = args
    import torch
    if threads:
        torch.set_num_threads(threads)
    from mnist_core.config import TrainConfig
    from mnist_core.data import load_mnist
    from mnist_core.train import Trainer
    train, test = load_mnist(data_dir, download=False)
    cfg = TrainConfig(batch_size=batch_size, dropout=dropout, seed=seed, device=device, epochs=epochs, **extra)
    t0 = time.perf_counter()
    trainer = Trainer(cfg, train, test)
    history = [r.as_dict() for r in trainer.run()]
    if save_dir:
        from mnist_core.checkpoint import save_checkpoint
        save_checkpoint(trainer.checkpoint(), os.path.join(save_dir, f"bs{batch_size}-do{dropout}-seed{seed}.pt"))
    return {"batch_size": batch_size, "dropout": dropout, "seed": seed, "device": str(trainer.device), **extra,
            "final": history[-1]["test_accuracy"], "best": max(h["test_accuracy"] for h in history),
            "seconds": time.perf_counter() - t0, "history": history}


def _run_multi(args: tuple) -> list[dict]:
    batch_size, dropout, seeds, data_dir, device, epochs, threads, extra, options, progress = args
    import torch
    if threads:
        torch.set_num_threads(threads)
    from mnist_core.config import TrainConfig
    from mnist_core.data import load_mnist
    from mnist_core.multi import MultiTrainer
    train, test = load_mnist(data_dir, download=False)
    cfg = TrainConfig(batch_size=batch_size, dropout=dropout, device=device, epochs=epochs, **extra)
    torch.backends.cudnn.benchmark = True   # GPU: let cuDNN pick its fastest grouped-conv kernels
    t0 = time.perf_counter()
    trainer = MultiTrainer(cfg, seeds, train, test, **options)
    for records in trainer.run():
        if progress:
            accs = " ".join(f"{r['test_accuracy']:.2f}" for r in records)
            print(f"  [multi seeds {seeds[0]}..{seeds[-1]}] epoch {records[0]['epoch']}/{epochs} "
                  f"({records[0]['seconds']:.0f} s): {accs}", flush=True)
    seconds = time.perf_counter() - t0
    return [{"batch_size": batch_size, "dropout": dropout, "seed": s, "device": str(trainer.device), **extra,
             **options, "multi": len(seeds), "final": h[-1]["test_accuracy"],
             "best": max(r["test_accuracy"] for r in h), "seconds": seconds, "history": h}
            for s, h in zip(seeds, trainer.history, strict=True)]


def summarize(rows: list[dict]) -> str:
    lines = ["| batch | dropout | runs | final min / mean / max (%) | final std | best mean (%) | final >= 99.40 |",
             "|---|---|---|---|---|---|---|"]

    def key(r):
        return r["batch_size"], r["dropout"]

    for (bs, do), grp in itertools.groupby(sorted(rows, key=key), key=key):
        grp = list(grp)
        finals = [r["final"] for r in grp]
        std = statistics.stdev(finals) if len(finals) > 1 else 0.0
        lines.append(f"| {bs} | {do} | {len(grp)} "
                     f"| {min(finals):.2f} / {statistics.mean(finals):.3f} / {max(finals):.2f} "
                     f"| {std:.3f} | {statistics.mean(r['best'] for r in grp):.3f} "
                     f"| {sum(f >= 99.40 for f in finals)}/{len(grp)} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    from mnist_core.config import TrainConfig
    d = TrainConfig()
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[d.batch_size], help="default: the recipe's")
    p.add_argument("--dropouts", type=float, nargs="+", default=[d.dropout], help="default: the recipe's")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--jobs", type=int, default=1, help="parallel processes")
    p.add_argument("--threads", type=int, default=0, help="torch threads per process (0 = torch's default)")
    p.add_argument("--device", default="auto")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", default="sweep.jsonl")
    p.add_argument("--save-dir", default=None, help="also write each run's checkpoint here")
    p.add_argument("--rotation-interpolation", default=None, help="override the recipe's (bilinear or nearest)")
    p.add_argument("--max-train-samples", type=int, default=None, help="first N training images (quick runs)")
    p.add_argument("--multi", type=int, default=0, metavar="K",
                   help="train K seeds per job as one batched network (mnist_core/multi.py); 0 = one run per job")
    p.add_argument("--bn-momentum", type=float, default=None, help="--multi only: BatchNorm momentum (recipe: 0.1)")
    p.add_argument("--bn-eps", type=float, default=None, help="--multi only: BatchNorm eps (recipe: 1e-5)")
    p.add_argument("--init", default=None,
                   help="--multi only: conv init (default, kaiming_normal, kaiming_uniform_relu)")
    p.add_argument("--progress", action="store_true", help="--multi only: print every epoch's test accuracies")
    a = p.parse_args()
    extra = {"rotation_interpolation": a.rotation_interpolation} if a.rotation_interpolation else {}
    if a.max_train_samples:
        extra["max_train_samples"] = a.max_train_samples
    options = {k: v for k, v in (("bn_momentum", a.bn_momentum), ("bn_eps", a.bn_eps), ("init", a.init))
               if v is not None}
    if options and not a.multi:
        p.error("--bn-momentum, --bn-eps and --init need --multi K (the single Trainer has no such settings)")
    if a.multi and a.save_dir:
        p.error("--save-dir is for single runs only")
    rows = []
    with ProcessPoolExecutor(a.jobs, mp_context=mp.get_context("spawn")) as pool, open(a.out, "a") as f:
        if a.multi:
            chunks = [a.seeds[i:i + a.multi] for i in range(0, len(a.seeds), a.multi)]
            jobs = [(bs, do, c, a.data_dir, a.device, a.epochs, a.threads, extra, options, a.progress)
                    for bs, do, c in itertools.product(a.batch_sizes, a.dropouts, chunks)]
            futures = [pool.submit(_run_multi, j) for j in jobs]
        else:
            jobs = [(bs, do, s, a.data_dir, a.device, a.epochs, a.threads, a.save_dir, extra)
                    for bs, do, s in itertools.product(a.batch_sizes, a.dropouts, a.seeds)]
            futures = [pool.submit(_run, j) for j in jobs]
        for fut in as_completed(futures):
            result = fut.result()
            for r in (result if isinstance(result, list) else [result]):
                rows.append(r)
                f.write(json.dumps(r) + "\n")
                f.flush()
                print(f"bs={r['batch_size']} dropout={r['dropout']} seed={r['seed']}: final {r['final']:.2f} "
                      f"best {r['best']:.2f} ({r['seconds']:.0f} s on {r['device']})", flush=True)
    print(summarize(rows))


if __name__ == "__main__":
    main()
