"""Strokes -> the 28x28 MNIST-faithful image, straight from the geometry (no intermediate picture).

This is one of two implementations of the same arithmetic; the other is the page's JavaScript
(mnist_web/web/mnistnet.js, `prepareStrokes`). Both use float64 and the same formulas in the same
order, so the page and the server (`/classify_strokes`) give the same 28x28 image, within float
rounding. docs/how-it-works.md ("How a drawing becomes an MNIST digit") states the steps; in short:

1. Ink box: each segment (a one-point stroke is a dot) is first cut to the canvas widened by the brush
   radius r (Liang-Barsky: the part of it that can put ink inside); the box of what is left, widened
   by r and cut to the canvas, united over the segments. No stroke: "nothing drawn"; nothing inside
   the canvas: "no ink found".
2. Too small: if the box's longer side is under max(10% of the canvas's longer side, 3 px of the
   320-unit canvas), it is a dot or a tap: "too small to be a digit".
3. Scale: the longer side becomes BOX = 20 px (s = 20 / longer side, px per canvas unit); the box is
   nw x nh px, nw = round(width * s), nh = round(height * s). Every rounding here is half up with a
   1e-7 tolerance (`nearest`): a symmetric drawing puts its centre of mass exactly on a half pixel, and
   two languages must not round that tie differently because their sums differ in the last bit.
4. Ink of each of those pixels: the distance d (canvas units) from the pixel's centre to the nearest
   segment gives coverage clamp(0.5 + (r - d) * s, 0, 1), i.e. the stroke's edge anti-aliased over one
   output pixel; ink outside the canvas is cut the same way (clamp(0.5 + (distance inside) * s, 0, 1)).
5. Peak to 1, then the centre of mass goes to MNIST's centre (CENTER = 14.0, whole pixels, kept inside
   the 28 x 28 field), as preprocess.fit_to_mnist does for images.
"""
from __future__ import annotations

import numpy as np

from .preprocess import BOX, CENTER, FIELD, MIN_EXTENT, MIN_EXTENT_PX, Prepared
from .strokes import DEFAULT_SIDE, Strokes, parse_strokes

SEGMENT_CHUNK = 4096      # segments per distance pass: bounded memory for the largest allowed drawing
TIE = 1e-7                # nearest(): x.5 - TIE .. x.5 round up, whatever the last bits of a sum


def nearest(x: float) -> int:
    """Round half up, ties within TIE included (the page's JavaScript does the same)."""
    return int(np.floor(x + 0.5 + TIE))


def segments(s: Strokes) -> np.ndarray:
    """All segments as an (n, 4) float64 array of (ax, ay, bx, by); a one-point stroke is (a, a)."""
    parts = []
    for pts in s.strokes:
        p = np.asarray(pts, np.float64)
        parts.append(np.concatenate([p, p], 1) if len(p) == 1 else np.concatenate([p[:-1], p[1:]], 1))
    return np.concatenate(parts) if parts else np.zeros((0, 4))


def clip_segments(segs: np.ndarray, x0: float, y0: float, x1: float, y1: float) -> tuple[np.ndarray, np.ndarray]:
    """Liang-Barsky: each segment cut to the rectangle; (cut segments, which ones touch it)."""
    ax, ay, bx, by = segs.T
    dx, dy = bx - ax, by - ay
    t0, t1 = np.zeros(len(segs)), np.ones(len(segs))
    ok = np.ones(len(segs), bool)
    for p, q in ((-dx, ax - x0), (dx, x1 - ax), (-dy, ay - y0), (dy, y1 - ay)):
        zero = p == 0
        ok &= ~(zero & (q < 0))
        t = np.where(zero, 0.0, q / np.where(zero, 1.0, p))
        t0 = np.where(p < 0, np.maximum(t0, t), t0)
        t1 = np.where(p > 0, np.minimum(t1, t), t1)
    ok &= t0 <= t1
    return np.stack([ax + t0 * dx, ay + t0 * dy, ax + t1 * dx, ay + t1 * dy], 1), ok


def ink_box(s: Strokes, segs: np.ndarray) -> tuple[float, float, float, float] | None:
    """(x0, y0, x1, y1) in canvas units, as step 1 of the module's docstring says."""
    r = s.brush / 2
    cut, keep = clip_segments(segs, -r, -r, s.width + r, s.height + r)
    lo_x = np.maximum(np.minimum(cut[:, 0], cut[:, 2]) - r, 0.0)
    hi_x = np.minimum(np.maximum(cut[:, 0], cut[:, 2]) + r, float(s.width))
    lo_y = np.maximum(np.minimum(cut[:, 1], cut[:, 3]) - r, 0.0)
    hi_y = np.minimum(np.maximum(cut[:, 1], cut[:, 3]) + r, float(s.height))
    keep &= (hi_x > lo_x) & (hi_y > lo_y)
    if not keep.any():
        return None
    return float(lo_x[keep].min()), float(lo_y[keep].min()), float(hi_x[keep].max()), float(hi_y[keep].max())


def min_extent(s: Strokes) -> float:
    """The smallest ink box (longer side, canvas units) that counts as a digit."""
    longer = max(s.width, s.height)
    return max(MIN_EXTENT * longer, MIN_EXTENT_PX * max(1.0, longer / DEFAULT_SIDE))


def coverage(s: Strokes, segs: np.ndarray, xs: np.ndarray, ys: np.ndarray, scale: float) -> np.ndarray:
    """Ink in [0, 1] at the points (xs, ys) (canvas units); `scale` = output px per canvas unit."""
    best = np.full(xs.shape, np.inf)
    for k in range(0, len(segs), SEGMENT_CHUNK):
        ax, ay, bx, by = (segs[k:k + SEGMENT_CHUNK, i][None, :] for i in range(4))
        dx, dy = bx - ax, by - ay
        length2 = dx * dx + dy * dy
        px, py = xs[:, None] - ax, ys[:, None] - ay
        t = np.where(length2 > 0, (px * dx + py * dy) / np.where(length2 > 0, length2, 1.0), 0.0)
        t = np.clip(t, 0.0, 1.0)
        ex, ey = px - t * dx, py - t * dy
        best = np.minimum(best, (ex * ex + ey * ey).min(1))
    ink = np.clip(0.5 + (s.brush / 2 - np.sqrt(best)) * scale, 0.0, 1.0)
    inside = np.minimum(np.minimum(xs, s.width - xs), np.minimum(ys, s.height - ys))
    return ink * np.clip(0.5 + inside * scale, 0.0, 1.0)


def strokes_to_mnist(s: Strokes) -> Prepared:
    """Validated strokes -> Prepared (28x28 float32 in [0, 1], white on black) or an empty result."""
    if s.empty:
        return Prepared(None, True, "nothing drawn")
    segs = segments(s)
    box = ink_box(s, segs)
    if box is None:
        return Prepared(None, True, "no ink found")
    x0, y0, x1, y1 = box
    bw, bh = x1 - x0, y1 - y0
    longer = max(bw, bh)
    if longer < min_extent(s):
        return Prepared(None, True, "too small to be a digit")
    scale = BOX / longer
    nw, nh = max(1, nearest(bw * scale)), max(1, nearest(bh * scale))
    jj, ii = np.meshgrid(np.arange(nw, dtype=np.float64), np.arange(nh, dtype=np.float64))
    xs = x0 + (jj.ravel() + 0.5) * (bw / nw)
    ys = y0 + (ii.ravel() + 0.5) * (bh / nh)
    small = coverage(s, segs, xs, ys, scale).reshape(nh, nw)
    peak = float(small.max())
    if peak <= 0:
        return Prepared(None, True, "no ink found")
    small = small / peak
    mass = float(small.sum())
    cy = float((small.sum(1) * np.arange(nh)).sum()) / mass
    cx = float((small.sum(0) * np.arange(nw)).sum()) / mass
    top = int(np.clip(nearest(CENTER - cy), 0, FIELD - nh))
    left = int(np.clip(nearest(CENTER - cx), 0, FIELD - nw))
    out = np.zeros((FIELD, FIELD), np.float32)
    out[top:top + nh, left:left + nw] = small
    return Prepared(out, False)


def prepare_strokes(payload) -> Prepared:
    """The page's stroke payload (JSON text or dict) -> what the network sees; StrokeError if malformed."""
    return strokes_to_mnist(parse_strokes(payload))


def strokes_to_uint8(s: Strokes) -> np.ndarray | None:
    """Validated strokes as a uint8 28x28 image (what MNIST's files hold), None when it is no digit."""
    prep = strokes_to_mnist(s)
    return None if prep.empty else np.round(prep.image * 255).astype(np.uint8)
