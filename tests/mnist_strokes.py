"""Real MNIST digits as pen strokes: what a person drawing that digit with the mouse would send.

The digit is enlarged 4x, thresholded, thinned to a one-pixel skeleton (Zhang-Suen) and the skeleton
traced into polylines; the polylines are placed on the page's 320-unit canvas at a given size and
position and drawn with the page's brush. Used by the parity tests (page vs server) and to measure
drawn-digit accuracy of the stroke pipelines on real handwriting.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

UP = 4                         # enlargement before thinning: a smoother skeleton than at 28x28
NEIGHBOURS = [(-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1)]   # P2..P9, clockwise


def thin(mask: np.ndarray) -> np.ndarray:
    """Zhang-Suen thinning of a boolean image (vectorized sub-iterations)."""
    img = np.pad(mask.astype(np.uint8), 1)
    while True:
        changed = False
        for step in (0, 1):
            p = [np.roll(np.roll(img, -dy, 0), -dx, 1) for dy, dx in NEIGHBOURS]
            b = sum(p)
            seq = p + [p[0]]
            a = sum(((seq[i] == 0) & (seq[i + 1] == 1)).astype(np.uint8) for i in range(8))
            p2, p4, p6, p8 = p[0], p[2], p[4], p[6]
            if step == 0:
                c1, c2 = p2 * p4 * p6, p4 * p6 * p8
            else:
                c1, c2 = p2 * p4 * p8, p2 * p6 * p8
            kill = (img == 1) & (b >= 2) & (b <= 6) & (a == 1) & (c1 == 0) & (c2 == 0)
            if kill.any():
                img[kill] = 0
                changed = True
        if not changed:
            return img[1:-1, 1:-1].astype(bool)


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


def chain(lines: list[list[tuple[int, int]]], reach: float = 2.0) -> list[list[tuple[int, int]]]:
    """Join polylines whose ends meet (within `reach` px, either way round) into longer ones: the
    skeleton splits at every junction, a person's pen does not lift there."""
    lines = [list(line) for line in lines]
    joined = True
    while joined:
        joined = False
        for i, a in enumerate(lines):
            for j in range(i + 1, len(lines)):
                b = lines[j]
                for x, y, merged in ((a[-1], b[0], a + b), (a[-1], b[-1], a + b[::-1]),
                                     (a[0], b[-1], b + a), (a[0], b[0], b[::-1] + a)):
                    if abs(x[0] - y[0]) <= reach and abs(x[1] - y[1]) <= reach:
                        lines[i] = merged
                        del lines[j]
                        joined = True
                        break
                if joined:
                    break
            if joined:
                break
    return lines


def digit_strokes(digit28: np.ndarray) -> list[np.ndarray]:
    """A uint8 28x28 white-on-black digit -> polylines in 28x28 pixel coordinates (x, y), as floats."""
    big = np.asarray(Image.fromarray(np.asarray(digit28, np.uint8)).resize((28 * UP, 28 * UP), Image.BILINEAR))
    lines = chain(trace(thin(big >= 128)))
    out = []
    for line in lines:
        p = np.array([(c + 0.5, r + 0.5) for r, c in line], np.float64) / UP
        if len(p) > 2:             # every other point: still a smooth line, half the payload
            p = np.concatenate([p[:-1:2], p[-1:]])
        out.append(p)
    return out


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
