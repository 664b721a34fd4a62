"""Drawings that are not digits, as the page's stroke JSON: the non-digit set of the "Not a digit?" score.

Letters that do not look like digits, symbols, shapes, scribbles and two digits side by side, each a few
polylines typed in here (no font file, no outside data) in a unit box (x right, y down), then drawn the
way a person would draw them on the canvas: every point wobbled a little, the whole turned a few degrees,
and placed with a random drawing style of `mnist_core.redraw` (size, slant, width, brush, place), through
`redraw.place`/`redraw.payload`, the same path as the re-drawn digits. `drawings(seed)` is deterministic.

Used by tests/test_novelty.py, tests/e2e/test_not_a_digit.py and the not-a-digit figures (python -m
tests.nondigit_strokes prints how many each rule flags).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mnist_core import redraw

Line = list[tuple[float, float]]


def arc(cx: float, cy: float, rx: float, ry: float, a0: float, a1: float, n: int = 16) -> Line:
    """Points on an ellipse from angle a0 to a1 (degrees, 0 = right, 90 = down: canvas y grows down)."""
    t = np.radians(np.linspace(a0, a1, n))
    return [(cx + rx * np.cos(a), cy + ry * np.sin(a)) for a in t]


def _star() -> list[Line]:
    pts = [(0.5 + 0.5 * np.cos(np.radians(-90 + 144 * k)), 0.5 + 0.5 * np.sin(np.radians(-90 + 144 * k)))
           for k in range(6)]
    return [pts]


def _spiral() -> list[Line]:
    t = np.linspace(0, 3 * 2 * np.pi, 60)
    r = 0.05 + 0.45 * t / t[-1]
    return [list(zip(0.5 + r * np.cos(t), 0.5 + r * np.sin(t), strict=True))]


def _heart() -> list[Line]:
    t = np.linspace(0, 2 * np.pi, 40)
    x, y = 16 * np.sin(t) ** 3, -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
    return [list(zip(x / 34 + 0.5, y / 34 + 0.5, strict=True))]


# name -> polylines in a unit box; letters and symbols chosen not to look like a digit
LETTERS: dict[str, list[Line]] = {
    "A": [[(0, 1), (0.5, 0), (1, 1)], [(0.22, 0.6), (0.78, 0.6)]],
    "E": [[(0.8, 0), (0, 0), (0, 1), (0.8, 1)], [(0, 0.5), (0.6, 0.5)]],
    "F": [[(0.8, 0), (0, 0), (0, 1)], [(0, 0.5), (0.6, 0.5)]],
    "H": [[(0, 0), (0, 1)], [(0.8, 0), (0.8, 1)], [(0, 0.5), (0.8, 0.5)]],
    "K": [[(0, 0), (0, 1)], [(0.8, 0), (0, 0.55)], [(0.25, 0.4), (0.8, 1)]],
    "M": [[(0, 1), (0, 0), (0.5, 0.6), (1, 0), (1, 1)]],
    "N": [[(0, 1), (0, 0), (0.8, 1), (0.8, 0)]],
    "R": [[(0, 1), (0, 0)] + arc(0, 0.27, 0.6, 0.27, -90, 90, 10) + [(0, 0.54)], [(0.25, 0.54), (0.75, 1)]],
    "W": [[(0, 0), (0.25, 1), (0.5, 0.35), (0.75, 1), (1, 0)]],
    "X": [[(0, 0), (1, 1)], [(1, 0), (0, 1)]],
    "Y": [[(0, 0), (0.5, 0.5), (1, 0)], [(0.5, 0.5), (0.5, 1)]],
    "B": [[(0, 0), (0, 1)], [(0, 0)] + arc(0, 0.25, 0.55, 0.25, -90, 90, 10),
          [(0, 0.5)] + arc(0, 0.75, 0.65, 0.25, -90, 90, 10)],
    "G": [arc(0.5, 0.5, 0.5, 0.5, -40, -320, 24) + [(0.95, 0.55), (0.55, 0.55)]],
    "Q": [arc(0.5, 0.5, 0.5, 0.5, 0, 360, 28), [(0.6, 0.7), (1.05, 1.1)]],
    "k": [[(0, 0), (0, 1)], [(0.6, 0.4), (0, 0.75)], [(0.2, 0.65), (0.65, 1)]],
    "m": [[(0, 1), (0, 0.4)] + arc(0.25, 0.55, 0.25, 0.2, 180, 360, 8) + [(0.5, 1)],
          [(0.5, 0.55)] + arc(0.75, 0.55, 0.25, 0.2, 180, 360, 8) + [(1, 1)]],
}
SYMBOLS: dict[str, list[Line]] = {
    "plus": [[(0.5, 0), (0.5, 1)], [(0, 0.5), (1, 0.5)]],
    "equals": [[(0, 0.3), (1, 0.3)], [(0, 0.7), (1, 0.7)]],
    "hash": [[(0.35, 0), (0.25, 1)], [(0.75, 0), (0.65, 1)], [(0, 0.33), (1, 0.33)], [(0, 0.67), (1, 0.67)]],
    "percent": [[(0.9, 0), (0.1, 1)], arc(0.18, 0.18, 0.16, 0.16, 0, 360, 12), arc(0.82, 0.82, 0.16, 0.16, 0, 360, 12)],
    "at": [arc(0.5, 0.5, 0.18, 0.22, 0, 360, 14)
           + [(0.68, 0.7)] + arc(0.5, 0.5, 0.48, 0.48, 45, 350, 26)],
    "times": [[(0.1, 0.1), (0.9, 0.9)], [(0.9, 0.1), (0.1, 0.9)], [(0.5, 0.05), (0.5, 0.95)]],
    "dollar": [[(0.5, -0.1), (0.5, 1.1)], arc(0.5, 0.28, 0.35, 0.25, 0, -270, 12)[::-1]
               + arc(0.5, 0.75, 0.35, 0.25, -90, 180, 12)],
}
SHAPES: dict[str, list[Line]] = {
    "star": _star(),
    "house": [[(0, 0.45), (0.5, 0), (1, 0.45), (0, 0.45), (0, 1), (1, 1), (1, 0.45)], [(0.4, 1), (0.4, 0.7),
                                                                                      (0.6, 0.7), (0.6, 1)]],
    "smiley": [arc(0.5, 0.5, 0.5, 0.5, 0, 360, 28), arc(0.5, 0.5, 0.28, 0.25, 20, 160, 10),
               [(0.33, 0.32), (0.34, 0.36)], [(0.67, 0.32), (0.66, 0.36)]],
    "arrow_right": [[(0, 0.5), (1, 0.5)], [(0.65, 0.15), (1, 0.5), (0.65, 0.85)]],
    "arrow_up": [[(0.5, 1), (0.5, 0)], [(0.15, 0.35), (0.5, 0), (0.85, 0.35)]],
    "arrow_left": [[(1, 0.5), (0, 0.5)], [(0.35, 0.15), (0, 0.5), (0.35, 0.85)]],
    "heart": _heart(),
    "spiral": _spiral(),
    "triangle": [[(0.5, 0), (1, 0.9), (0, 0.9), (0.5, 0)]],
    "square": [[(0, 0), (1, 0), (1, 1), (0, 1), (0, 0)]],
    "crossed_box": [[(0, 0), (1, 0), (1, 1), (0, 1), (0, 0), (1, 1)], [(1, 0), (0, 1)]],
    "sun": [arc(0.5, 0.5, 0.22, 0.22, 0, 360, 16)]
           + [[(0.5 + 0.32 * np.cos(a), 0.5 + 0.32 * np.sin(a)), (0.5 + 0.5 * np.cos(a), 0.5 + 0.5 * np.sin(a))]
              for a in np.radians(np.arange(0, 360, 45))],
    "tree": [[(0.5, 0), (0.1, 0.7), (0.9, 0.7), (0.5, 0)], [(0.5, 0.7), (0.5, 1)]],
    "wave": [[(x, 0.5 + 0.3 * np.sin(x * 4 * np.pi)) for x in np.linspace(0, 1.6, 30)]],
    "stick_figure": [arc(0.5, 0.15, 0.15, 0.15, 0, 360, 12), [(0.5, 0.3), (0.5, 0.65)],
                     [(0.15, 0.45), (0.85, 0.45)], [(0.2, 1), (0.5, 0.65), (0.8, 1)]],
}
# simple hand-drawn digits, two of them side by side ("12", "47", ...)
_DIGITS: dict[str, list[Line]] = {
    "0": [arc(0.3, 0.5, 0.3, 0.5, 0, 360, 20)],
    "1": [[(0.15, 0.2), (0.35, 0), (0.35, 1)]],
    "2": [arc(0.3, 0.28, 0.3, 0.28, 190, 380, 10) + [(0, 1), (0.65, 1)]],
    "3": [arc(0.3, 0.25, 0.3, 0.25, 200, 450, 10), arc(0.3, 0.75, 0.32, 0.25, 270, 520, 10)],
    "4": [[(0.45, 1), (0.45, 0), (0, 0.7), (0.65, 0.7)]],
    "5": [[(0.6, 0), (0.05, 0), (0, 0.45)] + arc(0.3, 0.7, 0.32, 0.3, 230, 500, 12)],
    "7": [[(0, 0), (0.6, 0), (0.2, 1)]],
    "8": [arc(0.3, 0.25, 0.25, 0.25, 0, 360, 14), arc(0.3, 0.75, 0.3, 0.25, 0, 360, 14)],
    "9": [arc(0.3, 0.28, 0.28, 0.28, 0, 360, 14), [(0.58, 0.28), (0.5, 1)]],
}
PAIRS = ("12", "47", "38", "90", "25", "71", "58", "04")


def pair(text: str) -> list[Line]:
    """Two of _DIGITS side by side (0.8 apart: a small gap between them)."""
    out = []
    for k, ch in enumerate(text):
        out += [[(x + 0.85 * k, y) for x, y in line] for line in _DIGITS[ch]]
    return out


def scribble(rng: np.random.Generator) -> list[Line]:
    """A random back-and-forth scribble: 10-20 points wandering over the box."""
    n = int(rng.integers(10, 21))
    return [[(float(x), float(y)) for x, y in rng.uniform(0, 1, (n, 2))]]


def templates() -> list[tuple[str, str, list[Line]]]:
    """(category, name, polylines) of every fixed drawing (scribbles are made per seed)."""
    out = [("letter", k, v) for k, v in LETTERS.items()] + [("symbol", k, v) for k, v in SYMBOLS.items()]
    out += [("shape", k, v) for k, v in SHAPES.items()]
    return out + [("pair", p, pair(p)) for p in PAIRS]


def _dense(line: Line, step: float = 0.04) -> np.ndarray:
    """The polyline with points every `step` at most (so a wobble bends the long straight strokes too)."""
    p = np.asarray(line, np.float64).reshape(-1, 2)
    out = [p[:1]]
    for a, b in zip(p[:-1], p[1:], strict=True):
        n = max(1, int(np.ceil(np.hypot(*(b - a)) / step)))
        out.append(a + (b - a) * (np.arange(1, n + 1)[:, None] / n))
    return np.concatenate(out)


def hand_drawn(lines: list[Line], rng: np.random.Generator, wobble: float = 0.015,
               turn: float = 8.0) -> list[np.ndarray]:
    """The polylines as a hand draws them: turned by up to `turn` degrees, each point moved by a smooth
    random wobble (a fraction of the drawing's size)."""
    a = np.radians(rng.uniform(-turn, turn))
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    out = []
    for line in lines:
        p = _dense(line)
        noise = rng.normal(0, wobble, p.shape)
        kernel = np.ones(3) / 3
        noise = np.stack([np.convolve(noise[:, i], kernel, "same") for i in range(2)], 1)
        out.append((p + noise) @ rot.T)
    return out


@dataclass(frozen=True)
class NonDigit:
    category: str          # letter, symbol, shape, scribble, pair
    name: str
    payload: dict          # the page's stroke JSON (what /classify_strokes takes)


def drawings(seed: int = 0, per_template: int = 6, scribbles: int = 30) -> list[NonDigit]:
    """Every template drawn `per_template` times in random styles, plus `scribbles` scribbles; the same
    list for the same seed (about 330 drawings with the defaults)."""
    rng = np.random.default_rng(seed)
    out = []
    for category, name, lines in templates():
        for _ in range(per_template):
            style = redraw.random_style(rng)
            placed = redraw.place(hand_drawn(lines, rng), style)
            out.append(NonDigit(category, name, redraw.payload(placed, style.brush)))
    for k in range(scribbles):
        style = redraw.random_style(rng)
        placed = redraw.place(hand_drawn(scribble(rng), rng), style)
        out.append(NonDigit("scribble", f"scribble{k}", redraw.payload(placed, style.brush)))
    return out


def star(seed: int = 0) -> dict:
    """One star, drawn plainly (no slant, the page's brush): the test's obvious non-digit."""
    return redraw.payload(redraw.place(hand_drawn(SHAPES["star"], np.random.default_rng(seed), 0.0, 0.0),
                                       redraw.Style()))


def figures(checkpoint: str, data_dir: str | None = None) -> dict:
    """The not-a-digit figures of a checkpoint with stats: the share of the drawn test digits (redraw's
    DRAWN_TEST_SEED) and of this non-digit set flagged by the stored threshold, and by the "unsure" rule."""
    from mnist_core.data import load_mnist
    from mnist_core.predict import UNSURE_BELOW, Predictor
    from mnist_core.raster import prepare_strokes

    predictor = Predictor.from_file(checkpoint)
    if predictor.novelty is None:
        raise ValueError(f"{checkpoint} has no novelty stats (python -m mnist_core.novelty --checkpoint ...)")
    _, test = load_mnist(data_dir, download=False)
    digits = redraw.drawn(test, redraw.DRAWN_TEST_SEED)[0].images.numpy().astype(np.float32) / 255.0
    made = drawings(0)
    others = np.stack([prepare_strokes(d.payload).image for d in made])
    out = {"threshold": predictor.novelty.threshold, "drawn test digits": len(digits), "non-digits": len(others)}
    for name, images in (("digits", digits), ("non-digits", others)):
        out[f"{name} flagged %"] = 100 * float((predictor.novelty_scores(images) > predictor.novelty.threshold).mean())
        out[f"{name} unsure %"] = 100 * float((predictor.probabilities(images).max(1) < UNSURE_BELOW).mean())
    flagged = predictor.novelty_scores(others) > predictor.novelty.threshold
    for category in sorted({d.category for d in made}):
        mask = np.array([d.category == category for d in made])
        out[f"{category}s flagged %"] = 100 * float(flagged[mask].mean())
    return out


if __name__ == "__main__":
    import argparse
    import json

    parser = argparse.ArgumentParser(description="How many drawn digits and non-digits the score flags.")
    parser.add_argument("--checkpoint", default="checkpoints/mnist_cnn.pt")
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()
    print(json.dumps(figures(args.checkpoint, args.data_dir), indent=1))
