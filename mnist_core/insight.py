"""Why did it say 7? Saliency for one digit, look-alike training digits, and the model's own mistakes.

Pure logic, no UI: arrays and small dataclasses in, arrays and small dataclasses out. The pictures
(heat-map overlay, gallery items, confusion table) are made in the app (`mnist_web.insight_views`).

- saliency(): where in the 28x28 view the evidence for a class lies. Occlusion (the default,
  chosen by measurement: benchmarks/explain_latency.py), integrated gradients, gradient x input and
  the plain gradient, all on the log-probability of the class, black (MNIST's background) as baseline.
- FeatureIndex: the network's own 16-d pooled features (after the global average pool, before the
  last 1x1 conv) of every training image, quantised to int8 with a per-dimension scale (quantise(): the
  page gets the same codes, mnist_web/lookalike_routes.py, and finds the same neighbours), searched with
  one matrix product (cosine similarity).
- find_mistakes(): every test digit the model gets wrong, with what it said and how sure it was.
- InsightService: holds MNIST and builds each model's features and mistakes once, as parts of the
  model (parts.py: kept by the model store under its bounds, or weakly per Predictor); thread-safe.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .data import FILES, DataError, raw_dir, read_split, resolve_data_dir
from .parts import Parts
from .predict import Prediction, Predictor
from .preprocess import prepare

METHODS = ("integrated_gradients", "gradient_x_input", "occlusion", "gradient")
# Chosen by measurement (benchmarks/explain_latency.py, RESULTS.md): on real test digits, blacking
# out the 32 pixels occlusion ranks highest removes far more of the class probability than the 32
# ranked highest by integrated gradients or gradient x input, and 4x4 squares every 2 px are as
# faithful as every 1 px at 40% of the cost (~35 ms per map on the 2-core CPU).
DEFAULT_METHOD = "occlusion"
IG_STEPS = 16          # Riemann midpoints from black to the digit (4, 16 and 64 steps measured alike)
OCCLUSION_PATCH = 4    # px; a stroke is ~2-3 px wide at MNIST scale
OCCLUSION_STRIDE = 2   # px between squares
SORT_ORDERS = ("most confident first", "least confident first", "by true digit")
LOOKALIKES = 8
QUANT_LEVELS = 127     # int8 codes -127..127 per feature dimension


class InsightError(ValueError):
    """Input the insight functions cannot work on; the message says what was wrong."""


# ----------------------------------------------------------------------------------- checks

def check_image28(image28) -> np.ndarray:
    """A 28x28 image in [0, 1] (white digit on black) as float32, or InsightError."""
    try:
        a = np.asarray(image28, dtype=np.float32)
    except (TypeError, ValueError):
        raise InsightError(f"expected a 28x28 image, got a {type(image28).__name__}") from None
    if a.shape != (28, 28):
        raise InsightError(f"expected a 28x28 image, got an array of shape {a.shape}")
    if not np.isfinite(a).all():
        raise InsightError("the image has NaN or infinite pixels")
    if a.min() < 0 or a.max() > 1:
        raise InsightError(f"pixels must be in [0, 1], got {a.min():.3g}..{a.max():.3g}")
    return a


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise InsightError(f"unknown saliency method {method!r}; choose one of {', '.join(METHODS)}")


def _check_target(target) -> int:
    if isinstance(target, bool) or not isinstance(target, (int, np.integer)) or not 0 <= int(target) <= 9:
        raise InsightError(f"target must be a digit 0-9, got {target!r}")
    return int(target)


# ----------------------------------------------------------------------------------- features

def pooled_features(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """[N, 1, 28, 28] normalized inputs -> [N, 16]: the global-average-pooled features the head reads."""
    for name, stage in model.stages():
        if name == "head":
            break
        x = stage(x)
    return x.flatten(1)


def _normalized(pixels: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    return ((pixels - mean) / std).reshape(-1, 1, 28, 28)


# ----------------------------------------------------------------------------------- saliency

def _log_prob(model, pixels: torch.Tensor, mean: float, std: float, target: int) -> torch.Tensor:
    return model(_normalized(pixels, mean, std))[:, target]


def _input_gradient(model, pixels: torch.Tensor, mean: float, std: float, target: int) -> torch.Tensor:
    """d log p(target) / d pixel for each image of a [N, 28, 28] batch (parameters get no .grad)."""
    with torch.enable_grad():
        p = pixels.detach().clone().requires_grad_(True)
        (g,) = torch.autograd.grad(_log_prob(model, p, mean, std, target).sum(), p)
    return g


def saliency(model: torch.nn.Module, image28, mean: float, std: float, target: int | None = None,
             method: str = DEFAULT_METHOD, steps: int = IG_STEPS, patch: int = OCCLUSION_PATCH,
             stride: int = OCCLUSION_STRIDE) -> np.ndarray:
    """Signed 28x28 attribution of log p(target) to each pixel (target: the top class by default).

    Positive = evidence for the class. With black as the baseline, integrated gradients and
    gradient x input are exactly 0 on black pixels; occlusion spreads over the patch size; the plain
    gradient (returned as |gradient|) is not tied to the ink at all.
    """
    _check_method(method)
    img = torch.from_numpy(check_image28(image28).copy())
    model.eval()
    if target is None:
        with torch.inference_mode():
            target = int(_log_prob(model, img[None], mean, std, slice(None)).argmax())
    target = _check_target(target)
    if method == "gradient":
        return _input_gradient(model, img[None], mean, std, target)[0].abs().numpy()
    if method == "gradient_x_input":
        return (_input_gradient(model, img[None], mean, std, target)[0] * img).numpy()
    if method == "integrated_gradients":
        if not 1 <= int(steps) <= 512:
            raise InsightError(f"steps must be 1-512, got {steps!r}")
        alphas = (torch.arange(int(steps), dtype=torch.float32) + 0.5) / int(steps)
        g = _input_gradient(model, alphas[:, None, None] * img, mean, std, target)
        return (g.mean(0) * img).numpy()
    return _occlusion(model, img, mean, std, target, int(patch), int(stride))


def _square_starts(patch: int, stride: int) -> np.ndarray:
    """Top/left edges of the squares along one side: every `stride` px, the last one flush with the edge."""
    starts = list(range(0, 28 - patch + 1, stride))
    if starts[-1] != 28 - patch:
        starts.append(28 - patch)
    return np.asarray(starts)


@torch.inference_mode()
def _occlusion(model, img: torch.Tensor, mean: float, std: float, target: int, patch: int, stride: int) -> np.ndarray:
    """Mean drop of log p(target) when a patch x patch square covering the pixel is set to black
    (squares every `stride` px). Squares over pure background change nothing (their drop is 0), so
    only those touching ink are run through the network, all in one batch."""
    if not 1 <= patch <= 28 or not 1 <= stride <= patch:
        raise InsightError(f"patch must be 1-28 px and stride 1..patch, got {patch!r}, {stride!r}")
    starts = _square_starts(patch, stride)
    sy, sx = (a.ravel() for a in np.meshgrid(starts, starts, indexing="ij"))
    offs = np.arange(patch)
    yy = (sy[:, None] + offs)[:, :, None] + np.zeros((1, 1, patch), np.int64)   # [S, patch, patch]
    xx = (sx[:, None] + offs)[:, None, :] + np.zeros((1, patch, 1), np.int64)
    pix = img.numpy()
    touches = np.flatnonzero((pix[yy, xx] > 0).any(axis=(1, 2)))
    drops = np.zeros(len(sy), np.float32)
    if len(touches):
        batch = img.repeat(len(touches), 1, 1)
        rows = torch.arange(len(touches))[:, None, None]
        batch[rows, torch.from_numpy(yy[touches]), torch.from_numpy(xx[touches])] = 0.0
        base = _log_prob(model, img[None], mean, std, target)[0]
        drops[touches] = (base - _log_prob(model, batch, mean, std, target)).numpy()
    total = np.zeros((28, 28), np.float32)
    count = np.zeros((28, 28), np.float32)
    np.add.at(total, (yy, xx), np.broadcast_to(drops[:, None, None], yy.shape))
    np.add.at(count, (yy, xx), 1.0)
    return total / count


def stroke_mask(image28: np.ndarray, threshold: float = 0.2, dilate: int = 1) -> np.ndarray:
    """Bool 28x28: the digit's ink (> threshold), grown by `dilate` px in every direction (3x3 steps)."""
    m = torch.from_numpy(np.asarray(image28, np.float32) > threshold).float()[None, None]
    if dilate > 0:
        m = F.max_pool2d(m, 2 * dilate + 1, stride=1, padding=dilate)
    return m[0, 0].numpy() > 0


def mass_on_ink(attribution: np.ndarray, image28: np.ndarray, dilate: int = 1) -> float:
    """Share of the positive evidence that lies inside the dilated stroke mask (1.0 = all on the ink)."""
    pos = np.clip(np.asarray(attribution, np.float32), 0.0, None)
    total = float(pos.sum())
    if total <= 0:
        return float("nan")
    return float(pos[stroke_mask(image28, dilate=dilate)].sum() / total)


# ----------------------------------------------------------------------------------- explain

@dataclass(frozen=True)
class Explanation:
    prediction: Prediction
    attribution: np.ndarray | None   # signed 28x28, None when nothing was drawn
    target: int | None               # the class explained (the top class)
    method: str
    seconds: float

    @property
    def empty(self) -> bool:
        return self.prediction.empty


def explain_image28(predictor: Predictor, image28, method: str = DEFAULT_METHOD,
                    target: int | None = None) -> Explanation:
    """Prediction + saliency for a 28x28 image the network would see (a drawing's view, a test digit)."""
    t0 = time.perf_counter()
    img = check_image28(image28)
    _check_method(method)
    probs = predictor.probabilities(img[None])[0]
    pred = Prediction(probs, img, False)
    target = pred.digit if target is None else _check_target(target)
    attr = saliency(predictor.model, img, predictor.mean, predictor.std, target, method)
    return Explanation(pred, attr, target, method, time.perf_counter() - t0)


def explain(predictor: Predictor, drawing, method: str = DEFAULT_METHOD) -> Explanation:
    """The /explain logic: the same input as Predictor.predict (anything preprocess.prepare takes).

    PreprocessError for inputs that are not images; an empty Explanation (with the reason) for a
    blank canvas or a dot.
    """
    t0 = time.perf_counter()
    _check_method(method)
    prepared = prepare(drawing)
    if prepared.empty:
        return Explanation(Prediction(None, None, True, prepared.reason), None, None, method,
                           time.perf_counter() - t0)
    e = explain_image28(predictor, prepared.image, method)
    return Explanation(e.prediction, e.attribution, e.target, method, time.perf_counter() - t0)


# ----------------------------------------------------------------------------------- look-alikes

@dataclass(frozen=True)
class LookAlike:
    index: int            # in the training set
    label: int
    similarity: float     # cosine similarity of the pooled features, 1 = same direction
    image: np.ndarray     # uint8 28x28, as stored


def _unit(f: torch.Tensor) -> torch.Tensor:
    return f / f.norm(dim=1, keepdim=True).clamp_min(1e-12)


def quantise(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """[N, D] features -> (int8 codes [N, D], float32 scale [D]): codes * scale is the features to within
    half a step; each dimension's step is its largest |value| / QUANT_LEVELS."""
    f = features.float()
    scale = (f.abs().amax(0) / QUANT_LEVELS if len(f) else torch.ones(f.shape[1])).clamp_min(1e-12)
    return torch.round(f / scale).clamp(-QUANT_LEVELS, QUANT_LEVELS).to(torch.int8), scale


class FeatureIndex:
    """Pooled features of a set of images and the images themselves. The features are kept quantised
    (codes int8 [N, 16], scale float32 [16]: what the page gets) and searched as the unit-length rows of
    codes * scale (float32 [N, 16]), so the server and the page rank the same vectors.

    search() is one [M, 16] x [16, N] matrix product plus a top-k: cosine similarity (measured as
    good as L2 on this network, benchmarks/explain_latency.py; the quantisation's effect on the nearest 8:
    benchmarks/RESULTS.md, section 17).
    """

    def __init__(self, features: torch.Tensor, images: torch.Tensor, labels: torch.Tensor, seconds: float = 0.0):
        self.codes, self.scale = quantise(_unit(features.float()))
        self.features = _unit(self.codes.float() * self.scale)
        self.images, self.labels, self.seconds = images, labels, seconds

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def nbytes(self) -> int:
        """Memory held by the index itself (the images are shared with the data set)."""
        return (self.features.element_size() * self.features.nelement() + self.codes.nelement()
                + 4 * self.scale.nelement())

    @classmethod
    @torch.inference_mode()
    def build(cls, model: torch.nn.Module, images_u8: torch.Tensor, labels: torch.Tensor, mean: float, std: float,
              batch: int = 500) -> FeatureIndex:
        t0 = time.perf_counter()
        model.eval()
        out = [pooled_features(model, _normalized(images_u8[i:i + batch].float() / 255.0, mean, std))
               for i in range(0, len(images_u8), batch)]
        feats = torch.cat(out) if out else torch.zeros(0, 16)
        return cls(feats, images_u8, labels, time.perf_counter() - t0)

    def search(self, query: torch.Tensor, k: int = LOOKALIKES) -> tuple[torch.Tensor, torch.Tensor]:
        """[M, 16] (or [16]) query features -> (similarities [M, k], indices [M, k]), best first."""
        q = query.float().reshape(-1, self.features.shape[1])
        q = q / q.norm(dim=1, keepdim=True).clamp_min(1e-12)
        k = max(0, min(int(k), len(self)))
        sims, idx = torch.topk(q @ self.features.T, k, dim=1)
        return sims, idx


@torch.inference_mode()
def lookalikes(predictor: Predictor, index: FeatureIndex, image28, k: int = LOOKALIKES) -> list[LookAlike]:
    """The k training digits nearest to a 28x28 view in the network's own pooled features."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= int(k) <= 64:
        raise InsightError(f"k must be 1-64, got {k!r}")
    img = torch.from_numpy(check_image28(image28).copy())
    q = pooled_features(predictor.model, _normalized(img, predictor.mean, predictor.std))
    sims, idx = index.search(q, int(k))
    return [LookAlike(int(i), int(index.labels[i]), float(s), index.images[i].numpy())
            for s, i in zip(sims[0].tolist(), idx[0].tolist(), strict=True)]


# ----------------------------------------------------------------------------------- mistakes

@dataclass(frozen=True)
class Mistake:
    index: int            # in the test set
    true: int
    said: int
    confidence: float     # the model's probability for what it said
    image: np.ndarray     # uint8 28x28, as stored

    @property
    def caption(self) -> str:
        return f"true {self.true} -> said {self.said} ({self.confidence:.0%})"


@torch.inference_mode()
def find_mistakes(model: torch.nn.Module, images_u8: torch.Tensor, labels: torch.Tensor, mean: float, std: float,
                  batch: int = 500) -> list[Mistake]:
    """Every image the model gets wrong, most confident first (ties: by test index)."""
    model.eval()
    out = []
    for start in range(0, len(labels), batch):
        x = _normalized(images_u8[start:start + batch].float() / 255.0, mean, std)
        conf, said = model(x).exp().max(1)
        y = labels[start:start + batch]
        for j in torch.nonzero(said != y).flatten().tolist():
            out.append(Mistake(start + j, int(y[j]), int(said[j]), float(conf[j]), images_u8[start + j].numpy()))
    return sort_mistakes(out)


def sort_mistakes(mistakes: list[Mistake], order: str = SORT_ORDERS[0]) -> list[Mistake]:
    """Deterministic orders (a gallery position maps back to the same mistake every time)."""
    keys = {SORT_ORDERS[0]: lambda m: (-m.confidence, m.index),
            SORT_ORDERS[1]: lambda m: (m.confidence, m.index),
            SORT_ORDERS[2]: lambda m: (m.true, m.said, -m.confidence, m.index)}
    if order not in keys:
        raise InsightError(f"unknown order {order!r}; choose one of {', '.join(SORT_ORDERS)}")
    return sorted(mistakes, key=keys[order])


def confusion_from_mistakes(mistakes: list[Mistake], labels: torch.Tensor | np.ndarray) -> list[list[int]]:
    """Confusion matrix (rows = true class) rebuilt from the mistakes and the label counts."""
    counts = np.bincount(np.asarray(labels, np.int64), minlength=10)[:10]
    m = np.zeros((10, 10), np.int64)
    for x in mistakes:
        m[x.true, x.said] += 1
    m[np.arange(10), np.arange(10)] = counts - m.sum(1)
    return m.tolist()


def stored_confusion(checkpoint: dict | None) -> list[list[int]] | None:
    """The 10x10 confusion matrix a checkpoint stores in test_metrics, or None if it has none."""
    cm = ((checkpoint or {}).get("test_metrics") or {}).get("confusion_matrix")
    try:
        a = np.asarray(cm, np.int64)
    except (TypeError, ValueError):
        return None
    return a.tolist() if a.shape == (10, 10) and (a >= 0).all() else None


# ----------------------------------------------------------------------------------- service

def mnist_unavailable(data_dir) -> str | None:
    """None when all four MNIST files are on disk, else a one-line reason to show instead."""
    raw = raw_dir(resolve_data_dir(data_dir))
    missing = [n for n in FILES[True] + FILES[False] if not (raw / n).is_file()]
    if not missing:
        return None
    return (f"MNIST is not on disk (no {missing[0]} in {raw}): train once in the Train tab to download it, "
            "or start the app with --data-dir")


class InsightService:
    """MNIST (read once, shared) and, per loaded model, the feature index and the mistakes.

    Those are parts of the model (parts.py), built once per Predictor (the store makes a new Predictor
    when a checkpoint changes, so a retrained file gets fresh features); the feature index in the one
    background worker of `parts`. With a ModelStore as `parts` they live and go with the store's models
    under its bounds; by default (Parts()) they are kept weakly per Predictor. Thread-safe.
    """

    def __init__(self, data_dir: str | Path | None = None, parts: Parts | None = None) -> None:
        self.data_dir = data_dir
        self.parts = parts if parts is not None else Parts()
        self._data = None
        self._lock = threading.Lock()

    def unavailable(self) -> str | None:
        return None if self._data is not None else mnist_unavailable(self.data_dir)

    def data(self):
        """(train, test) Splits, read from disk once; DataError (one line) when missing or damaged."""
        with self._lock:
            if self._data is None:
                reason = mnist_unavailable(self.data_dir)
                if reason:
                    raise DataError(reason)
                raw = raw_dir(resolve_data_dir(self.data_dir))
                self._data = (read_split(raw, True), read_split(raw, False))
            return self._data

    @property
    def test_size(self) -> int:
        return len(self.data()[1])

    def _build_features(self, predictor: Predictor) -> FeatureIndex:
        train, _ = self.data()
        return FeatureIndex.build(predictor.model, train.images, train.labels, predictor.mean, predictor.std)

    def _find_mistakes(self, predictor: Predictor) -> list[Mistake]:
        _, test = self.data()
        return find_mistakes(predictor.model, test.images, test.labels, predictor.mean, predictor.std)

    def feature_index(self, predictor: Predictor) -> FeatureIndex:
        """The model's feature index, built in this thread if it is not yet."""
        return self.parts.part(predictor, "features", self._build_features)

    def ready_index(self, predictor: Predictor) -> FeatureIndex | None:
        """The model's feature index if it is built; else have the background worker build it (once) and
        return None, so a live drawing never waits for the one-time feature pass. A failed build
        (missing or damaged data: unavailable() says why) is tried again by the next call."""
        return self.parts.ready_part(predictor, "features", self._build_features)

    def lookalikes(self, predictor: Predictor, image28, k: int = LOOKALIKES) -> list[LookAlike]:
        return lookalikes(predictor, self.feature_index(predictor), image28, k)

    def mistakes(self, predictor: Predictor, order: str = SORT_ORDERS[0]) -> list[Mistake]:
        if order not in SORT_ORDERS:
            raise InsightError(f"unknown order {order!r}; choose one of {', '.join(SORT_ORDERS)}")
        return sort_mistakes(self.parts.part(predictor, "mistakes", self._find_mistakes), order)

    def confusion(self, predictor: Predictor, checkpoint: dict | None = None) -> list[list[int]] | None:
        """The stored confusion matrix of the checkpoint (or of predictor.test_metrics, if the
        Predictor keeps them); else rebuilt from the mistakes (needs MNIST); None when neither works."""
        if checkpoint is None:
            checkpoint = {"test_metrics": getattr(predictor, "test_metrics", None)}
        stored = stored_confusion(checkpoint)
        if stored is not None:
            return stored
        try:
            _, test = self.data()
            return confusion_from_mistakes(self.mistakes(predictor), test.labels)
        except DataError:
            return None


# ----------------------------------------------------------------------------------- one drawing

INDEXING_NOTE = "Indexing the 60,000 training digits for look-alikes (once per model, a few seconds)..."


@dataclass(frozen=True)
class DrawingInsight:
    """Everything the app shows about one drawing: the explanation, its look-alikes (None when
    they cannot be shown) and a one-line note (why not, or a summary)."""
    explanation: Explanation
    lookalikes: list[LookAlike] | None
    note: str


def inspect_drawing(service: InsightService, predictor: Predictor, drawing, method: str = DEFAULT_METHOD,
                    k: int = LOOKALIKES, wait_for_index: bool = False) -> DrawingInsight:
    """explain() + look-alikes of the drawing's 28x28 view. Never waits for the one-time feature pass
    unless wait_for_index (the note says it is being built); PreprocessError for non-images."""
    return _inspect(service, predictor, explain(predictor, drawing, method), k, wait_for_index)


def inspect_image28(service: InsightService, predictor: Predictor, image28, method: str = DEFAULT_METHOD,
                    k: int = LOOKALIKES, wait_for_index: bool = False) -> DrawingInsight:
    """The same for a 28x28 image (a test digit from the mistakes gallery)."""
    return _inspect(service, predictor, explain_image28(predictor, image28, method), k, wait_for_index)


def _inspect(service, predictor, e: Explanation, k: int, wait: bool) -> DrawingInsight:
    if e.empty:
        return DrawingInsight(e, None, "")
    reason = service.unavailable()
    if reason:
        return DrawingInsight(e, None, f"No look-alikes: {reason}.")
    try:
        index = service.feature_index(predictor) if wait else service.ready_index(predictor)
    except DataError as exc:
        return DrawingInsight(e, None, f"No look-alikes: {str(exc).splitlines()[0]}")
    if index is None:
        return DrawingInsight(e, None, INDEXING_NOTE)
    found = lookalikes(predictor, index, e.prediction.image, k)
    labels = [x.label for x in found]
    top = max(set(labels), key=labels.count)
    return DrawingInsight(e, found, f"{labels.count(top)} of the {len(found)} nearest training digits are {top}s.")
