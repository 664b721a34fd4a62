"""Edge cases of the stroke payload, shared by the raster tests and the page-vs-server parity test."""
from __future__ import annotations

import math


def _circle(cx, cy, rx, ry, n=32):
    return [[round(cx + rx * math.sin(2 * math.pi * i / n), 1), round(cy - ry * math.cos(2 * math.pi * i / n), 1)]
            for i in range(n + 1)]


def _p(strokes, width=320, height=320, brush=22.0):
    return {"width": width, "height": height, "brush": brush, "strokes": strokes}


SEVEN = [[[60, 50], [160, 50], [260, 50]], [[260, 50], [200, 160], [140, 280]]]
ZIGZAG = [[[40 + 12 * i, 60 + (150 if i % 2 else 0)] for i in range(21)]]

EDGE_CASES = {
    "nothing": _p([]),
    "empty stroke": _p([[]]),
    "dot": _p([[[160, 160]]]),
    "tap": _p([[[100, 100], [101.5, 100.5]]]),
    "short dash (too small)": _p([[[150, 150], [158, 150]]]),
    "just big enough": _p([[[150, 140], [150, 151]]]),
    "horizontal line": _p([[[30, 160], [290, 160]]]),
    "vertical line (a 1)": _p([[[160, 30], [163, 290]]]),
    "seven": _p(SEVEN),
    "zero": _p([_circle(160, 160, 70, 110)]),
    "huge zero past the edges": _p([_circle(160, 160, 200, 230)]),
    "stroke leaving the square": _p([[[200, 60], [330, 160], [420, 300]], [[200, 60], [120, 250]]]),
    "all outside the square": _p([[[-100, -100], [-40, -20]], [[400, 350], [460, 470]]]),
    "tiny seven": _p([[[[x * 0.12 + 150, y * 0.12 + 150] for x, y in s] for s in SEVEN]][0]),
    "small seven in a corner": _p([[[x * 0.3 + 4, y * 0.3 + 4] for x, y in s] for s in SEVEN]),
    "zigzag scribble": _p(ZIGZAG),
    "ambiguous scrawl (not sure)": _p([[[40.4, 273.6], [111.6, 115.4], [254.0, 180.4]]]),
    "thin brush": _p(SEVEN, brush=1.0),
    "wide brush": _p(SEVEN, brush=80.0),
    "big canvas": _p([[[2 * x, 2 * y] for x, y in s] for s in SEVEN], 640, 640, 44.0),
    "non-square canvas": _p([[[x, 0.5 * y] for x, y in s] for s in SEVEN], 320, 160, 22.0),
    "smallest canvas": _p([[[2, 2], [14, 2], [6, 14]]], 16, 16, 1.0),
    "200 strokes": _p([[[40 + (i % 20) * 12, 40 + (i // 20) * 24], [46 + (i % 20) * 12, 52 + (i // 20) * 24]]
                       for i in range(200)]),
    "19,000 points": _p([[[160 + 100 * math.sin(i / 300), 160 + 120 * math.cos(i / 190)] for i in range(19_000)]]),
}
