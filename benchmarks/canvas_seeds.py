"""The canvas model's recipe on several seeds: MNIST test and drawn test accuracy of each run.

    python benchmarks/canvas_seeds.py --drawn 1.0 --seeds 1 2 3 4 5 --data-dir ../shared/mnist --out-dir runs/canvas

Each run is the recipe (TrainConfig defaults) with `drawn` re-drawn twins added to its training set
(mnist_core/redraw.py); after its last epoch the model is evaluated on the MNIST test set and on the drawn
test set (all 10,000 test digits re-drawn in the styles of redraw.DRAWN_TEST_SEED). One JSON line per run
goes to benchmarks/results/canvas_seeds.jsonl and each checkpoint to --out-dir; the table is printed.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from mnist_core.batches import TensorBatches  # noqa: E402
from mnist_core.checkpoint import save_checkpoint  # noqa: E402
from mnist_core.config import TrainConfig  # noqa: E402
from mnist_core.data import load_mnist  # noqa: E402
from mnist_core.evaluate import evaluate  # noqa: E402
from mnist_core.redraw import CACHE_VERSION, DRAWN_TEST_SEED, drawn  # noqa: E402
from mnist_core.train import Trainer  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "canvas_seeds.jsonl"


def drawn_accuracy(model, test, data_root) -> dict:
    twin, _ = drawn(test, DRAWN_TEST_SEED, progress=True, data_root=data_root)
    return evaluate(model, TensorBatches(twin.images, twin.labels, 500, shuffle=False))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--drawn", type=float, default=1.0)
    p.add_argument("--variants", type=int, default=TrainConfig().drawn_variants, help="style sets of the twins")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    p.add_argument("--epochs", type=int, default=TrainConfig().epochs)
    p.add_argument("--step-size", type=int, default=TrainConfig().step_size, help="StepLR's step, in epochs")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out-dir", default="runs/canvas")
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    train, test = load_mnist(a.data_dir, download=False)
    rows = []
    for seed in a.seeds:
        cfg = TrainConfig(drawn=a.drawn, drawn_variants=a.variants, seed=seed, epochs=a.epochs, step_size=a.step_size)
        t0 = time.perf_counter()
        trainer = Trainer(cfg, train, test, progress_bars=True)
        for rec in trainer.run():
            print(f"seed {seed} epoch {rec.epoch}: test {rec.test_accuracy:.2f}%", flush=True)
        seconds = time.perf_counter() - t0
        ckpt = trainer.checkpoint()
        d = drawn_accuracy(trainer.model, test, a.data_dir)
        out = Path(a.out_dir) / f"canvas-d{a.drawn:g}-v{a.variants}-e{a.epochs}-s{seed}.pt"
        out.parent.mkdir(parents=True, exist_ok=True)
        save_checkpoint(ckpt, out)
        row = {"drawn": a.drawn, "variants": a.variants, "seed": seed, "epochs": a.epochs, "step_size": a.step_size,
               "tracer": CACHE_VERSION,
               "mnist_test": ckpt["test_metrics"]["accuracy"],
               "drawn_test": d["accuracy"], "seconds": round(seconds, 1), "threads": a.threads,
               "checkpoint": str(out)}
        rows.append(row)
        RESULTS.parent.mkdir(exist_ok=True)
        with open(RESULTS, "a") as f:
            f.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)
    for key in ("mnist_test", "drawn_test"):
        v = [r[key] for r in rows]
        print(f"{key}: min {min(v):.2f} mean {statistics.mean(v):.2f} max {max(v):.2f} (n={len(v)})")


if __name__ == "__main__":
    main()
