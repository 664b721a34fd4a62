"""Teach it your handwriting (issue 33): how well a few drawings teach the shipped model a hand it misreads.

For each synthetic hand of tests/handwriting.py that the shipped model misreads, and N = 2, 5, 10 drawings
per digit taught (mnist_core.teach.finetune with the default TeachConfig, the drawings' held-aside split
included as the app does it), it measures accuracy on 50 fresh drawings per digit of the same hand (other
seeds: never taught) before and after, the MNIST test accuracy before and after, and the seconds of one teach
on 1 CPU thread (torch.set_num_threads(1); rendering, both MNIST evaluations and the steps included): wall
seconds, and the CPU seconds of the process (what it costs on a core of its own when the machine is busy).

Targets (issue 33): with 5 per digit, fresh-drawing accuracy >= 98%, MNIST test >= 99.2% after, <= 20 s.

    python benchmarks/teach.py [--data-dir /work/shared/mnist] [--hands boxy,loose] [--n 2,5,10]
                               [--set steps=200 --set lr=0.01 ...]   (TeachConfig overrides, for tuning)
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mnist_core.checkpoint import load_checkpoint, model_from_checkpoint  # noqa: E402
from mnist_core.data import load_mnist  # noqa: E402
from mnist_core.teach import TeachConfig, accuracy, finetune, render_all, validate_drawings  # noqa: E402
from tests import handwriting  # noqa: E402

FRESH_PER_DIGIT = 50
FRESH_SEED = 1000          # the fresh drawings' seed; the taught ones use seeds 0, 1, ...


def fresh(hand: str):
    return render_all(validate_drawings(handwriting.drawings(hand, FRESH_PER_DIGIT, seed=FRESH_SEED)))


def one(base: dict, hand: str, n: int, train, test, cfg: TeachConfig, seed: int) -> dict:
    drawings = validate_drawings(handwriting.drawings(hand, n, seed=seed))
    cpu0 = time.process_time()
    ckpt, report = finetune(base, drawings, train, test, cfg)
    cpu = time.process_time() - cpu0
    norm = base["normalization"]
    split = fresh(hand)
    return {"hand": hand, "n": n, "seed": seed,
            "fresh_before": accuracy(model_from_checkpoint(base), split, norm),
            "fresh_after": accuracy(model_from_checkpoint(ckpt), split, norm), **report, "cpu_seconds": cpu}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default="/work/shared/mnist")
    p.add_argument("--checkpoint", default=str(ROOT / "checkpoints" / "mnist_cnn.pt"))
    p.add_argument("--hands", default=",".join(handwriting.MISREAD))
    p.add_argument("--n", default="2,5,10")
    p.add_argument("--seeds", default="0", help="seeds of the taught drawings (one teach per seed)")
    p.add_argument("--set", action="append", default=[], help="TeachConfig override NAME=JSON")
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    cfg = TeachConfig.from_dict({k: json.loads(v) for k, v in (s.split("=", 1) for s in a.set)})
    base = load_checkpoint(a.checkpoint)
    train, test = load_mnist(a.data_dir, download=False)
    print(f"TeachConfig: {cfg.to_dict()}", flush=True)
    print(f"{'hand':12s} {'N/digit':>7s} {'seed':>4s} {'fresh before':>12s} {'fresh after':>11s} "
          f"{'held b->a':>15s} {'MNIST before':>12s} {'MNIST after':>11s} {'seconds':>7s} {'CPU s':>5s}", flush=True)
    for hand in a.hands.split(","):
        for n in (int(x) for x in a.n.split(",")):
            for seed in (int(x) for x in a.seeds.split(",")):
                r = one(base, hand, n, train, test, cfg, seed)
                if a.json:
                    print(json.dumps(r), flush=True)
                    continue
                print(f"{hand:12s} {n:7d} {seed:4d} {r['fresh_before']:11.1f}% {r['fresh_after']:10.1f}% "
                      f"{r['held_before']:6.1f}->{r['held_after']:5.1f}% {r['mnist_before']:11.2f}% "
                      f"{r['mnist_after']:10.2f}% {r['seconds']:7.1f} {r['cpu_seconds']:5.1f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
