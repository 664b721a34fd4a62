"""How well each shipped model reads drawings, and how honestly it says "not a digit".

    python benchmarks/drawn_accuracy.py --data-dir ../shared/mnist

For each model (default: checkpoints/mnist_cnn.pt, the recipe's, and checkpoints/mnist_canvas.pt, trained
with its re-drawn twin): MNIST test accuracy; drawn test accuracy (all 10,000 test digits re-drawn as the
page's canvas draws them, in the styles of redraw.DRAWN_TEST_SEED: a fixed seed for size, slant, width and
brush); accuracy by pen width (the stroke's width in the 28x28 image); the most common confusions on the
drawn set; and, when the model has "not a digit" stats, the share of drawn test digits and of the non-digit
set (tests/nondigit_strokes.py) flagged at the stored threshold, against the old "unsure" rule (top
probability under 60%). The seeds table of the canvas recipe is benchmarks/canvas_seeds.py.
"""
from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from mnist_core.batches import TensorBatches  # noqa: E402
from mnist_core.checkpoint import load_checkpoint, model_from_checkpoint  # noqa: E402
from mnist_core.data import load_mnist  # noqa: E402
from mnist_core.evaluate import evaluate  # noqa: E402
from mnist_core.redraw import DRAWN_TEST_SEED, Style, drawn  # noqa: E402

PEN_BINS = (0.0, 1.5, 2.0, 2.5, 3.0, 3.5, 9.0)   # pen width in 28x28 pixels
FAITHFUL = 0.8     # a re-drawing covering less of its original's ink (grown by 1 px) lost a part in tracing


def coverage(test) -> np.ndarray:
    """For each test digit: the share of its ink (grown by one pixel) that its re-drawing covers, drawn
    plainly (the page's brush, no slant): low when the traced skeleton lost a stroke of the digit."""
    from mnist_core.redraw import render, traced
    t = traced(test.images)
    out = np.zeros(len(test))
    for i in range(len(test)):
        original = test.images[i].numpy() >= 128
        img = render(t.lines(i), Style()) if t.lines(i) else None
        ink = img >= 128 if img is not None else np.zeros_like(original)
        grown = ink.copy()
        for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0)):
            grown |= np.roll(np.roll(ink, dy, 0), dx, 1)
        out[i] = (original & grown).sum() / max(original.sum(), 1)
    return out


@torch.inference_mode()
def predictions(model, images: torch.Tensor, norm: dict) -> np.ndarray:
    x = (images.float() / 255 - norm["mean"]) / norm["std"]
    return torch.cat([model(x[i:i + 1000].unsqueeze(1)).argmax(1) for i in range(0, len(x), 1000)]).numpy()


def report(path: Path, test, twin, pens: np.ndarray, faithful: np.ndarray, data_dir: str | None) -> None:
    ckpt = load_checkpoint(path)
    model = model_from_checkpoint(ckpt).eval()
    norm = ckpt["normalization"]
    m = evaluate(model, TensorBatches(test.images, test.labels, 500, shuffle=False, mean=norm["mean"], std=norm["std"]))
    pred = predictions(model, twin.images, norm)
    truth = twin.labels.numpy()
    ok = pred == truth
    print(f"\n## {path.name}: MNIST test {m['accuracy']:.2f}%, drawn test {100 * ok.mean():.2f}% "
          f"({int(ok.sum())}/{len(ok)})")
    cells = []
    for lo, hi in zip(PEN_BINS[:-1], PEN_BINS[1:], strict=True):
        sel = (pens >= lo) & (pens < hi)
        if sel.any():
            cells.append(f"{lo:g}-{hi:g} px: {100 * ok[sel].mean():.2f}% (n={int(sel.sum())})")
    print("by pen width: " + "; ".join(cells))
    print(f"on the {int(faithful.sum())} re-drawings that kept >= {FAITHFUL:.0%} of their digit's ink: "
          f"{100 * ok[faithful].mean():.2f}%; on the {int((~faithful).sum())} others: "
          f"{100 * ok[~faithful].mean():.2f}%")
    common = Counter(zip(truth[~ok].tolist(), pred[~ok].tolist(), strict=True)).most_common(6)
    print("commonest confusions (true -> read, count): " + ", ".join(f"{t}->{p} {n}" for (t, p), n in common))
    if ckpt.get("novelty"):
        from tests.nondigit_strokes import figures
        f = figures(str(path), data_dir)
        print(f"not a digit (threshold {f['threshold']:.3f}): flags {f['digits flagged %']:.2f}% of drawn test digits "
              f"and {f['non-digits flagged %']:.1f}% of {f['non-digits']} non-digits; the 'unsure' rule: "
              f"{f['digits unsure %']:.2f}% and {f['non-digits unsure %']:.1f}%")
        print("  by kind: " + ", ".join(f"{k.removesuffix(' flagged %')} {v:.0f}%" for k, v in f.items()
                                        if k.endswith("s flagged %") and not k.startswith(("digits", "non-"))))
    else:
        print("not a digit: this checkpoint has no stats (python -m mnist_core.novelty --checkpoint ...)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=None)
    p.add_argument("--checkpoints", nargs="+",
                   default=[str(ROOT / "checkpoints" / "mnist_cnn.pt"), str(ROOT / "checkpoints" / "mnist_canvas.pt")])
    args = p.parse_args()
    torch.set_num_threads(2)
    _, test = load_mnist(args.data_dir, download=False)
    twin, styles = drawn(test, DRAWN_TEST_SEED, progress=True, data_root=args.data_dir)
    pens = np.array([Style(*row).pen_px for row in styles])
    print(f"drawn test set: {len(twin)} digits, redraw seed {DRAWN_TEST_SEED}, pen width "
          f"{pens.min():.2f}-{pens.max():.2f} px (median {np.median(pens):.2f})")
    faithful = coverage(test) >= FAITHFUL
    for path in args.checkpoints:
        if Path(path).is_file():
            report(Path(path), test, twin, pens, faithful, args.data_dir)
        else:
            print(f"\n## {path}: not there")

if __name__ == "__main__":
    main()
