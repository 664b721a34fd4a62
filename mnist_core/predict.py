"""Predictor: a loaded checkpoint plus the preprocessing, used identically by the CLI and the app."""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

from .checkpoint import describe, load_checkpoint, model_from_checkpoint
from .novelty import Scorer, forward_with_features
from .preprocess import normalize_image, prepare

# Below this top probability the app says "not sure" instead of presenting the guess as certain.
# Measured with the shipped model on the 10,000 MNIST test digits: 99.64% have a top probability of
# at least 0.6 (and 99.59% of those are right); the other 36 are right only 69% of the time.
UNSURE_BELOW = 0.6

# Intra-op threads for one prediction (set per calling thread). A 28x28 forward pass is far too small
# to split: on the 2-core machine with other work running, 2 OpenMP threads made /classify_strokes 10x
# slower than 1 (34 vs 2.5 ms p50; with the explanation 194 vs 22 ms), and a server runs several
# requests at once anyway. Training runs in worker processes with threads of their own (mnist_web.backends).
INFERENCE_THREADS = 1


def use_inference_threads() -> None:
    if torch.get_num_threads() != INFERENCE_THREADS:
        torch.set_num_threads(INFERENCE_THREADS)


@dataclass(frozen=True)
class Prediction:
    probabilities: np.ndarray | None   # [10] floats summing to 1, or None when empty
    image: np.ndarray | None           # the 28x28 [0, 1] image the network saw
    empty: bool
    reason: str = ""
    novelty: float | None = None       # the "not a digit" score (novelty.py); None: the model has no stats
    novelty_threshold: float | None = None   # the model's stored threshold for it

    @property
    def not_a_digit(self) -> bool:
        """The drawing does not look like any digit the model knows (its score is over the threshold)."""
        return not self.empty and self.novelty is not None and self.novelty > self.novelty_threshold

    @property
    def digit(self) -> int | None:
        return None if self.empty else int(np.argmax(self.probabilities))

    @property
    def confidence(self) -> float:
        return 0.0 if self.empty else float(np.max(self.probabilities))

    @property
    def unsure(self) -> bool:
        return not self.empty and self.confidence < UNSURE_BELOW

    def top(self, k: int = 3) -> list[tuple[int, float]]:
        if self.empty:
            return []
        order = np.argsort(-self.probabilities)[:k]
        return [(int(d), float(self.probabilities[d])) for d in order]

    def as_dict(self) -> dict:
        return {"empty": self.empty, "reason": self.reason, "digit": self.digit,
                "confidence": round(self.confidence, 6), "unsure": self.unsure, "not_a_digit": self.not_a_digit,
                "novelty": None if self.novelty is None else round(self.novelty, 6),
                "probabilities": None if self.empty else [round(float(p), 6) for p in self.probabilities]}


class Predictor:
    def __init__(self, model: torch.nn.Module, normalization: dict, name: str = "", description: str = "",
                 test_metrics: dict | None = None, novelty: dict | None = None) -> None:
        self.model = model.eval()
        self.novelty = Scorer.of(novelty)  # the "not a digit" stats (ckpt["novelty"]), None without usable ones
        self.test_metrics = test_metrics   # the checkpoint's stored evaluation (the Inspect tab's confusion matrix)
        self.mean, self.std = float(normalization["mean"]), float(normalization["std"])
        self.name = name
        self.description = description

    @classmethod
    def from_checkpoint(cls, ckpt: dict, name: str = "") -> Predictor:
        return cls(model_from_checkpoint(ckpt), ckpt["normalization"], name, describe(ckpt), ckpt.get("test_metrics"),
                   ckpt.get("novelty"))

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> Predictor:
        return cls.from_checkpoint(load_checkpoint(path), os.fspath(path))

    @torch.inference_mode()
    def probabilities(self, images28: np.ndarray) -> np.ndarray:
        """[N, 28, 28] images in [0, 1] -> [N, 10] class probabilities."""
        use_inference_threads()
        x = torch.from_numpy(normalize_image(images28, self.mean, self.std))
        return self.model(x).exp().numpy()

    @torch.inference_mode()
    def predict(self, drawing) -> Prediction:
        use_inference_threads()
        prepared = prepare(drawing)
        if prepared.empty:
            return Prediction(None, None, True, prepared.reason)
        x = torch.from_numpy(normalize_image(prepared.image, self.mean, self.std))
        if self.novelty is None:
            return Prediction(self.model(x)[0].exp().numpy(), prepared.image, False)
        logp, feats = forward_with_features(self.model, x)
        score = float(self.novelty.score(feats.double().numpy())[0])
        return Prediction(logp[0].exp().numpy(), prepared.image, False, novelty=score,
                          novelty_threshold=self.novelty.threshold)

    @torch.inference_mode()
    def novelty_scores(self, images28: np.ndarray) -> np.ndarray | None:
        """[N, 28, 28] images in [0, 1] -> [N] "not a digit" scores, or None when the model has no stats."""
        if self.novelty is None:
            return None
        use_inference_threads()
        x = torch.from_numpy(normalize_image(images28, self.mean, self.std))
        return self.novelty.score(forward_with_features(self.model, x)[1].double().numpy())
