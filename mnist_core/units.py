"""Inside the network: every stage's activations for one image, and what each unit looks for.

What a stage shows (the same numbers as the page's own forward pass, web/mnistnet.js, which runs the
BatchNorm-folded network of fold.py): the output of each block's ReLU, *before* its BatchNorm
(BatchNorm is folded into the next convolution, so the page never sees the normalized maps):

    conv1..conv6  Conv + ReLU           (PyTorch: the output of model.conv_k[1])
    transition    1x1 conv + max-pool   (PyTorch: the output of model.trans)
    gap           mean of conv6's 4x4 maps (the 16 pooled features before conv6's BatchNorm)
    out           the head's 10 logits  (PyTorch: model.head; log-softmax of these = the answer)

- stage_activations(): one 28x28 image -> {stage: array}, computed module by module in PyTorch.
- receptive_field(): (offset, stride, size) of a stage's cells in the 28x28 input (arch.VIEWS).
- UnitIndex: for every channel of the 7 map stages (8+16+8+16+8+16+16 = 88 channels), the 9 training
  digits with the highest peak activation, with where the peak is. Built in one pass over the 60,000
  (a few hundred bytes per channel); UnitService builds it once per model in the low-priority background
  worker (parts.py), as a part of the model.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from .arch import STAGES as ARCH_STAGES
from .arch import VIEWS
from .fold import fold
from .parts import PartFailed, Parts

# the view's stage names, their channels and map sizes (conv6: the 4x4 map before the average pool)
STAGES = [(v.name, v.channels, v.side) for v in VIEWS]
MAP_STAGES = [v.name for v in VIEWS if v.kind == "map"]          # the 7 stages a unit index covers
CHANNELS = {v.name: v.channels for v in VIEWS}
FOLD_LAYER = {v.name: v.layer for v in VIEWS if v.kind == "map"}   # the folded layer computing each map
_VIEW = {v.name: v for v in VIEWS}
TOP = 9
BATCH = 128          # digits per step of the index build: ~15 MB of activations at a time
PAUSE = 0.5          # the background build sleeps half as long as each batch took (2/3 of a core at most)
INDEXING_NOTE = "Finding the training digits each unit likes best (once per model, about 20-30 s)..."


RETRY_SECONDS = 60   # a failed index build is reported, not retried, for this long


class IndexFailed(RuntimeError):
    """The model's index could not be built (one line: why); a call after RETRY_SECONDS tries again."""


class UnitError(ValueError):
    """A request the unit functions cannot answer; the message says what was wrong."""


def check_unit(stage, channel) -> tuple[str, int]:
    if not isinstance(stage, str) or stage not in MAP_STAGES:
        raise UnitError(f"unknown stage {str(stage)[:40]!r}; choose one of {', '.join(MAP_STAGES)}")
    if isinstance(channel, bool) or not isinstance(channel, (int, np.integer, float)) \
            or float(channel) != int(channel) or not 0 <= int(channel) < CHANNELS[stage]:
        raise UnitError(f"channel must be a whole number 0-{CHANNELS[stage] - 1} for {stage}, got {channel!r}")
    return stage, int(channel)


def receptive_field(stage: str) -> tuple[int, int, int]:
    """(offset, stride, size) in input pixels: cell (y, x) of the stage sees rows offset + y*stride ...
    + size - 1 (and the same columns). Every convolution is unpadded, so the offset is 0."""
    if stage not in MAP_STAGES:
        raise UnitError(f"no receptive field for {stage!r}")
    return _VIEW[stage].receptive_field


def _maps(model: torch.nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """[N, 1, 28, 28] normalized -> every stage's output as the view defines it (module by module):
    a stage with a ReLU is shown after it, before its BatchNorm (and Dropout, a no-op in eval), which
    feed the next stage; a mean alone (gap) is shown over the maps shown before it, as the page's folded
    network computes it."""
    out, shown = {}, x
    for stage in ARCH_STAGES:
        block = getattr(model, stage.name)
        if not stage.kernel:
            out[stage.view] = shown.mean((2, 3), keepdim=True)
            x = block(x)
            continue
        layers = list(block) if isinstance(block, torch.nn.Sequential) else [block]
        cut = next(i + 1 for i, m in enumerate(layers) if isinstance(m, torch.nn.ReLU)) if stage.relu else len(layers)
        for layer in layers[:cut]:
            x = layer(x)
        out[stage.view] = shown = x
        for layer in layers[cut:]:
            x = layer(x)
    return out


@torch.inference_mode()
def stage_activations(model: torch.nn.Module, image28, mean: float, std: float) -> dict[str, np.ndarray]:
    """A 28x28 image in [0, 1] -> {stage: float32 [channels, h, w]} (gap and out: [channels])."""
    a = np.asarray(image28, np.float32)
    if a.shape != (28, 28) or not np.isfinite(a).all():
        raise UnitError(f"expected a finite 28x28 image, got shape {a.shape}")
    model.eval()
    x = ((torch.from_numpy(a.copy()) - mean) / std).reshape(1, 1, 28, 28)
    maps = _maps(model, x)
    return {k: (v[0, :, 0, 0] if k not in MAP_STAGES else v[0]).numpy() for k, v in maps.items()}


def unit_weights(model: torch.nn.Module, stage: str, channel: int) -> tuple[np.ndarray, float]:
    """The channel's incoming weights [cin, k, k] and bias as the page computes with them (fold.py:
    the BatchNorm before the layer folded in; conv1, conv2 and conv3 read unnormalized inputs)."""
    stage, channel = check_unit(stage, channel)
    w, b = fold(model.eval())[FOLD_LAYER[stage]]
    return w[channel].astype(np.float32), float(b[channel])


@dataclass(frozen=True)
class TopDigit:
    index: int           # in the 60,000 training digits
    label: int
    score: float         # the channel's peak activation on it
    peak: tuple[int, int]          # (y, x) of the peak in the stage's map
    box: tuple[int, int, int]      # (top, left, size) of the peak's receptive field in the 28x28 digit


class UnitIndex:
    """Per stage: scores [C, TOP] float32, indices [C, TOP] int32, peaks [C, TOP] int16 (flat y*w+x),
    best first; built in one pass over the images (batches of `batch`)."""

    def __init__(self, scores: dict, indices: dict, peaks: dict, labels: torch.Tensor, seconds: float = 0.0):
        self.scores, self.indices, self.peaks, self.labels, self.seconds = scores, indices, peaks, labels, seconds

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for d in (self.scores, self.indices, self.peaks) for a in d.values())

    @property
    def channels(self) -> int:
        return sum(len(a) for a in self.scores.values())

    @classmethod
    @torch.inference_mode()
    def build(cls, model: torch.nn.Module, images_u8: torch.Tensor, labels: torch.Tensor, mean: float, std: float,
              batch: int = BATCH, top: int = TOP, pause: float = 0.0) -> UnitIndex:
        """One pass over the images; after each batch, sleep `pause` times as long as it took (the app's
        background build leaves the cores to the drawing half of the time)."""
        t0 = time.perf_counter()
        model.eval()
        best_s = {s: torch.full((CHANNELS[s], 0), -np.inf) for s in MAP_STAGES}
        best_i = {s: torch.zeros((CHANNELS[s], 0), dtype=torch.int64) for s in MAP_STAGES}
        best_p = {s: torch.zeros((CHANNELS[s], 0), dtype=torch.int64) for s in MAP_STAGES}
        for start in range(0, len(images_u8), batch):
            tb = time.perf_counter()
            x = ((images_u8[start:start + batch].float() / 255.0 - mean) / std).reshape(-1, 1, 28, 28)
            maps = _maps(model, x)
            for s in MAP_STAGES:
                peak, where = maps[s].flatten(2).max(2)          # [n, C]
                n = peak.shape[0]
                s_all = torch.cat([best_s[s], peak.T], 1)
                i_all = torch.cat([best_i[s], (torch.arange(n) + start).expand(CHANNELS[s], n)], 1)
                p_all = torch.cat([best_p[s], where.T], 1)
                k = min(top, s_all.shape[1])
                best_s[s], pos = torch.topk(s_all, k, dim=1)
                best_i[s], best_p[s] = i_all.gather(1, pos), p_all.gather(1, pos)
            if pause > 0:
                time.sleep(pause * (time.perf_counter() - tb))
        return cls({s: v.numpy().astype(np.float32) for s, v in best_s.items()},
                   {s: v.numpy().astype(np.int32) for s, v in best_i.items()},
                   {s: v.numpy().astype(np.int16) for s, v in best_p.items()},
                   labels, time.perf_counter() - t0)

    def top(self, stage: str, channel: int) -> list[TopDigit]:
        stage, channel = check_unit(stage, channel)
        offset, stride, size = receptive_field(stage)
        width = _VIEW[stage].side
        out = []
        for score, index, flat in zip(self.scores[stage][channel], self.indices[stage][channel],
                                      self.peaks[stage][channel], strict=True):
            y, x = divmod(int(flat), width)
            out.append(TopDigit(int(index), int(self.labels[index]), float(score), (y, x),
                                (offset + y * stride, offset + x * stride, size)))
        return out


class UnitService:
    """One UnitIndex per loaded model, a part of the model (parts.py) built once in the one low-priority
    background worker, on the training digits of an InsightService (MNIST read once, shared with the
    look-alikes). Its parts are the InsightService's (with a ModelStore: under the store's bounds)."""

    def __init__(self, insight, pause: float = PAUSE, parts: Parts | None = None) -> None:
        self.insight, self.pause = insight, pause
        self.parts = parts if parts is not None else insight.parts

    def _build(self, predictor) -> UnitIndex:
        train, _ = self.insight.data()
        return UnitIndex.build(predictor.model, train.images, train.labels, predictor.mean, predictor.std,
                               pause=self.pause)

    def index(self, predictor) -> UnitIndex:
        """Build (or return) the model's index in this thread."""
        return self.parts.part(predictor, "units", self._build)

    def ready(self, predictor) -> UnitIndex | None:
        """The index if built; else have the background worker build it (once) and return None.
        IndexFailed when the last build failed less than RETRY_SECONDS ago (then the next call retries)."""
        try:
            return self.parts.ready_part(predictor, "units", self._build, RETRY_SECONDS)
        except PartFailed as exc:
            raise IndexFailed(str(exc)) from None
