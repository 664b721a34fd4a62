"""Synthetic handwriting: every digit drawn as canvas strokes in a few hands, some of which the shipped model
misreads (a 1 with a long flag read as 7, an 8 of two open curves, seven-segment digits, ...).

Each digit is a template of polylines in a unit box (x right, y down), jittered point by point and
drawn through redraw.place/payload in a random drawing style (slant, width, brush, size, place), so a
hand is a distribution of drawings, not one. Deterministic per (hand, digit, seed). Used by
tests/test_teach.py, tests/test_digitset.py, the web side's teach tests and benchmarks/teach.py.

    drawings(hand, per_digit, seed) -> [{"strokes": canvas JSON, "label": d}, ...]   (digit-major order)
    HANDS: the hands; MISREAD: the hands the shipped model misreads (benchmarks/teach.py measures how much)
"""
from __future__ import annotations

import numpy as np

from mnist_core.redraw import STYLE_RANGES, Style, payload, place


def arc(cx: float, cy: float, rx: float, ry: float, a0: float, a1: float, n: int = 16) -> np.ndarray:
    """Points of an elliptic arc, angles in degrees (0 = right, 90 = down: y points down)."""
    t = np.radians(np.linspace(a0, a1, n))
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], 1)


def line(*pts) -> np.ndarray:
    return np.asarray(pts, np.float64)


def cat(*parts) -> np.ndarray:
    return np.concatenate([np.asarray(p, np.float64) for p in parts])


# The ordinary hand: digits as MNIST writers make them.
PLAIN = {
    0: [arc(.5, .5, .36, .5, -90, 275, 24)],
    1: [line((.55, 0), (.5, 1))],
    2: [cat(arc(.5, .3, .36, .3, 200, 370), line((.55, .65), (.1, 1), (.9, 1)))],
    3: [cat(arc(.48, .25, .34, .25, -160, 90), arc(.48, .75, .38, .25, -90, 160))],
    4: [line((.6, 0), (.1, .65), (.95, .65)), line((.7, .3), (.7, 1))],
    5: [line((.85, 0), (.28, 0), (.22, .45)), arc(.48, .72, .38, .28, -125, 160)],
    6: [cat(arc(.85, .62, .7, .62, 240, 180, 10), arc(.5, .74, .35, .26, 180, 535, 20))],
    7: [line((.08, 0), (.9, 0), (.4, 1))],
    8: [cat(arc(.5, .25, .3, .25, 60, 420, 20), arc(.5, .74, .36, .26, -90, 270, 20))],
    9: [cat(arc(.5, .3, .36, .3, -10, 355, 20), line((.86, .25), (.8, .7), (.6, 1)))],
}

# What each hand changes. The "continental" hand: a 1 with a long flag (read as 7), a 7 with a cross bar,
# a 4 with an open top. The "loose" hand: loops left open (a 6 whose loop does not close, an 8 of two open
# curves, a 0, 2, 3 and 9 not closed). The "boxy" hand: every digit of straight strokes with square corners,
# like a seven-segment display. (Measured with the shipped model, 40 drawings each: a 1 with a long flag
# *and a base*, 9s and 6s with straight stems, 2s with a loop, Z-like 2s, flat-topped 3s, slashed 0s were
# all read right 97-100% of the time, so they are not hands it misreads; the 1 with a long flag and no
# base is read as 7 ~90% of the time, the open 6 as 5 40%, the 8 of two open curves as 5 or 3 90%.)
HAND_CHANGES = {
    "continental": {
        1: [line((0, .5), (.6, 0), (.6, 1))],
        7: [line((.05, .05), (.95, 0), (.35, 1)), line((.25, .5), (.85, .5))],
        4: [line((.15, 0), (.15, .55), (.95, .55)), line((.75, .3), (.75, 1))],
    },
    "loose": {
        0: [arc(.5, .5, .36, .5, -60, 235, 24)],
        2: [cat(arc(.5, .3, .36, .3, 230, 360), line((.86, .35), (.1, 1))), line((.25, 1), (.9, 1))],
        3: [arc(.48, .25, .34, .25, -160, 60), arc(.48, .75, .38, .25, -60, 160)],
        6: [cat(arc(.85, .62, .7, .62, 240, 180, 10), arc(.5, .74, .35, .26, 180, 420, 20))],
        8: [arc(.5, .25, .3, .25, 30, 330, 20), arc(.5, .74, .36, .26, 210, 510, 20)],
        9: [cat(arc(.5, .3, .36, .3, 40, 330, 20)), line((.86, .05), (.8, .7), (.6, 1))],
    },
    "boxy": {
        0: [line((0, 0), (1, 0), (1, 1), (0, 1), (0, 0))],
        2: [line((0, 0), (1, 0), (1, .5), (0, .5), (0, 1), (1, 1))],
        3: [line((0, 0), (1, 0), (1, 1), (0, 1)), line((.2, .5), (1, .5))],
        4: [line((0, 0), (0, .5), (1, .5)), line((1, 0), (1, 1))],
        5: [line((1, 0), (0, 0), (0, .5), (1, .5), (1, 1), (0, 1))],
        6: [line((1, 0), (0, 0), (0, 1), (1, 1), (1, .5), (0, .5))],
        7: [line((0, .15), (0, 0), (1, 0), (1, 1))],
        8: [line((0, 0), (1, 0), (1, 1), (0, 1), (0, 0)), line((0, .5), (1, .5))],
        9: [line((1, .5), (0, .5), (0, 0), (1, 0), (1, 1), (0, 1))],
    },
}
HANDS = ("plain", *HAND_CHANGES)
MISREAD = tuple(HAND_CHANGES)      # the hands the shipped model gets wrong more often than it should


def template(hand: str, digit: int) -> list[np.ndarray]:
    if hand != "plain" and hand not in HAND_CHANGES:
        raise KeyError(f"unknown hand {hand!r}; the hands are {', '.join(HANDS)}")
    return HAND_CHANGES.get(hand, {}).get(digit, PLAIN[digit])


def _jitter(lines: list[np.ndarray], rng: np.random.Generator, amount: float) -> list[np.ndarray]:
    """A hand is never the same twice: every point moved a little, the whole digit slightly warped."""
    warp = rng.normal(0, amount, (2, 2))
    out = []
    for p in lines:
        p = np.asarray(p, np.float64)
        p = p + p @ warp + rng.normal(0, amount / 2, p.shape)
        out.append(p)
    return out


def one(hand: str, digit: int, rng: np.random.Generator, jitter: float = 0.04) -> dict:
    """One drawing of `digit` in `hand` (the page's canvas JSON), drawn with rng."""
    lines = _jitter(template(hand, digit), rng, jitter)
    ranges = {**STYLE_RANGES, "slant": (-0.2, 0.2), "height": (0.4, 0.85)}
    style = Style(**{k: float(rng.uniform(lo, hi)) for k, (lo, hi) in ranges.items()})
    return payload(place(lines, style), style.brush)


def drawings(hand: str, per_digit: int, seed: int = 0, digits=range(10)) -> list[dict]:
    """per_digit drawings of each digit in `hand`: [{"strokes", "label"}], digit-major, the same for a seed
    (and a drawing does not depend on per_digit: the first k of a larger set are the k of a smaller one)."""
    out = []
    for d in digits:
        rng = np.random.default_rng([seed, HANDS.index(hand), d])
        out += [{"strokes": one(hand, d, rng), "label": d} for _ in range(per_digit)]
    return out
