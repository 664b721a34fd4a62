"""MNIST re-drawn as canvas strokes: what the page's rasteriser makes of each digit, at scale.

A digit is enlarged 4x, thresholded, thinned to a one-pixel skeleton (Zhang-Suen) and the skeleton traced
into polylines (`digit_strokes`): the strokes a person drawing that digit with a mouse would make. Where
the ink is much thicker than the digit's own stroke (a loop written so small and bold that it filled in:
a blob-headed 6 or 9, a bold 8), its core is cut out first, so the pen goes round it as the writer's did
instead of thinning the blob to a line (a 6 re-drawn as an L). The
polylines are then placed on the page's 320-unit canvas in a drawing style (`Style`: how tall, how slanted,
how wide, which brush) and rasterised by `raster.py`, the page's twin, so the network sees exactly what
it sees for a real drawing: uniform width, an anti-aliased round brush, the page's own centering.

Tracing costs ~6 ms a digit (thinning by table, chaining by array), so the polylines of a split are
traced once and cached (`traced`), and each styled, rasterised set (`drawn`) is cached too, in the
project's own cache folder (`cache_dir`: .cache/ beside the package, git-ignored; $MNIST_CACHE_DIR
overrides). Files are named by a hash of the digits they come from, so another data set never reads a
stale cache, and a missing file is rebuilt (a progress bar on request). Nothing is ever written under
the data root (the real MNIST may be read-only).

Used by: training on MNIST plus its re-drawn twin (`TrainConfig.drawn`), the drawn test set (all 10,000
test digits, `DRAWN_TEST_SEED`), the parity and drawn-accuracy tests, benchmarks/drawn_accuracy.py, and
`restyle` for the strokes a user teaches (teach.py).
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import astuple, dataclass
from multiprocessing import current_process, get_context
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .data import Split
from .raster import strokes_to_uint8
from .strokes import DEFAULT_BRUSH, DEFAULT_SIDE, Strokes

UP = 4                         # enlargement before thinning: a smoother skeleton than at 28x28
NEIGHBOURS = [(-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1)]   # P2..P9, clockwise
CACHE_ENV = "MNIST_CACHE_DIR"
CACHE_VERSION = 2              # bump when tracing or styling changes: old cache files are then ignored
# Ink deeper than CORE x the digit's stroke half-width is a filled-in loop: cut out, traced round (`open_blobs`).
# Chosen on 10,000 training digits (50,000-59,999) re-drawn in random styles, read by the recipe's model:
# 191 misread with no cut, 170 at 2.0, 142 at 1.7, 148 at 1.5 (the test digits were not used).
CORE = 1.7
CHUNK = 500                    # digits per task of the process pool
DRAWN_TRAIN_SEED = 0           # the styles of the re-drawn training digits (training's twin)
DRAWN_TEST_SEED = 1            # the styles of the drawn test set (the measure of drawn-digit accuracy)


# ------------------------------------------------------------------------------ tracing
def _thin_tables() -> np.ndarray:
    """Zhang-Suen's test for each of the 256 neighbourhoods (bit k = neighbour P2+k, clockwise from
    north), for its two sub-iterations: (2, 256) booleans, True = the pixel is removed."""
    bits = (np.arange(256)[:, None] >> np.arange(8)) & 1            # (256, 8): P2..P9
    b = bits.sum(1)
    a = ((bits == 0) & (np.roll(bits, -1, 1) == 1)).sum(1)            # 0 -> 1 transitions round P2..P9, P2
    p2, p4, p6, p8 = bits[:, 0], bits[:, 2], bits[:, 4], bits[:, 6]
    base = (b >= 2) & (b <= 6) & (a == 1)
    return np.stack([base & (p2 * p4 * p6 == 0) & (p4 * p6 * p8 == 0),
                     base & (p2 * p4 * p8 == 0) & (p2 * p6 * p8 == 0)])


THIN_TABLES = _thin_tables()


def thin(mask: np.ndarray) -> np.ndarray:
    """Zhang-Suen thinning of a boolean image: each sub-iteration looks every pixel's 8 neighbours up
    in THIN_TABLES at once (parallel removal, as the algorithm is defined)."""
    img = np.pad(mask.astype(np.uint8), 1)            # a border of background: every ink pixel has 8 neighbours
    h, w = mask.shape
    inner = img[1:-1, 1:-1]                           # a view: removing from it removes from img
    while True:
        changed = False
        for step in (0, 1):
            code = np.zeros((h, w), np.int32)
            for k, (dy, dx) in enumerate(NEIGHBOURS):
                code |= img[1 + dy:1 + dy + h, 1 + dx:1 + dx + w].astype(np.int32) << k
            kill = (inner == 1) & THIN_TABLES[step][code]
            if kill.any():
                inner[kill] = 0
                changed = True
        if not changed:
            return inner.astype(bool)


def trace(skeleton: np.ndarray) -> list[list[tuple[int, int]]]:
    """Skeleton pixels -> polylines of (row, col), every 8-neighbour link used once."""
    pts = {tuple(p) for p in np.argwhere(skeleton)}
    links = {p: [(p[0] + dy, p[1] + dx) for dy, dx in NEIGHBOURS if (p[0] + dy, p[1] + dx) in pts] for p in pts}
    used: set[frozenset] = set()
    lines = []
    # endpoints first, then junctions, then whatever is left (closed loops)
    order = sorted(pts, key=lambda p: (len(links[p]) != 1, len(links[p]) < 3, p))
    for start in order:
        while True:
            free = [q for q in links[start] if frozenset((start, q)) not in used]
            if not free:
                break
            line, cur = [start], start
            while True:
                nxt = [q for q in links[cur] if frozenset((cur, q)) not in used]
                if not nxt:
                    break
                q = nxt[0]
                used.add(frozenset((cur, q)))
                line.append(q)
                cur = q
            lines.append(line)
    isolated = [p for p in pts if not links[p]]
    return lines + [[p] for p in isolated]


def _join(a: list, b: list, reach: float) -> list | None:
    """a and b as one polyline when an end of one meets an end of the other (either way round)."""
    for x, y, merged in ((a[-1], b[0], a + b), (a[-1], b[-1], a + b[::-1]),
                         (a[0], b[-1], b + a), (a[0], b[0], b[::-1] + a)):
        if abs(x[0] - y[0]) <= reach and abs(x[1] - y[1]) <= reach:
            return merged
    return None


def chain(lines: list[list[tuple[int, int]]], reach: float = 2.0) -> list[list[tuple[int, int]]]:
    """Join polylines whose ends meet (within `reach` px) into longer ones: the skeleton splits at every
    junction, a person's pen does not lift there. Always the first pair (i < j, in order) that meets is
    joined next, found for all pairs at once from the lines' end points."""
    lines = [list(line) for line in lines]
    while len(lines) > 1:
        ends = np.array([[line[0], line[-1]] for line in lines], np.float64)          # (n, 2 ends, 2)
        gap = np.abs(ends[:, None, :, None, :] - ends[None, :, None, :, :]).max(-1)   # (n, n, 2, 2)
        meets = np.triu((gap <= reach).any((2, 3)), 1)
        if not meets.any():
            break
        i, j = (int(v) for v in np.argwhere(meets)[0])                             # row-major: first pair
        lines[i] = _join(lines[i], lines[j], reach)
        del lines[j]
    return lines


def depth(mask: np.ndarray) -> np.ndarray:
    """For each ink pixel, its chessboard distance to the background (1 on the edge); 0 off the ink."""
    d = np.zeros(mask.shape, np.int32)
    cur = mask.astype(bool)
    h, w = mask.shape
    while cur.any():
        d += cur
        p = np.pad(cur, 1)
        eroded = cur.copy()
        for dy in (0, 1, 2):
            for dx in (0, 1, 2):
                eroded &= p[dy:dy + h, dx:dx + w]
        cur = eroded
    return d


def open_blobs(mask: np.ndarray) -> np.ndarray:
    """The skeleton of a digit's ink, with filled-in loops traced round: where the ink is deeper than CORE
    times the digit's own stroke half-width (the median depth along its skeleton), that core is cut out
    before thinning, which then leaves a loop around it."""
    skeleton = thin(mask)
    if not skeleton.any():
        return skeleton
    d = depth(mask)
    core = d > CORE * np.median(d[skeleton])
    return thin(mask & ~core) if core.any() else skeleton


def digit_strokes(digit28: np.ndarray) -> list[np.ndarray]:
    """A uint8 28x28 white-on-black digit -> polylines in 28x28 pixel coordinates (x, y), as floats.
    An empty image gives no polylines."""
    big = np.asarray(Image.fromarray(np.asarray(digit28, np.uint8)).resize((28 * UP, 28 * UP), Image.BILINEAR))
    out = []
    for line in chain(trace(open_blobs(big >= 128))):
        p = np.array([(c + 0.5, r + 0.5) for r, c in line], np.float64) / UP
        if len(p) > 2:             # every other point: still a smooth line, half the payload
            p = np.concatenate([p[:-1:2], p[-1:]])
        out.append(p)
    return out


# ------------------------------------------------------------------------------ drawing styles
@dataclass(frozen=True)
class Style:
    """How one digit is drawn on the page's canvas."""
    height: float = 0.6            # the ink box's height, as a fraction of the canvas side
    slant: float = 0.0             # shear: x moves by slant * (height above the box's middle); + leans right
    aspect: float = 1.0            # width multiplier (a narrow or a wide hand)
    brush: float = DEFAULT_BRUSH   # brush width, canvas units (the page's default is 22)
    top: float = 0.2               # where the ink box starts, fractions of the free room (0..1)
    left: float = 0.2

    @property
    def pen_px(self) -> float:
        """The stroke's width in the 28x28 image (its 20 px box), roughly: what a brush width means."""
        return self.brush * 20.0 / (self.height * DEFAULT_SIDE + self.brush)


# (low, high) of each style field when drawn at random: the sizes, slants and pens people use on the page.
# Measured on 3,000 test digits with the recipe's model: each range alone costs 0.0-0.3 points of accuracy;
# drawing itself (uniform pen, traced strokes) costs ~1.4.
STYLE_RANGES = {"height": (0.3, 0.9), "slant": (-0.25, 0.25), "aspect": (0.8, 1.2), "brush": (16.0, 28.0),
                "top": (0.0, 1.0), "left": (0.0, 1.0)}


def random_style(rng: np.random.Generator) -> Style:
    return Style(**{k: float(rng.uniform(lo, hi)) for k, (lo, hi) in STYLE_RANGES.items()})


def place(lines: Iterable[np.ndarray], style: Style, side: int = DEFAULT_SIDE) -> list[np.ndarray]:
    """Polylines (any units) drawn in `style` on a side x side canvas: slanted, scaled so the ink box is
    style.height of the canvas tall (narrower if it would not fit), put at style.top/left of the room."""
    lines = [np.asarray(p, np.float64) for p in lines]
    allp = np.concatenate(lines)
    mid = (allp[:, 1].min() + allp[:, 1].max()) / 2
    lines = [np.stack([p[:, 0] * style.aspect + style.slant * (mid - p[:, 1]), p[:, 1]], 1) for p in lines]
    allp = np.concatenate(lines)
    (x0, y0), (x1, y1) = allp.min(0), allp.max(0)
    room = side - 2 * (0.03 * side + style.brush / 2)
    k = min(style.height * side / max(y1 - y0, 1e-6), room / max(x1 - x0, 1e-6), room / max(y1 - y0, 1e-6))
    w, h = (x1 - x0) * k, (y1 - y0) * k
    margin = 0.03 * side + style.brush / 2
    ox = margin + style.left * max(side - 2 * margin - w, 0.0)
    oy = margin + style.top * max(side - 2 * margin - h, 0.0)
    return [np.round(np.stack([ox + (p[:, 0] - x0) * k, oy + (p[:, 1] - y0) * k], 1), 1) for p in lines]


def payload(lines: Iterable[np.ndarray], brush: float = DEFAULT_BRUSH, side: int = DEFAULT_SIDE) -> dict:
    """Canvas polylines as the page's stroke JSON (what /classify_strokes takes)."""
    return {"width": side, "height": side, "brush": float(brush),
            "strokes": [[[float(x), float(y)] for x, y in p] for p in lines]}


def drawing(digit28: np.ndarray, style: Style = Style(), side: int = DEFAULT_SIDE) -> dict:
    """The page's stroke payload for a 28x28 digit drawn in `style`."""
    return payload(place(digit_strokes(digit28), style, side), style.brush, side)


def render(lines: Iterable[np.ndarray], style: Style, side: int = DEFAULT_SIDE) -> np.ndarray | None:
    """Polylines drawn in `style`, through the page's rasteriser: uint8 28x28, or None if it is no digit."""
    return strokes_to_uint8(Strokes(side, side, float(style.brush), tuple(place(lines, style, side))))


def restyle(drawing_payload: dict, *, slant: float = 0.0, aspect: float = 1.0, brush: float | None = None,
            scale: float = 1.0, shift: tuple[float, float] = (0.0, 0.0)) -> dict:
    """A drawing (the page's stroke JSON, already validated) changed as a hand might change it: slanted,
    narrower or wider, another brush, scaled about its middle, moved (fractions of the canvas)."""
    w, h = drawing_payload["width"], drawing_payload["height"]
    strokes = [np.asarray(s, np.float64).reshape(-1, 2) for s in drawing_payload["strokes"]]
    allp = np.concatenate(strokes)
    cx, cy = (allp.min(0) + allp.max(0)) / 2
    out = []
    for p in strokes:
        x = cx + (p[:, 0] - cx) * aspect * scale + slant * (cy - p[:, 1]) + shift[0] * w
        y = cy + (p[:, 1] - cy) * scale + shift[1] * h
        out.append(np.stack([x, y], 1))
    return payload(out, drawing_payload["brush"] if brush is None else brush, w) | {"height": h}


# ------------------------------------------------------------------------------ the cache
def cache_dir() -> Path:
    """The project's cache folder: $MNIST_CACHE_DIR, else .cache/ beside this package (git-ignored)."""
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else Path(__file__).resolve().parent.parent / ".cache"


def digest(images: torch.Tensor | np.ndarray) -> str:
    """A short name for a set of digits: the same images always give the same cache files."""
    arr = np.ascontiguousarray(np.asarray(images, np.uint8))
    return hashlib.sha1(arr.tobytes() + str(arr.shape).encode()).hexdigest()[:16]


@dataclass
class Traced:
    """The polylines of many digits, flat: points (P, 2) float32 in 28x28 pixel units, stroke_ends (S,)
    int64 (each stroke's end in points), digit_ends (N,) int64 (each digit's end in strokes)."""
    points: np.ndarray
    stroke_ends: np.ndarray
    digit_ends: np.ndarray

    def __len__(self) -> int:
        return len(self.digit_ends)

    def lines(self, i: int) -> list[np.ndarray]:
        s0 = int(self.digit_ends[i - 1]) if i else 0
        ends = self.stroke_ends[s0:int(self.digit_ends[i])]
        if not len(ends):
            return []
        starts = np.concatenate([[int(self.stroke_ends[s0 - 1]) if s0 else 0], ends[:-1]])
        return [self.points[a:b].astype(np.float64) for a, b in zip(starts, ends, strict=True)]

    @classmethod
    def of(cls, drawings: list[list[np.ndarray]]) -> Traced:
        strokes = [p for d in drawings for p in d]
        points = np.concatenate(strokes).astype(np.float32) if strokes else np.zeros((0, 2), np.float32)
        return cls(points, np.cumsum([len(p) for p in strokes], dtype=np.int64),
                   np.cumsum([len(d) for d in drawings], dtype=np.int64))

    @classmethod
    def join(cls, parts: list[Traced]) -> Traced:
        return cls.of([t.lines(i) for t in parts for i in range(len(t))])


def _trace_chunk(images: np.ndarray) -> Traced:
    return Traced.of([digit_strokes(d) for d in images])


def _render_chunk(args: tuple[Traced, np.ndarray]) -> np.ndarray:
    traced, styles = args
    out = np.zeros((len(traced), 28, 28), np.uint8)
    for i in range(len(traced)):
        lines = traced.lines(i)
        img = render(lines, Style(*styles[i])) if lines else None
        if img is not None:
            out[i] = img
    return out


def _pool_map(fn, tasks: list, workers: int | None, progress: str | None) -> list:
    """fn over tasks in `workers` processes (1: here), in order, with a tqdm bar when `progress` names it."""
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(tasks), desc=progress, unit="chunk")
    workers = max(1, min(workers or os.cpu_count() or 1, len(tasks) or 1))
    if current_process().daemon:     # a worker process of the app (or Ray's) may not start processes: here
        workers = 1
    out = []
    if workers == 1:
        for t in tasks:
            out.append(fn(t))
            bar and bar.update()
    else:
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as ex:
            for r in ex.map(fn, tasks):
                out.append(r)
                bar and bar.update()
    bar and bar.close()
    return out


def _guard(path: Path, data_root: Path | None) -> None:
    if data_root is not None and Path(data_root).resolve() in path.resolve().parents:
        raise ValueError(f"the cache folder {path.parent} is inside the data folder {data_root}; "
                         f"set ${CACHE_ENV} to somewhere else")


def _save_npz(path: Path, **arrays) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    os.replace(tmp, path)


def traced(images: torch.Tensor | np.ndarray, *, cache: Path | None = None, workers: int | None = None,
           progress: bool = False, data_root: Path | None = None) -> Traced:
    """The polylines of every digit in `images` (uint8 [N, 28, 28]), from the cache or traced now."""
    images = np.asarray(images, np.uint8)
    path = (cache or cache_dir()) / f"traced-v{CACHE_VERSION}-{digest(images)}.npz"
    _guard(path, data_root)
    if path.exists():
        try:
            with np.load(path) as z:
                return Traced(z["points"], z["stroke_ends"], z["digit_ends"])
        except (OSError, KeyError, ValueError):
            pass                      # unreadable: trace again
    chunks = [images[i:i + CHUNK] for i in range(0, len(images), CHUNK)]
    t = Traced.join(_pool_map(_trace_chunk, chunks, workers, "tracing digits" if progress else None))
    _save_npz(path, points=t.points, stroke_ends=t.stroke_ends, digit_ends=t.digit_ends)
    return t


def styles_for(n: int, seed: int) -> np.ndarray:
    """n random styles (rows of Style's fields, float64), the same for the same seed."""
    rng = np.random.default_rng(seed)
    return np.array([astuple(random_style(rng)) for _ in range(n)], np.float64)


def _drawn_path(images, seed: int, cache: Path | None) -> Path:
    styles = hashlib.sha1(repr(sorted(STYLE_RANGES.items())).encode()).hexdigest()[:6]   # ranges changed: redraw
    return (cache or cache_dir()) / f"drawn-v{CACHE_VERSION}-{digest(images)}-{styles}-s{seed}.npz"


def drawn(split: Split, seed: int, *, cache: Path | None = None, workers: int | None = None,
          progress: bool = False, data_root: Path | None = None) -> tuple[Split, np.ndarray]:
    """`split` re-drawn: each digit traced, drawn in a random style (from `seed`) and rasterised as the
    page does. Returns (the drawn Split, the styles (N, 6) as Style's fields). Cached."""
    images = np.asarray(split.images, np.uint8)
    path = _drawn_path(images, seed, cache)
    _guard(path, data_root)
    styles = styles_for(len(images), seed)
    if path.exists():
        try:
            with np.load(path) as z:
                return Split(torch.from_numpy(z["images"]), split.labels.clone()), styles
        except (OSError, KeyError, ValueError):
            pass
    t = traced(images, cache=cache, workers=workers, progress=progress, data_root=data_root)
    tasks = [(Traced.of([t.lines(i) for i in range(a, min(a + CHUNK, len(t)))]), styles[a:a + CHUNK])
             for a in range(0, len(t), CHUNK)]
    out = np.concatenate(_pool_map(_render_chunk, tasks, workers, "drawing digits" if progress else None)
                         or [np.zeros((0, 28, 28), np.uint8)])
    _save_npz(path, images=out)
    return Split(torch.from_numpy(out), split.labels.clone()), styles


def twin_seed(variant: int) -> int:
    """The style seed of the training twins' `variant`-th style set (0, 100, 200, ...: never the test
    set's DRAWN_TEST_SEED, nor a calibration seed)."""
    return DRAWN_TRAIN_SEED + 100 * variant


def with_drawn(train: Split, fraction: float, limit: int | None = None, variants: int = 1,
               **kw) -> tuple[Split, list[torch.Tensor]]:
    """The first `limit` training digits (all when None) plus round(fraction x that) of their re-drawn
    twins (the first ones: MNIST's order is already mixed), and the twins' images in each of `variants`
    style sets (a trainer swaps them in, one per epoch; [] when there are no twins). Read from the whole
    split's cache when it is there, else only the first `limit` are re-drawn (and cached).
    fraction 0: the recipe's set as it is."""
    n = min(limit or len(train), len(train))
    base = Split(train.images[:n], train.labels[:n])
    k = int(round(fraction * n))
    if k <= 0:
        return base, []
    sets = []
    for v in range(max(1, variants)):
        seed = twin_seed(v)
        full_cached = _drawn_path(train.images, seed, kw.get("cache")).exists()
        twin, _ = drawn(train if full_cached or n == len(train) else base, seed, **kw)
        sets.append(twin.images[:k])
    return Split(torch.cat([base.images, sets[0]]), torch.cat([base.labels, train.labels[:k]])), sets
