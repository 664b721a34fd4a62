"""Per-setting seed tables from sweep.py's JSON lines: min / mean / max, spread, count >= 99.40, the
paired difference against the default recipe on the same seeds, and the mean training accuracy of the
last epoch (on rotated images, averaged over the epoch's batches).

    python benchmarks/seed_table.py benchmarks/results/sweep20_cpu_default.jsonl \
        benchmarks/results/sweep20_cpu_bnm001.jsonl [--epoch 8] [--seeds 1-20]

A setting is what the rows differ in (batch, dropout, BN momentum/eps, init, rotation sampling), per
device and trainer (single or multi-model). Its baseline is the default recipe on the same device and
trainer (a line without a key counts as today's default for it). A run is identified by its seed, so
the paired difference uses only seeds present in both. --epoch E reads epoch E's test accuracy instead
of the final one (for runs that were cut off).
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
from collections import defaultdict

SETTING_KEYS = ("batch_size", "dropout", "bn_momentum", "bn_eps", "init", "rotation_interpolation")
DEFAULTS = {"batch_size": 64, "dropout": 0.0, "bn_momentum": 0.1, "bn_eps": 1e-5, "init": "default",
            "rotation_interpolation": "nearest"}
TARGET = 99.40


def setting_of(row: dict) -> tuple:
    """(where it ran, which trainer), then the recipe's free settings."""
    where = (str(row.get("device", "?")), "multi" if row.get("multi") else "single")
    return where, tuple((k, row.get(k, DEFAULTS[k])) for k in SETTING_KEYS)


def is_default(setting: tuple) -> bool:
    return all(v == DEFAULTS[k] for k, v in setting[1])


def accuracy(row: dict, epoch: int | None) -> float | None:
    """Final (or epoch E's) test accuracy; None when the run has no such figure (cut off earlier)."""
    per_epoch = ([h["test_accuracy"] for h in row["history"]] if "history" in row
                 else row.get("test_accuracy_per_epoch", []))   # the cut-off GPU sweep's lines
    if epoch is None:
        return row.get("final")
    return per_epoch[epoch - 1] if 0 < epoch <= len(per_epoch) else None


def train_accuracy(row: dict) -> float | None:
    """The last epoch's training accuracy (running mean over its batches), where the line has it."""
    return row["history"][-1].get("train_accuracy") if row.get("history") else None


def name(setting: tuple) -> str:
    changed = [f"{k} {v}" for k, v in setting[1] if v != DEFAULTS[k]]
    return (", ".join(changed) or "default") + f" ({setting[0][0]}, {setting[0][1]} trainer)"


def table(rows: list[dict], epoch: int | None = None, seeds: set[int] | None = None) -> str:
    by: dict[tuple, dict[int, float]] = defaultdict(dict)
    train: dict[tuple, dict[int, float]] = defaultdict(dict)
    for r in rows:
        acc = accuracy(r, epoch)
        if acc is not None and (seeds is None or r["seed"] in seeds):
            by[setting_of(r)][r["seed"]] = acc      # a seed run twice: the later line wins
            t = train_accuracy(r) if epoch is None else None
            if t is not None:
                train[setting_of(r)][r["seed"]] = t
    bases = {s[0]: s for s in by if is_default(s)}    # the default of each device and trainer
    out = [f"| setting | seeds | min / mean / max (%) | std | >= {TARGET:.2f} | paired diff vs default "
           "(mean +/- s.e.; seeds better / worse) | train acc., last epoch (mean %) |", "|---|---|---|---|---|---|---|"]
    for s in sorted(by, key=lambda s: (s[0], not is_default(s), name(s))):
        base = bases.get(s[0])
        accs = by[s]
        v = list(accs.values())
        std = statistics.stdev(v) if len(v) > 1 else 0.0
        diff = ""
        if base is not None and s != base:
            common = sorted(set(accs) & set(by[base]))
            d = [accs[k] - by[base][k] for k in common]
            if len(d) > 1:
                se = statistics.stdev(d) / math.sqrt(len(d))
                diff = (f"{statistics.mean(d):+.3f} +/- {se:.3f} on {len(d)} seeds "
                        f"({sum(x > 1e-9 for x in d)} / {sum(x < -1e-9 for x in d)})")
        tr = list(train[s].values())
        out.append(f"| {name(s)} | {len(v)} | {min(v):.2f} / {statistics.mean(v):.3f} / {max(v):.2f} | {std:.3f} "
                   f"| {sum(x >= TARGET - 1e-9 for x in v)}/{len(v)} | {diff} "
                   f"| {f'{statistics.mean(tr):.3f}' if tr else ''} |")
    return "\n".join(out)


def parse_seeds(text: str | None) -> set[int] | None:
    if not text:
        return None
    lo, _, hi = text.partition("-")
    return set(range(int(lo), int(hi or lo) + 1))


def read_jsonl(path: str) -> list[dict]:
    """The JSON objects of a JSON-lines file, blank lines skipped."""
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="+")
    p.add_argument("--epoch", type=int, default=None, help="this epoch's test accuracy instead of the final one")
    p.add_argument("--seeds", default=None, help="only these seeds, e.g. 1-20")
    a = p.parse_args()
    rows = [row for f in a.files for row in read_jsonl(f)]
    print(table(rows, a.epoch, parse_seeds(a.seeds)))


if __name__ == "__main__":
    main()
