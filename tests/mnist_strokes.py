"""Real MNIST digits as pen strokes, placed as the parity tests have always placed them.

The tracing itself (4x enlargement, Zhang-Suen thinning, skeleton traced into polylines) lives in
mnist_core/redraw.py, which also re-draws whole splits in random styles for training and the drawn test set.
This module keeps the tests' own fixed placement: the page's brush (22), no slant, a random height (35-85% of
the canvas) and place, used by the page-vs-server parity tests and benchmarks/browser_latency.py.
"""
from __future__ import annotations

import numpy as np

from mnist_core.redraw import digit_strokes


def drawing(digit28: np.ndarray, height: float, top: float, left: float, side: int = 320,
            brush: float = 22.0) -> dict:
    """The page's stroke payload for `digit28` drawn with its ink box `height` units tall at (top, left)."""
    lines = digit_strokes(digit28)
    allp = np.concatenate(lines)
    y0, y1 = allp[:, 1].min(), allp[:, 1].max()
    x0, x1 = allp[:, 0].min(), allp[:, 0].max()
    k = min(height / max(y1 - y0, 1e-6), (side - left) / max(x1 - x0, 1e-6))   # a wide digit still fits
    strokes = [[[round(float(left + (x - x0) * k), 1), round(float(top + (y - y0) * k), 1)] for x, y in line]
               for line in lines]
    return {"width": side, "height": side, "brush": brush, "strokes": strokes}


def random_drawings(digits: np.ndarray, seed: int = 0, side: int = 320) -> list[dict]:
    """One drawing per digit, at a random height (35-85% of the canvas) and place, as people draw."""
    rng = np.random.default_rng(seed)
    out = []
    for d in digits:
        height = float(rng.uniform(0.35, 0.85) * side)
        top = float(rng.uniform(0.03 * side, side - height - 0.03 * side))
        left = float(rng.uniform(0.03 * side, 0.45 * side))
        out.append(drawing(d, height, top, left, side))
    return out
