""""That doesn't look like a digit": a novelty score from the network's own features.

The features are the mean of every channel of every layer of the folded network but the head (fold.py,
what the page computes anyway: 8 + 16 + 8 + 16 + 8 + 16 + 16 = 88 numbers, the last 16 the pooled
features the head reads); `features` computes them with the PyTorch model without changing it. The score
is the Mahalanobis distance to the nearest class: class means and one shared covariance estimated on the
training digits' features (`fit`; `attach` uses MNIST's training digits and their re-drawn twins), its
inverse stored as the triangular W with W^T W = precision, so

    score(f) = sqrt(min over classes c of |W (f - mean_c)|^2)

The page computes the same formula in float64 from the same stats (web/mnistnet.js `novelty`), in the
same order. Chosen by measurement with the recipe's model (tests/nondigit_strokes.py, its non-digit set;
the threshold at 99.5% of the calibration digits): with the 16 pooled features alone the score flags 19%
of the non-digit set (0.52% of the drawn test digits); with the means of all layers 67% (0.64%), 71% when
fitted on the re-drawn twins too (0.64%). Logit-based scores (max logit, energy, top probability) and a
per-class covariance flagged 7-19%. (Those choices were measured with the first tracer; with filled-in loops
traced round, redraw.CORE, the shipped models flag 66% and 68% at 0.54% and 0.59%: RESULTS.md §19.)

The threshold is a quantile (QUANTILE) of the scores of *drawn* digits that are not the drawn test set:
training digits re-drawn in fresh styles (redraw.drawn(seed=CALIBRATION_SEED)); above it the app says
"Not a digit?". The stats are a plain dict of floats and lists (`fit`), stored in the checkpoint as
ckpt["novelty"] (`attach`, or `python -m mnist_core.novelty --checkpoint PATH`), so weights_only loading
reads them; a checkpoint without them simply has no score (`Scorer.of` gives None).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .arch import FOLDED
from .checkpoint import CheckpointError, load_checkpoint, model_from_checkpoint, save_checkpoint
from .config import MNIST_MEAN, MNIST_STD
from .data import DataError, Split, load_mnist
from .preprocess import normalize_image

KIND = "mahalanobis-layer-means"
LAYERS = tuple(layer.name for layer in FOLDED[:-1])          # every layer of the folded network but the head
FEATURES = sum(layer.cout for layer in FOLDED[:-1])          # 88: the mean of each of their channels
CLASSES = FOLDED[-1].cout                                    # 10
CALIBRATION_SEED = 2                    # redraw's styles for calibration (1 is the drawn test set: never used here)
CALIBRATION_DIGITS = 10_000             # the first training digits, re-drawn for calibration
QUANTILE = 0.995                        # of the calibration digits' scores: the threshold
RIDGE = 1e-4                            # added to the covariance's diagonal (times its mean variance)
BATCH = 2000


# ------------------------------------------------------------------------------ features
def _modules(stage: nn.Module) -> list[nn.Module]:
    return list(stage) if isinstance(stage, nn.Sequential) else [stage]


def forward_with_features(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """[N, 1, 28, 28] normalized inputs -> (log-probabilities [N, 10], features [N, 88]) in one pass: the
    model's own forward (the same numbers as model(x)), and the mean of each channel of each folded
    layer's output (fold.forward's stages but the last: a stage's map before its BatchNorm, which folds
    into the next layer; after its max-pool; conv6's is the average pool the head reads)."""
    out = []
    for name, stage in model.stages():
        seen = None
        for m in _modules(stage):
            if isinstance(m, nn.BatchNorm2d):
                seen = x
            x = m(x)
        if name in LAYERS:
            out.append((x if seen is None else seen).mean((2, 3)))
    return F.log_softmax(x.flatten(1), dim=1), torch.cat(out, 1)


@torch.inference_mode()
def features(model: nn.Module, images28: np.ndarray, mean: float, std: float) -> np.ndarray:
    """[N, 28, 28] images in [0, 1] (or uint8 0..255) -> [N, 88] layer means, float64."""
    images28 = np.asarray(images28)
    if images28.dtype == np.uint8:
        images28 = images28.astype(np.float32) / 255.0
    images28 = images28.reshape(-1, 28, 28)
    model = model.eval()
    out = [forward_with_features(model, torch.from_numpy(normalize_image(images28[i:i + BATCH], mean, std)))[1]
           .double().numpy()
           for i in range(0, len(images28), BATCH)]
    return np.concatenate(out) if out else np.zeros((0, FEATURES))


def stage_features(stages) -> np.ndarray:
    """The same features from fold.forward's stages (the page's arithmetic): each stage's mean but the last."""
    return np.concatenate([np.asarray(s, np.float64).reshape(s.shape[0], -1).mean(1) for s in stages[:-1]])


# ------------------------------------------------------------------------------ the score
def _f32(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, np.float32).astype(np.float64)


def class_stats(feats: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(means [10, D], whiten [D, D]): class means and the upper-triangular W with W^T W = the inverse of
    the shared (pooled within-class) covariance, with a small ridge (a dead channel cannot make it
    singular). Both rounded to float32 values: the page gets them as float32 and computes with exactly
    these numbers."""
    feats, labels = np.asarray(feats, np.float64), np.asarray(labels).astype(np.int64)
    if feats.ndim != 2 or len(feats) != len(labels):
        raise ValueError("features and labels do not match")
    missing = sorted(set(range(CLASSES)) - set(labels.tolist()))
    if missing:
        raise ValueError(f"no training digit of class {missing[0]}: cannot estimate its mean")
    means = np.stack([feats[labels == c].mean(0) for c in range(CLASSES)])
    centred = feats - means[labels]
    cov = centred.T @ centred / max(len(feats) - CLASSES, 1)
    cov += np.eye(cov.shape[0]) * RIDGE * max(float(np.trace(cov)) / cov.shape[0], 1e-12)
    lower = np.linalg.cholesky(np.linalg.inv(cov))          # precision = L L^T, so W = L^T
    return _f32(means), _f32(np.triu(lower.T))


def distances(means, whiten, feats: np.ndarray) -> np.ndarray:
    """[N, D] features -> [N, 10] squared Mahalanobis distances to each class mean: |W (f - mean_c)|^2."""
    means, whiten = np.asarray(means, np.float64), np.asarray(whiten, np.float64)
    diff = np.asarray(feats, np.float64).reshape(-1, 1, means.shape[1]) - means[None]
    z = np.einsum("ij,ncj->nci", whiten, diff)
    return (z * z).sum(2)


def score(stats: dict, feats: np.ndarray) -> np.ndarray | float:
    """Novelty scores ([N], or one float for one feature vector [D]): the Mahalanobis distance to the
    nearest class mean. Higher: less like any digit the model was trained on."""
    f = np.asarray(feats, np.float64)
    s = np.sqrt(distances(stats["means"], _unpack(stats["whiten"], len(stats["means"][0])), f).min(1))
    return float(s[0]) if f.ndim == 1 else s


def _pack(whiten: np.ndarray) -> list[float]:
    """The upper triangle, row by row (what is stored and sent)."""
    return [float(v) for v in whiten[np.triu_indices(len(whiten))]]


def _unpack(flat, d: int) -> np.ndarray:
    flat = np.asarray(flat, np.float64)
    if flat.shape != (d * (d + 1) // 2,):
        raise ValueError(f"whiten has {flat.size} values, expected {d * (d + 1) // 2}")
    w = np.zeros((d, d))
    w[np.triu_indices(d)] = flat
    return w


def fit(model: nn.Module, train_images, train_labels, calib_images, quantile: float = QUANTILE,
        normalization: dict | None = None, calibrated_on: str = "") -> dict:
    """The stats of `model`: class means and the shared whitening from the training digits' features, and
    the threshold: the `quantile` of the calibration digits' scores. A plain dict (floats and lists)."""
    if not 0.5 <= quantile < 1:
        raise ValueError(f"quantile must be in [0.5, 1), got {quantile}")
    norm = normalization or {"mean": MNIST_MEAN, "std": MNIST_STD}
    mean, std = float(norm["mean"]), float(norm["std"])
    means, whiten = class_stats(features(model, _np(train_images), mean, std), _np(train_labels))
    stats = {"kind": KIND, "layers": list(LAYERS), "means": means.tolist(), "whiten": _pack(whiten)}
    calib = score(stats, features(model, _np(calib_images), mean, std))
    if not len(calib):
        raise ValueError("no calibration digits")
    return stats | {"threshold": float(np.quantile(calib, quantile)), "quantile": float(quantile),
                    "calibrated_on": calibrated_on or f"{len(calib)} digits"}


def _np(a) -> np.ndarray:
    return a.numpy() if isinstance(a, torch.Tensor) else np.asarray(a)


def check_stats(stats) -> dict | None:
    """The stats if they are usable (this kind, the right shapes, finite), else None: a checkpoint with
    broken or foreign stats gets no score rather than a wrong one."""
    if not isinstance(stats, dict) or stats.get("kind") != KIND or stats.get("layers") != list(LAYERS):
        return None
    try:
        means = np.asarray(stats["means"], np.float64)
        whiten = np.asarray(stats["whiten"], np.float64)
        threshold = float(stats["threshold"])
    except (TypeError, KeyError, ValueError):
        return None
    ok = (means.shape == (CLASSES, FEATURES) and whiten.shape == (FEATURES * (FEATURES + 1) // 2,)
          and np.isfinite(means).all() and np.isfinite(whiten).all() and np.isfinite(threshold))
    return stats if ok else None


class Scorer:
    """A model's stats, unpacked once: what the Predictor scores each drawing with."""

    def __init__(self, stats: dict) -> None:
        self.stats = stats
        self.means = _f32(stats["means"])            # float32 values: the numbers the page gets (weights.py)
        self.whiten = _f32(_unpack(stats["whiten"], self.means.shape[1]))
        self.threshold = float(stats["threshold"])

    @classmethod
    def of(cls, stats) -> Scorer | None:
        """A Scorer for usable stats (check_stats), else None (no stats, or broken ones: no score)."""
        checked = check_stats(stats)
        return None if checked is None else cls(checked)

    def score(self, feats: np.ndarray) -> np.ndarray:
        """[N, 88] features -> [N] scores."""
        return np.sqrt(distances(self.means, self.whiten, feats).min(1))


# ------------------------------------------------------------------------------ checkpoints
def calibration_split(train: Split, digits: int = CALIBRATION_DIGITS, **kw) -> Split:
    """The first `digits` training digits re-drawn in the calibration styles (cached by redraw)."""
    from . import redraw
    head = Split(train.images[:digits], train.labels[:digits])
    return redraw.drawn(head, CALIBRATION_SEED, **kw)[0]


def fit_split(train: Split, with_drawn: bool = True, **kw) -> Split:
    """The digits the class means and covariance are estimated on: MNIST's training digits and, with
    `with_drawn`, their re-drawn twins (redraw.DRAWN_TRAIN_SEED, what the canvas model trains on; cached).
    Measured with the recipe's model: 70.6% of the non-digit set flagged with them, 65.7% without, at the
    same share of drawn test digits (0.64%, 0.65%)."""
    if not with_drawn:
        return train
    from . import redraw
    twin = redraw.drawn(train, redraw.DRAWN_TRAIN_SEED, **kw)[0]
    return Split(torch.cat([train.images, twin.images]), torch.cat([train.labels, twin.labels]))


def stats_for(ckpt: dict, fit_on: Split, calib: Split, quantile: float = QUANTILE, what: str = "") -> dict:
    """fit() for a checkpoint's model, on `fit_on`, calibrated on `calib`."""
    return fit(model_from_checkpoint(ckpt), fit_on.images, fit_on.labels, calib.images, quantile,
               ckpt["normalization"],
               f"fitted on {what or f'{len(fit_on)} digits'}; threshold: {quantile:.1%} of {len(calib)} MNIST "
               f"training digits re-drawn as strokes (redraw seed {CALIBRATION_SEED}) accepted")


def attach(checkpoint_path: str | Path, data_dir: str | Path | None = None, quantile: float = QUANTILE,
           progress: bool = False, workers: int | None = None, with_drawn: bool = True) -> dict:
    """Fit the stats of a checkpoint's model and store them in it as ckpt["novelty"], atomically (the
    weights are not changed). Returns the stats. Needs MNIST: the training digits (and their re-drawn
    twins, `with_drawn`), and the first CALIBRATION_DIGITS of them re-drawn in the calibration styles;
    redraw's cache, made in `workers` processes when missing."""
    ckpt = load_checkpoint(checkpoint_path)
    train, _ = load_mnist(data_dir, download=False)
    kw = {"progress": progress, "workers": workers}
    what = f"MNIST's {len(train)} training digits" + (" and their re-drawn twins" if with_drawn else "")
    stats = stats_for(ckpt, fit_split(train, with_drawn, **kw), calibration_split(train, **kw), quantile, what)
    ckpt["novelty"] = stats
    save_checkpoint(ckpt, checkpoint_path)
    return stats


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mnist_core.novelty",
                                description="Add the 'not a digit' stats to a checkpoint (its weights "
                                            "stay as they are).")
    p.add_argument("--checkpoint", required=True, help="the checkpoint file to add the stats to")
    p.add_argument("--data-dir", default=None, help="where MNIST is (default: $MNIST_DATA_DIR or ./data)")
    p.add_argument("--quantile", type=float, default=QUANTILE, help="share of calibration digits accepted")
    p.add_argument("--mnist-only", action="store_true", help="fit on MNIST's training digits without their "
                                                             "re-drawn twins")
    args = p.parse_args(argv)
    t0 = time.time()
    try:
        stats = attach(args.checkpoint, args.data_dir, args.quantile, progress=True, with_drawn=not args.mnist_only)
    except (CheckpointError, DataError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{args.checkpoint}: novelty threshold {stats['threshold']:.4f} ({stats['calibrated_on']}), "
          f"{time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
