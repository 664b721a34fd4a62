"""Pictures and small HTML for the insight views: heat-map overlays, gallery items, the confusion table.

Pure functions from insight results to values a UI can show (uint8 RGB arrays, (image, caption)
pairs, HTML strings whose look is in web/app.css). No Gradio import: the Inspect tab passes these to
gr.Image, gr.Gallery and gr.HTML.
"""
from __future__ import annotations

import base64
import html
import io

import numpy as np
from PIL import Image

from mnist_core.insight import DrawingInsight, Explanation, LookAlike, Mistake, check_image28

from .views import confusion_html  # noqa: F401  (one heat map, shared by the Inspect and Train tabs)

SCALE = 8            # 28 px -> 224 px, nearest neighbour: each MNIST pixel stays a crisp square
THUMB = 3            # gallery thumbnails: 28 -> 84 px
DIGIT_GRAY = 0.6     # the digit is drawn in gray under the heat so the colours stay readable

# Evidence colour ramp (transparent -> red -> orange -> yellow), 5 stops interpolated linearly.
_RAMP_AT = np.array([0.0, 0.25, 0.5, 0.75, 1.0], np.float32)
_RAMP_RGB = np.array([[120, 0, 0], [200, 20, 10], [240, 90, 0], [255, 170, 0], [255, 240, 80]], np.float32)


def heat_colors(heat01: np.ndarray) -> np.ndarray:
    """[..] values in [0, 1] -> [.., 3] float RGB 0..255 on the evidence ramp."""
    h = np.clip(np.asarray(heat01, np.float32), 0, 1)
    return np.stack([np.interp(h, _RAMP_AT, _RAMP_RGB[:, c]) for c in range(3)], axis=-1)


def upscale(rgb: np.ndarray, scale: int) -> np.ndarray:
    """Nearest-neighbour upscaling of an (H, W[, C]) array: crisp squares, no blur."""
    return np.repeat(np.repeat(rgb, scale, axis=0), scale, axis=1)


def overlay(image28, attribution: np.ndarray | None, scale: int = SCALE) -> np.ndarray:
    """uint8 RGB (28*scale, 28*scale, 3): the digit in gray, the positive evidence as a heat map
    blended over it (opacity grows with the evidence), upscaled crisply. attribution None: the digit only."""
    img = check_image28(image28)
    if not 1 <= int(scale) <= 32:
        raise ValueError(f"scale must be 1-32, got {scale!r}")
    base = np.repeat((img * DIGIT_GRAY * 255.0)[..., None], 3, axis=2)
    if attribution is not None:
        a = np.asarray(attribution, np.float32)
        if a.shape != (28, 28):
            raise ValueError(f"attribution must be 28x28, got {a.shape}")
        pos = np.clip(a, 0.0, None)
        # Scale by a high percentile, not the maximum: one spiky pixel must not wash out the rest.
        top = float(np.percentile(pos[pos > 0], 95)) if (pos > 0).any() else 0.0
        h = np.clip(pos / top, 0.0, 1.0) if top > 0 else pos
        alpha = (np.sqrt(h) * 0.9)[..., None]   # sqrt: faint evidence stays visible
        base = base * (1 - alpha) + heat_colors(h) * alpha
    return upscale(np.clip(base + 0.5, 0, 255).astype(np.uint8), int(scale))


def explanation_image(e: Explanation, scale: int = SCALE) -> np.ndarray | None:
    """The /explain image: overlay of the evidence for the top class, None for an empty drawing."""
    if e.empty:
        return None
    return overlay(e.prediction.image, e.attribution, scale)


def explanation_caption(e: Explanation) -> str:
    if e.empty:
        return f"Nothing to explain ({e.prediction.reason})"
    p = float(e.prediction.probabilities[e.target])
    return f"Evidence for {e.target} ({p:.0%}): brighter = pushes harder towards {e.target}"


def png_data_uri(rgb: np.ndarray) -> str:
    """uint8 RGB or L array -> a PNG data URI (for HTML or a small API payload)."""
    buf = io.BytesIO()
    Image.fromarray(np.asarray(rgb, np.uint8)).save(buf, "PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def thumb(image_u8: np.ndarray, scale: int = THUMB) -> np.ndarray:
    """uint8 28x28 white-on-black -> uint8 RGB thumbnail, crisp."""
    g = np.asarray(image_u8, np.uint8)
    return upscale(np.repeat(g[..., None], 3, axis=2), scale)


def lookalike_items(found: list[LookAlike]) -> list[tuple[np.ndarray, str]]:
    """gr.Gallery value: (thumbnail, "7 (sim 0.98)") per look-alike, nearest first."""
    return [(thumb(x.image), f"{x.label} (sim {x.similarity:.2f})") for x in found]


def mistake_items(mistakes: list[Mistake]) -> list[tuple[np.ndarray, str]]:
    """gr.Gallery value: (thumbnail, "true 4 -> said 9 (87%)") per mistake, in the given order."""
    return [(thumb(m.image), m.caption) for m in mistakes]


def note_html(text: str) -> str:
    """A one-line note (e.g. why look-alikes are hidden), escaped."""
    return f"<div class='insight-note'>{html.escape(text)}</div>"


def lookalikes_html(found: list[LookAlike] | None, note: str = "") -> str:
    """The look-alikes as one small HTML strip: 28x28 PNG data URIs (~300 bytes each) shown at 2x,
    pixel-crisp, each captioned with its label and similarity, then the note. One string on the wire
    (a gallery would make an API client download every thumbnail as a file)."""
    figs = "".join(
        f"<figure data-label='{x.label}' data-index='{x.index}'>"
        f"<img alt='a {x.label}' src='{png_data_uri(x.image)}'>"
        f"<figcaption>{x.label} ({x.similarity:.2f})</figcaption></figure>"
        for x in (found or []))
    strip = f"<div class='lookalike-strip'>{figs}</div>" if figs else ""
    return f"<div class='lookalikes' data-count='{len(found or [])}'>{strip}{note_html(note) if note else ''}</div>"


def drawing_outputs(d: DrawingInsight) -> tuple[np.ndarray | None, str, str]:
    """(heat-map image, caption, look-alikes HTML with the note) for one DrawingInsight."""
    return explanation_image(d.explanation), explanation_caption(d.explanation), lookalikes_html(d.lookalikes, d.note)


def heat_html(image: np.ndarray | None) -> str:
    """The heat map inline (a PNG data URI, a few KB): the page shows it without Gradio writing a file per
    drawing. An empty frame when there is nothing to show."""
    if image is None:
        return "<div class='heat heat-empty'></div>"
    return (f"<img class='heat' alt='evidence for the top class' width='{image.shape[1]}' "
            f"height='{image.shape[0]}' src='{png_data_uri(image)}'>")


def mistakes_note(mistakes: list[Mistake], total: int) -> str:
    return note_html(f"{len(mistakes)} of the {total:,} MNIST test digits are misread by this model. "
                     "Click one to see what the network looked at.")
