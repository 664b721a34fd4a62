"""Teach a model your handwriting: fine-tune a checkpoint on a user's own drawings, mixed with MNIST.

A user's drawings are canvas strokes with the digit they meant (`{"strokes": <canvas JSON>, "label": 0-9}`,
at most MAX_DRAWINGS). `validate_drawings` checks them as /classify_strokes checks one drawing (and that
each one rasterises to a digit), refusing them all with one line on the first bad one. `split_held` keeps
some aside (at least one of every digit drawn 3+ times) to measure the teach on drawings it never saw.
`finetune` renders every taught drawing many times through raster.py (the page's own rasteriser), each
time changed as a hand changes it (redraw.restyle: slant, width, brush, size, place; then the recipe's
small rotation), and fine-tunes the network on batches that mix those with MNIST training digits, so it
learns the hand without forgetting MNIST. Its report: accuracy on the held-aside drawings and on the
MNIST test set, before and after. The result is a checkpoint like a training run's (teach_checkpoint).

The job of kind "teach" that the app's queue, worker processes and Ray backend run is
`mnist_core.jobs.run_teach_job` (spec: `teach_spec`'s docstring): it lives beside `run_job` in jobs.py,
which owns the job events, because jobs.py dispatches to it and this module must not import jobs.py back
(no import cycles). Everything it needs from here is `finetune_from_spec`.

Hyperparameters: TeachConfig, chosen by measurement (benchmarks/teach.py; see the field comments).
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import io
import json
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, fields

import numpy as np
import torch
import torch.nn.functional as F

from .batches import TensorBatches, rotate
from .checkpoint import FORMAT_VERSION, model_from_checkpoint
from .data import Split
from .evaluate import evaluate
from .raster import strokes_to_mnist, strokes_to_uint8
from .redraw import restyle
from .strokes import DEFAULT_SIDE, StrokeError, Strokes, parse_strokes

MAX_DRAWINGS = 500            # as many as the browser keeps in My digits
MAX_TOTAL_POINTS = 500_000    # all drawings together (a mouse digit is 50-300 points): bounds the render time
MIN_PER_DIGIT = 2             # a digit taught with fewer drawings is refused
HELD_FROM = 3                 # a digit drawn this many times or more keeps at least one aside
HELD_SHARE = 0.2              # ... and about this share of its drawings
EVAL_BATCH = 500
PROGRESS_EVERY = 10           # steps between on_progress calls


class TeachError(ValueError):
    """The drawings, the base model or the teach settings cannot be used; one line says why."""


class TeachStopped(Exception):
    """finetune was asked to stop (its `stop` flag) before it finished: nothing is returned."""


# ------------------------------------------------------------------------------ settings
@dataclass(frozen=True)
class TeachConfig:
    """Every hyperparameter of a teach, in one place. Chosen with benchmarks/teach.py (3 hands the shipped
    model misreads, 5 drawings a digit, fresh drawings and the MNIST test set before and after, 1 thread):
    lr 0.01 without distillation fixed the hands (99.6-100% fresh) but cost 0.15-0.38 MNIST points (99.10%
    on the boxy hand); a larger MNIST share (0.75) or lr 0.001-0.005 alone still cost 0.13-0.32; the
    drop is the taught shapes pulling MNIST look-alikes along (mnist_fraction 0.95 kept 99.45% but fixed
    only 94.6% of the boxy hand). Distillation on the MNIST half at lr 0.005 kept 99.29-99.41% with
    99.8-100% fresh; teaching only a few digits needs their share scaled (see _steps)."""
    steps: int = 200              # SGD steps of the fine-tune (~6 CPU s of the ~9 s a teach costs on 1 thread)
    lr: float = 0.005             # SGD learning rate at the start, decayed to 0 along a cosine
    momentum: float = 0.9
    batch: int = 64               # images per step, the user's and MNIST's together
    mnist_fraction: float = 0.5   # share of each batch that is MNIST training digits (keeps MNIST accuracy)
                                  # when all ten digits are taught; more when fewer are (_steps)
    renders: int = 2000           # augmented renderings of the taught drawings, all together (at least
                                  # 4 and at most 64 of each drawing)
    rotation: float = 7.0         # the recipe's rotation, +/- degrees, on every image of a batch
    slant: float = 0.25           # +/- shear of a drawing (redraw.restyle's slant)
    aspect: float = 0.15          # +/- relative width
    brush: tuple[float, float] = (14.0, 30.0)   # brush widths (units of a 320 canvas), as redraw.STYLE_RANGES
    scale: float = 0.1            # +/- relative size (moves the brush's width relative to the digit)
    shift: float = 0.03           # +/- move, fractions of the canvas (matters where a stroke leaves it)
    freeze_bn: bool = True        # keep BatchNorm's running statistics (those of MNIST) as they are
    distill: float = 1.0          # weight of KL(base's output || the new one's) on the MNIST digits of a batch:
                                  # holds the MNIST answers where the labels alone leave room
    seed: int = 0                 # renders, batches and rotations: the same seed gives the same model

    def __post_init__(self) -> None:
        checks = {"steps": (1, 5000), "lr": (1e-6, 1.0), "momentum": (0.0, 0.999), "batch": (2, 1024),
                  "mnist_fraction": (0.0, 0.95), "renders": (1, 50_000), "rotation": (0.0, 45.0),
                  "slant": (0.0, 1.0), "aspect": (0.0, 0.5), "scale": (0.0, 0.5), "shift": (0.0, 0.2),
                  "distill": (0.0, 100.0), "seed": (0, 2**31 - 1)}
        for name, (lo, hi) in checks.items():
            v = getattr(self, name)
            integer = isinstance(TeachConfig.__dataclass_fields__[name].default, int)
            if isinstance(v, bool) or not isinstance(v, int if integer else (int, float)) \
                    or not math.isfinite(v) or not lo <= v <= hi:
                raise TeachError(f"teach setting {name} must be {'an integer' if integer else 'a number'} "
                                 f"in [{lo:g}, {hi:g}]")
        b = self.brush
        if not (isinstance(b, (tuple, list)) and len(b) == 2 and all(isinstance(x, (int, float)) for x in b)
                and 1.0 <= b[0] <= b[1] <= 80.0):
            raise TeachError("teach setting brush must be (low, high) widths in [1, 80]")
        if not isinstance(self.freeze_bn, bool):
            raise TeachError("teach setting freeze_bn must be true or false")
        object.__setattr__(self, "brush", (float(b[0]), float(b[1])))

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["brush"] = list(self.brush)
        return d

    @classmethod
    def from_dict(cls, d: dict | None) -> TeachConfig:
        """From a job spec's dict; an unknown key is refused (a typo must not fall back to a default)."""
        if d is None:
            return cls()
        if not isinstance(d, dict):
            raise TeachError("teach settings must be an object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise TeachError(f"unknown teach setting {unknown[0]!r}")
        brush = d.get("brush")
        return cls(**{**d, **({"brush": tuple(brush)} if isinstance(brush, list) else {})})


# ------------------------------------------------------------------------------ the drawings
def _label(v, where: str) -> int:
    if isinstance(v, str) and len(v) == 1 and v.isdigit():
        return int(v)
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 9:
        raise TeachError(f"{where}: the label must be a digit 0-9")
    return v


def canonical(s: Strokes) -> dict:
    """Parsed strokes as the canvas JSON (every field explicit, numbers as floats)."""
    return {"width": s.width, "height": s.height, "brush": float(s.brush),
            "strokes": [[[float(x), float(y)] for x, y in p] for p in s.strokes]}


def validate_drawings(items) -> list[dict]:
    """A user's drawings -> [{"strokes": canvas JSON dict, "label": int}], or TeachError naming the first
    bad one ("drawing 7: ...", counting from 1). `items`: a list (or its JSON text) of
    {"strokes": canvas JSON dict or its text, "label": 0-9}; other keys are ignored."""
    if isinstance(items, (str, bytes, bytearray)):
        if len(items) > MAX_DRAWINGS * 400_000:
            raise TeachError("the drawings are too large")
        try:
            items = json.loads(items)
        except (ValueError, RecursionError):
            raise TeachError("the drawings are not valid JSON") from None
    if not isinstance(items, (list, tuple)):
        raise TeachError("the drawings must be a list of {strokes, label} objects")
    if not items:
        raise TeachError("there are no drawings")
    if len(items) > MAX_DRAWINGS:
        raise TeachError(f"too many drawings ({len(items):,}; the limit is {MAX_DRAWINGS})")
    out, points = [], 0
    for i, item in enumerate(items, 1):
        where = f"drawing {i}"
        if not isinstance(item, dict) or "strokes" not in item or "label" not in item:
            raise TeachError(f"{where}: must be an object with strokes and label")
        label = _label(item["label"], where)
        try:
            s = parse_strokes(item["strokes"])
        except StrokeError as exc:
            raise TeachError(f"{where}: {exc}") from None
        points += s.points
        if points > MAX_TOTAL_POINTS:
            raise TeachError(f"the drawings have too many points in all (the limit is {MAX_TOTAL_POINTS:,})")
        prep = strokes_to_mnist(s)
        if prep.empty:
            raise TeachError(f"{where}: {prep.reason}")
        out.append({"strokes": canonical(s), "label": label})
    return out


def held_indices(drawings: list[dict], seed: int = 0) -> list[int]:
    """The positions kept aside: of each digit drawn HELD_FROM+ times, about HELD_SHARE of its drawings (at
    least one), at random for the seed. Never refuses (digitset.to_zip uses it for any drawings)."""
    rng = np.random.default_rng(seed)
    held: set[int] = set()
    for digit, n in sorted(Counter(d["label"] for d in drawings).items()):
        if n >= HELD_FROM:
            idx = [i for i, d in enumerate(drawings) if d["label"] == digit]
            held.update(int(i) for i in rng.choice(idx, max(1, int(round(HELD_SHARE * n))), replace=False))
    return sorted(held)


def split_held(drawings: list[dict], seed: int = 0) -> tuple[list[dict], list[dict]]:
    """(taught, held aside) as held_indices says. TeachError when there are no drawings or a digit has
    fewer than MIN_PER_DIGIT of them."""
    if not drawings:
        raise TeachError("there are no drawings")
    counts = Counter(d["label"] for d in drawings)
    few = sorted(k for k, n in counts.items() if n < MIN_PER_DIGIT)
    if few:
        raise TeachError(f"too few drawings of {', '.join(map(str, few))}: draw each digit you teach at least "
                         f"{MIN_PER_DIGIT} times")
    held = set(held_indices(drawings, seed))
    return ([d for i, d in enumerate(drawings) if i not in held],
            [d for i, d in enumerate(drawings) if i in held])


# ------------------------------------------------------------------------------ rendering
def render(drawing: dict) -> np.ndarray | None:
    """A validated drawing as the network sees it: uint8 28x28 (raster.py, the page's twin), None if empty."""
    s = drawing["strokes"]
    strokes = tuple(np.asarray(p, np.float64).reshape(-1, 2) for p in s["strokes"])
    return strokes_to_uint8(Strokes(int(s["width"]), int(s["height"]), float(s["brush"]), strokes))


def render_all(drawings: list[dict]) -> Split:
    """Plain renders of validated drawings (each one rasterises: validate_drawings checked it)."""
    imgs = [render(d) for d in drawings]
    images = np.stack([np.zeros((28, 28), np.uint8) if im is None else im for im in imgs]) if imgs \
        else np.zeros((0, 28, 28), np.uint8)
    return Split(torch.from_numpy(images), torch.tensor([d["label"] for d in drawings], dtype=torch.int64))


def augmented(drawings: list[dict], cfg: TeachConfig, rng: np.random.Generator) -> Split:
    """Each drawing as drawn, then re-drawn (cfg.renders in all) as a hand varies: slant, width, brush,
    size, place (redraw.restyle), rasterised by raster.py."""
    per = int(np.clip(cfg.renders // max(1, len(drawings)), 4, 64))
    images, labels = [], []
    for d in drawings:
        s = d["strokes"]
        unit = min(s["width"], s["height"]) / DEFAULT_SIDE     # brush widths are given for a 320 canvas
        for k in range(per):
            if k == 0:
                variant = d
            else:
                u = rng.uniform(-1, 1, 5)
                variant = {"strokes": restyle(s, slant=cfg.slant * u[0], aspect=1 + cfg.aspect * u[1],
                                              brush=float(rng.uniform(*cfg.brush)) * unit,
                                              scale=1 + cfg.scale * u[2],
                                              shift=(cfg.shift * u[3], cfg.shift * u[4]))}
            img = render(variant)
            if img is not None:
                images.append(img)
                labels.append(d["label"])
    return Split(torch.from_numpy(np.stack(images)), torch.tensor(labels, dtype=torch.int64))


# ------------------------------------------------------------------------------ the fine-tune
def _base_model(base: dict) -> torch.nn.Module:
    if not isinstance(base, dict) or "state_dict" not in base or "model_args" not in base:
        raise TeachError("the base model is not an mnist_core checkpoint")
    try:
        return model_from_checkpoint(base)
    except Exception as exc:
        raise TeachError(f"the base model cannot be loaded: {str(exc).splitlines()[0][:160]}") from None


@torch.no_grad()
def accuracy(model: torch.nn.Module, split: Split, norm: dict) -> float:
    """% of split the model gets right (eval mode); nan for an empty split."""
    if len(split) == 0:
        return float("nan")
    return evaluate(model, TensorBatches(split.images, split.labels, EVAL_BATCH, shuffle=False,
                                         mean=norm["mean"], std=norm["std"]))["accuracy"]


def _train_mode(model: torch.nn.Module, freeze_bn: bool) -> None:
    model.train()
    if freeze_bn:
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.eval()


def _steps(model, mine: Split, train: Split, cfg: TeachConfig, norm: dict, gen: torch.Generator,
           on_progress, stop, teacher: torch.nn.Module | None = None) -> tuple[float, float]:
    """The SGD steps; returns the mean training loss and accuracy (%) over them. teacher: the base model,
    whose answers on the MNIST digits the new one is held to (cfg.distill)."""
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum)
    # The user's share of a batch is (1 - mnist_fraction) when all ten digits are taught, and shrinks with
    # the digits taught (k/10 of it): a teach of only 1s must not make every batch a third 1s (measured:
    # teaching three digits at the full share cost 0.6 points of MNIST test accuracy).
    k = len(torch.unique(mine.labels))
    n_mine = max(1, int(round(cfg.batch * (1 - cfg.mnist_fraction) * k / 10))) if len(train) else cfg.batch
    n_mnist = cfg.batch - n_mine
    loss_sum, correct, seen = 0.0, 0, 0
    _train_mode(model, cfg.freeze_bn)
    for step in range(1, cfg.steps + 1):
        if stop is not None and stop.is_set():
            raise TeachStopped
        for g in opt.param_groups:
            g["lr"] = cfg.lr * 0.5 * (1 + math.cos(math.pi * (step - 1) / cfg.steps))
        i = torch.randint(len(mine), (n_mine,), generator=gen)
        j = torch.randint(len(train), (n_mnist,), generator=gen) if n_mnist else torch.zeros(0, dtype=torch.long)
        x = torch.cat([mine.images[i], train.images[j]]).unsqueeze(1).float().div_(255.0)
        y = torch.cat([mine.labels[i], train.labels[j]])
        x = rotate(x, cfg.rotation, gen, "nearest").sub_(norm["mean"]).div_(norm["std"])
        out = model(x)
        loss = F.nll_loss(out, y)
        if teacher is not None and cfg.distill > 0 and n_mnist:
            with torch.no_grad():
                target = teacher(x[n_mine:])
            loss = loss + cfg.distill * F.kl_div(out[n_mine:], target, log_target=True, reduction="batchmean")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_sum += loss.item() * len(y)
        correct += int((out.argmax(1) == y).sum())
        seen += len(y)
        if on_progress is not None and (step % PROGRESS_EVERY == 0 or step == cfg.steps):
            on_progress(step, cfg.steps, loss_sum / seen, 100.0 * correct / seen)
    model.eval()
    return loss_sum / seen, 100.0 * correct / seen


def finetune(base: dict, drawings: list[dict], train: Split, test: Split, cfg: TeachConfig = TeachConfig(),
             on_progress: Callable[[int, int, float, float], None] | None = None,
             stop=None, held: list[dict] | None = None, base_name: str | None = None) -> tuple[dict, dict]:
    """Fine-tune the checkpoint dict `base` on the user's drawings; returns (checkpoint dict, report).

    drawings: validate_drawings' output; held aside by split_held(drawings, cfg.seed) unless `held` is
    given (then `drawings` are all taught). base_name: the checkpoint's "base". train: MNIST training
    digits mixed into every batch; test: the MNIST test set of the report. on_progress(step, steps,
    mean loss, mean accuracy %) every PROGRESS_EVERY steps; stop.is_set() is checked before every step
    (TeachStopped). TeachError for bad drawings, too few of them or an unusable base.
    report: held_before, held_after (% right of the held-aside drawings; nan when none), mnist_before,
    mnist_after (MNIST test %), taught, held (counts), seconds (the whole teach)."""
    t0 = time.perf_counter()
    if held is None:
        taught, held = split_held(drawings, cfg.seed)
    else:
        taught = drawings
        split_held(taught, cfg.seed)        # the same refusal for too few
    model = _base_model(base)
    norm = base.get("normalization") or {}
    if not {"mean", "std"} <= set(norm):
        raise TeachError("the base model has no input normalization")
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    mine = augmented(taught, cfg, np.random.default_rng(cfg.seed))
    held_split = render_all(held)
    held_before = accuracy(model, held_split, norm)
    mnist_before = accuracy(model, test, norm)
    teacher = _base_model(base) if cfg.distill > 0 else None
    loss, acc = _steps(model, mine, train, cfg, norm, gen, on_progress, stop, teacher)
    metrics = evaluate(model, TensorBatches(test.images, test.labels, EVAL_BATCH, shuffle=False,
                                            mean=norm["mean"], std=norm["std"]))
    report = {"held_before": held_before, "held_after": accuracy(model, held_split, norm),
              "mnist_before": mnist_before, "mnist_after": metrics["accuracy"],
              "taught": len(taught), "held": len(held), "seconds": time.perf_counter() - t0}
    record = {"epoch": 1, "epochs": 1, "lr": cfg.lr, "train_loss": loss, "train_accuracy": acc,
              "test_loss": metrics["loss"], "test_accuracy": metrics["accuracy"], "seconds": report["seconds"]}
    return teach_checkpoint(base, model, metrics, record, report, cfg, base_name), report


def teach_checkpoint(base: dict, model: torch.nn.Module, metrics: dict, record: dict, report: dict,
                     cfg: TeachConfig, base_name: str | None = None) -> dict:
    """The taught model as a run's checkpoint (train.Trainer.checkpoint's layout): one 'epoch', the teach,
    whose record carries the report too; plus "teach" (the report), "teach_config" and "base" (the base
    model's name). The base's "novelty" statistics (helper data of the base's features) are not carried
    over: they describe the base network's features, which the teach has changed."""
    weights = {k: v.detach().cpu().clone(memory_format=torch.contiguous_format) for k, v in model.state_dict().items()}
    return {
        "format_version": FORMAT_VERSION,
        "model_args": dict(base["model_args"]),
        "state_dict": weights,
        "normalization": dict(base["normalization"]),
        "config": dict(base.get("config") or {}),      # the recipe the base was trained with
        "history": [{**record, **report}],
        "test_metrics": metrics,
        "status": "complete",
        "epochs_completed": 1,
        "best": {"epoch": 1, "test_accuracy": metrics["accuracy"], "state_dict": weights},
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "torch_version": str(torch.__version__),
        "teach": dict(report),
        "teach_config": cfg.to_dict(),
        "base": base_name or "model",
    }


# ------------------------------------------------------------------------------ the job's part
def teach_spec(spec: dict) -> tuple[dict, list[dict], TeachConfig]:
    """A job spec of kind "teach" checked: (base checkpoint dict, validated drawings, TeachConfig).

    spec: {"kind": "teach", "base": <checkpoint bytes>, "base_name": str, "drawings": [...],
           "data_dir": str | None, "download": bool, "threads": int, "teach": TeachConfig dict (optional)}
    """
    raw = spec.get("base")
    if not isinstance(raw, (bytes, bytearray)) or not raw:
        raise TeachError("the teach job has no base model")
    try:
        base = torch.load(io.BytesIO(bytes(raw)), map_location="cpu", weights_only=True)
    except Exception:
        raise TeachError("the base model is not a readable checkpoint") from None
    _base_model(base)
    return base, validate_drawings(spec.get("drawings")), TeachConfig.from_dict(spec.get("teach"))
