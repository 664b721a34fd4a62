"""Render digits the way a sketch arrives from the browser: big, anywhere on a canvas, dark ink."""
from __future__ import annotations

import numpy as np
from PIL import Image


def render(digit28: np.ndarray, canvas: int = 800, height: int = 400, top: int = 100, left: int = 200,
           mode: str = "RGBA") -> np.ndarray:
    """Place a white-on-black 28x28 digit (uint8) as black ink on a canvas.

    The digit's ink box is scaled so its height is `height` px, then put with its box's top-left at
    (top, left). mode: "RGBA" black on transparent (Gradio's sketch layer), "RGB" black on white,
    "L" grayscale black on white.
    """
    d = np.asarray(digit28, np.uint8)
    rows, cols = np.flatnonzero(d.max(1) > 0), np.flatnonzero(d.max(0) > 0)
    crop = d[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    scale = height / crop.shape[0]
    w = max(1, round(crop.shape[1] * scale))
    big = np.asarray(Image.fromarray(crop).resize((w, height), Image.BILINEAR))
    ink = np.zeros((canvas, canvas), np.uint8)
    h2, w2 = min(height, canvas - top), min(w, canvas - left)
    ink[top:top + h2, left:left + w2] = big[:h2, :w2]
    if mode == "RGBA":
        out = np.zeros((canvas, canvas, 4), np.uint8)
        out[..., 3] = ink
        return out
    gray = 255 - ink
    return gray if mode == "L" else np.repeat(gray[..., None], 3, axis=2)


def stroke_digit(kind: str, canvas: int = 400, box=(60, 60, 300, 300), width: int = 22) -> np.ndarray:
    """A hand-drawn-looking 0, 1 or 7 as thick black polylines on transparent RGBA (what a mouse makes)."""
    from PIL import ImageDraw
    x0, y0, x1, y1 = box
    im = Image.new("RGBA", (canvas, canvas), (0, 0, 0, 0))
    dr = ImageDraw.Draw(im)
    if kind == "1":
        dr.line([((x0 + x1) / 2, y0), ((x0 + x1) / 2 + 4, y1)], fill=(0, 0, 0, 255), width=width)
    elif kind == "7":
        dr.line([(x0, y0), (x1, y0), (x0 + (x1 - x0) * 0.35, y1)], fill=(0, 0, 0, 255), width=width, joint="curve")
    elif kind == "0":
        dr.ellipse([x0 + (x1 - x0) * 0.15, y0, x1 - (x1 - x0) * 0.15, y1], outline=(0, 0, 0, 255), width=width)
    return np.asarray(im)
