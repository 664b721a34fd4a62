"""The network's architecture, described once: its stages, and what follows from them.

STAGES is the one description (name, kernel, channels, ReLU, BatchNorm, pooling); everything else is
computed from it, never typed in again:

- model.Net builds one module per stage from it (the same state_dict keys as always: checkpoints load);
- GEOMETRY: each stage's input channels, output side and receptive field (from kernels and pools);
- FOLDED: the BatchNorm-folded network that fold.py computes and the page runs (web/mnistnet.js):
  one layer per convolution, each with the pool after it and the stage whose BatchNorm folds into it;
- VIEWS: what the network view shows per stage (units.py, GET /mnist/weights' "stages", web/network.js).

    stage  kernel  channels  side  receptive field (px)
    conv1  3       8         26    3       Conv + ReLU
    conv2  3       16        24    5       Conv + ReLU + BatchNorm (+ Dropout)
    trans  1       8         12    6       1x1 Conv + max-pool 2 (shown as "transition")
    conv3  3       16        10    10      Conv + ReLU + BatchNorm, likewise conv4 .. conv6
    conv4  3       8         8     14
    conv5  3       16        6     18
    conv6  3       16        4     22
    gap    -       16        1     28      average over conv6's whole 4x4 map
    head   1       10        1     28      1x1 Conv: the 10 logits (shown as "out")

Every convolution is unpadded, stride 1 and has no bias (BatchNorm has its own shift, or the log-softmax
follows). A BatchNorm follows its stage's ReLU, so it folds into the *next* convolution (fold.py says
why); only an average pool may stand between them (a per-channel affine map commutes with a mean, not
with a max), which _check() enforces at import.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

ARCHITECTURE = "mnist-cnn-7416"
INPUT_SIDE = 28
INPUT_CHANNELS = 1


@dataclass(frozen=True)
class Stage:
    name: str              # the module of model.Net that computes it
    view: str              # its name in the network view, /activations and /unit
    channels: int          # output channels
    kernel: int = 0        # the convolution's kernel; 0: no convolution (a pool alone)
    relu: bool = False
    batchnorm: bool = False    # BatchNorm + Dropout after the ReLU (folded into the next convolution)
    pool: str = ""         # "max2": 2x2 max-pool after the convolution; "mean": average over the whole map


STAGES = (
    Stage("conv1", "conv1", 8, kernel=3, relu=True),
    Stage("conv2", "conv2", 16, kernel=3, relu=True, batchnorm=True),
    Stage("trans", "transition", 8, kernel=1, pool="max2"),
    Stage("conv3", "conv3", 16, kernel=3, relu=True, batchnorm=True),
    Stage("conv4", "conv4", 8, kernel=3, relu=True, batchnorm=True),
    Stage("conv5", "conv5", 16, kernel=3, relu=True, batchnorm=True),
    Stage("conv6", "conv6", 16, kernel=3, relu=True, batchnorm=True),
    Stage("gap", "gap", 16, pool="mean"),
    Stage("head", "out", 10, kernel=1),
)


class Geometry(NamedTuple):
    cin: int               # input channels
    side_in: int           # input side (square maps)
    side: int              # output side
    offset: int            # receptive field of an output cell (y, x): input rows offset + y * stride ...
    stride: int            # ... to offset + y * stride + size - 1 (and the same columns)
    size: int


class FoldedLayer(NamedTuple):
    name: str              # the stage of the convolution
    cin: int
    cout: int
    k: int
    relu: bool
    pool: str              # "", "max2" or "avg<side>" (the whole map: a following "mean" stage)
    folds: str | None      # the stage whose BatchNorm folds into this layer's weights and bias


class View(NamedTuple):
    name: str              # the view's name (Stage.view)
    stage: str             # the model's stage
    channels: int
    side: int
    layer: int             # which FOLDED layer computes it (its output, or before its pool: before_pool)
    before_pool: bool      # shown before the pool of its layer (the pool is a stage of its own)
    kind: str              # "map" (a clickable unit per channel), "pool" (one value per channel), "logits"
    folds: str | None      # the view whose BatchNorm is folded into its incoming weights (FoldedLayer.folds)
    receptive_field: tuple[int, int, int]    # (offset, stride, size)


def _geometry(stages) -> list[Geometry]:
    out, cin, side, rf, jump = [], INPUT_CHANNELS, INPUT_SIDE, 1, 1
    for s in stages:
        side_in = side
        if s.kernel:
            side -= s.kernel - 1
            rf += (s.kernel - 1) * jump
        window = {"max2": 2, "mean": side}.get(s.pool, 1)
        rf += (window - 1) * jump
        jump *= window
        side //= window
        out.append(Geometry(cin, side_in, side, 0, jump, rf))
        cin = s.channels
    return out


def _require(ok: bool, why: str) -> None:
    if not ok:
        raise ValueError(f"mnist_core.arch: {why}")


def _check(stages, geometry) -> None:
    """The rules the other modules rely on; a stage table that breaks one fails at import."""
    _require(stages[0].kernel > 0 and stages[-1].kernel > 0 and geometry[-1].side == 1,
             "the first and last stages are convolutions, the last one 1x1 in size")
    for i, (s, g) in enumerate(zip(stages, geometry, strict=True)):
        _require(s.pool in ("", "max2", "mean") and g.side >= 1, f"{s.name}: unknown pool or no map left")
        _require(not (s.batchnorm and s.pool), f"{s.name}: a BatchNorm cannot fold through its stage's pool")
        if not s.kernel:
            _require(s.pool == "mean" and s.channels == g.cin and not (s.relu or s.batchnorm),
                     f"{s.name}: a stage without a convolution is a mean over the map, nothing else")
            _require(stages[i - 1].kernel > 0 and not stages[i - 1].pool,
                     f"{s.name}: a mean follows a convolution without a pool")
        if s.pool == "max2":
            _require((g.side_in - s.kernel + 1) % 2 == 0, f"{s.name}: max-pool over an odd map")


def _folded(stages, geometry) -> list[FoldedLayer]:
    out, bn_from = [], None
    for i, (s, g) in enumerate(zip(stages, geometry, strict=True)):
        if not s.kernel:
            continue                                   # a mean: merged into the layer before (below)
        after = stages[i + 1] if i + 1 < len(stages) else None
        pool = f"avg{g.side}" if after is not None and not after.kernel else s.pool
        out.append(FoldedLayer(s.name, g.cin, s.channels, s.kernel, s.relu, pool, bn_from))
        bn_from = s.name if s.batchnorm else None
    return out


def _views(stages, geometry, folded) -> list[View]:
    layer_of = {f.name: n for n, f in enumerate(folded)}
    out, last = [], -1
    for s, g in zip(stages, geometry, strict=True):
        before_pool = s.kernel > 0 and folded[layer_of[s.name]].pool.startswith("avg")
        last = layer_of.get(s.name, last)
        kind = "logits" if s is stages[-1] else "map" if g.side > 1 else "pool"
        folds = folded[last].folds if s.kernel else None
        out.append(View(s.view, s.name, s.channels, g.side, last, before_pool, kind,
                        _view_name(stages, folds), (g.offset, g.stride, g.size)))
    return out


def _view_name(stages, name: str | None) -> str | None:
    return next((s.view for s in stages if s.name == name), None)


GEOMETRY = _geometry(STAGES)
_check(STAGES, GEOMETRY)
FOLDED = _folded(STAGES, GEOMETRY)
VIEWS = _views(STAGES, GEOMETRY, FOLDED)


def view_table() -> list[dict]:
    """VIEWS as JSON-able dicts: what the page lays its network view out from (GET /mnist/weights'
    "stages", and the network view's `stages` prop)."""
    return [{"name": v.name, "stage": v.stage, "channels": v.channels, "side": v.side, "layer": v.layer,
             "before_pool": v.before_pool, "kind": v.kind, "folds": v.folds,
             "receptive_field": dict(zip(("offset", "stride", "size"), v.receptive_field, strict=True))}
            for v in VIEWS]
