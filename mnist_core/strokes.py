"""Drawings sent as strokes: parse the page's JSON, check its bounds, render it with PIL.

The Draw tab's canvas (mnist_web/web/sketch.js) sends what the pen did, not a picture of it:

    {"width": 320, "height": 320, "brush": 22, "strokes": [[[x, y], [x, y], ...], ...]}

in the canvas's own logical coordinates (the same whatever size the canvas is shown at). A few
hundred bytes per update instead of a PNG upload; the server draws the polylines with round caps and
joins at the brush width and hands the picture to the MNIST-faithful preprocessing.

Everything arriving here is untrusted: sizes, counts and numbers are checked before any work is
done, and every refusal is a StrokeError with a short message that never echoes the payload.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

MAX_PAYLOAD_CHARS = 400_000   # JSON text; 20,000 points of "[123.4,56.7]," fit in about 280 KB
MAX_STROKES = 200             # a digit is 1-4 strokes; 200 is generous
MAX_POINTS = 20_000           # all strokes together (a slow, careful 10-second stroke is ~1,000)
MIN_SIDE, MAX_SIDE = 16, 4096  # canvas size the page may claim
MARGIN = 0.5                  # points may lie up to half a canvas outside it (a stroke leaving the square)
MIN_BRUSH, MAX_BRUSH = 1.0, 0.25  # brush width: at least 1 unit, at most a quarter of the canvas side
DEFAULT_SIDE = 320
DEFAULT_BRUSH = 22.0          # units on a 320 canvas: ~2.5 px at MNIST's 20 px scale, like its strokes


class StrokeError(ValueError):
    """The stroke payload is malformed or over a bound; the message says which, in a few words."""


@dataclass(frozen=True)
class Strokes:
    width: int
    height: int
    brush: float
    strokes: tuple[np.ndarray, ...]   # each (n, 2) float64 (the JSON numbers exactly), n >= 1

    @property
    def points(self) -> int:
        return sum(len(s) for s in self.strokes)

    @property
    def empty(self) -> bool:
        return not self.strokes


def _number(v, what: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise StrokeError(f"{what} must be a number")
    f = float(v)
    if not math.isfinite(f):
        raise StrokeError(f"{what} must be finite")
    return f


def _reject_constant(name: str):
    raise StrokeError(f"{name} is not a number this app accepts")


def parse_strokes(payload) -> Strokes:
    """The page's value (JSON text or an already decoded dict) -> validated Strokes.

    None or "" is an empty drawing. Raises StrokeError for anything malformed or over a bound.
    """
    if payload is None or (isinstance(payload, str) and not payload.strip()):
        return Strokes(DEFAULT_SIDE, DEFAULT_SIDE, DEFAULT_BRUSH, ())
    if isinstance(payload, (bytes, bytearray)):
        payload = bytes(payload).decode("utf-8", "replace")
    if isinstance(payload, str):
        if len(payload) > MAX_PAYLOAD_CHARS:
            raise StrokeError(f"the drawing is too large ({len(payload):,} characters; the limit is "
                              f"{MAX_PAYLOAD_CHARS:,})")
        try:
            payload = json.loads(payload, parse_constant=_reject_constant)
        except StrokeError:
            raise
        except (ValueError, RecursionError):
            raise StrokeError("the drawing is not valid JSON") from None
    if not isinstance(payload, dict):
        raise StrokeError("the drawing must be an object with width, height and strokes")
    width = _number(payload.get("width", DEFAULT_SIDE), "width")
    height = _number(payload.get("height", DEFAULT_SIDE), "height")
    if not (MIN_SIDE <= width <= MAX_SIDE and MIN_SIDE <= height <= MAX_SIDE):
        raise StrokeError(f"the canvas size must be between {MIN_SIDE} and {MAX_SIDE} a side")
    w, h = int(round(width)), int(round(height))
    brush = _number(payload.get("brush", DEFAULT_BRUSH * min(w, h) / DEFAULT_SIDE), "brush")
    if not MIN_BRUSH <= brush <= MAX_BRUSH * min(w, h):
        raise StrokeError("the brush width is out of range")
    raw = payload.get("strokes", [])
    if not isinstance(raw, list):
        raise StrokeError("strokes must be a list of point lists")
    if len(raw) > MAX_STROKES:
        raise StrokeError(f"too many strokes ({len(raw):,}; the limit is {MAX_STROKES})")
    total = 0
    for s in raw:
        if not isinstance(s, list):
            raise StrokeError("each stroke must be a list of [x, y] points")
        total += len(s)
        if total > MAX_POINTS:
            raise StrokeError(f"too many points (the limit is {MAX_POINTS:,})")
    lo_x, hi_x, lo_y, hi_y = -MARGIN * w, (1 + MARGIN) * w, -MARGIN * h, (1 + MARGIN) * h
    strokes = []
    for s in raw:
        if not s:
            continue  # an empty stroke draws nothing
        pts = np.empty((len(s), 2), np.float64)
        for i, p in enumerate(s):
            if not isinstance(p, (list, tuple)) or len(p) != 2:
                raise StrokeError("each point must be [x, y]")
            x, y = _number(p[0], "a coordinate"), _number(p[1], "a coordinate")
            if not (lo_x <= x <= hi_x and lo_y <= y <= hi_y):
                raise StrokeError("a point lies far outside the canvas")
            pts[i] = (x, y)
        strokes.append(pts)
    return Strokes(w, h, brush, tuple(strokes))


def render_strokes(s: Strokes, scale: float | None = None) -> np.ndarray:
    """Strokes -> uint8 grayscale image, black ink on white, round caps and joins at the brush width.

    `scale` shrinks the canvas before drawing (default: the longer side becomes at most 320 px):
    the preprocessing reduces everything to 20 px anyway, and a smaller canvas draws faster.
    """
    if scale is None:
        scale = min(1.0, DEFAULT_SIDE / max(s.width, s.height))
    w, h = max(1, round(s.width * scale)), max(1, round(s.height * scale))
    im = Image.new("L", (w, h), 255)
    draw = ImageDraw.Draw(im)
    width = max(1.0, s.brush * scale)
    r = width / 2
    for pts in s.strokes:
        xy = [(float(x) * scale, float(y) * scale) for x, y in pts]
        if len(xy) > 1:
            draw.line(xy, fill=0, width=max(1, round(width)), joint="curve")
        for x, y in (xy if len(xy) <= 2 else (xy[0], xy[-1])):  # round caps (and a dot for a tap)
            draw.ellipse((x - r, y - r, x + r, y + r), fill=0)
    return np.asarray(im)


def strokes_to_image(payload) -> np.ndarray | None:
    """The page's value -> the rendered drawing (black on white), or None when nothing is drawn."""
    s = parse_strokes(payload)
    return None if s.empty else render_strokes(s)
