"""Turning a drawing into the 28x28 image the network expects, the way MNIST itself was made.

MNIST digits were size-normalized to fit a 20x20 box (aspect ratio kept, anti-aliased) and placed in
a 28x28 field with their centre of mass at the centre. Squashing a whole canvas to 28x28 instead
turns a small digit in a corner into a smudge; doing what MNIST did makes a drawing look like the
training data wherever and however large it is drawn.

All functions here are pure (no model, no state): input image in, arrays out.
"""
from __future__ import annotations

import io
import os
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

BOX = 20                 # MNIST: the digit's longer side is 20 px ...
FIELD = 28               # ... inside a 28 x 28 field
CENTER = 14.0            # measured: mean centre of mass of MNIST training digits is (14.00, 14.01) in pixel indices
INK_THRESHOLD = 0.2      # a pixel is ink above 20% of full contrast (anti-aliased edges and paper noise are not)
MIN_EXTENT = 0.10        # ink whose bounding box is under 10% of the canvas side (a dot, a tap) is "no digit"
MIN_EXTENT_PX = 3        # ... or under 3 px, whatever the canvas
WORK_SIZE = 256          # big canvases are box-reduced to about this before any per-pixel work (speed)
MAX_SIDE = 20_000        # refuse absurd images: bounded time and memory per request
MAX_PIXELS = 40_000_000


# PIL's own decompression-bomb guard, set from our limit: an image over twice this is refused by PIL
# itself wherever it is decoded (Gradio decodes uploads before our code runs; check_image_file below
# refuses anything over the limit from the header alone, before that decode).
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
MAX_LAYERS = 8           # a sketchpad value with more layers than this is refused before any decoding


class PreprocessError(ValueError):
    """The input is not an image we can read; the message says what was wrong."""


@dataclass(frozen=True)
class Prepared:
    """The network's view of a drawing: `image` is 28x28 float32 in [0, 1], white digit on black."""
    image: np.ndarray | None
    empty: bool
    reason: str = ""


# ---------------------------------------------------------------------------------------- inputs

def load_image_file(path: str | os.PathLike) -> np.ndarray:
    """Read an image file into a uint8 array (H, W[, C]); PreprocessError if it is not an image."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise PreprocessError(f"cannot read {path}: {exc.strerror or exc}") from None
    return decode_image_bytes(data, str(path))


def decode_image_bytes(data: bytes, name: str = "upload") -> np.ndarray:
    if not data:
        raise PreprocessError(f"{name} is empty (0 bytes): not an image")
    try:
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
            _check_size(h, w)
            im.load()
            if im.mode not in ("L", "LA", "RGB", "RGBA"):
                im = im.convert("RGBA" if "A" in im.getbands() or "transparency" in im.info else "RGB")
            return np.asarray(im)
    except UnidentifiedImageError:
        raise PreprocessError(f"{name} is not an image file this app can read (PNG, JPEG, BMP, GIF, WebP...)") from None
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise PreprocessError(f"{name} could not be decoded as an image: {exc}") from None


def check_image_file(path: str | os.PathLike) -> None:
    """Refuse an image file by its header alone (no pixel is decoded): not an image, or over the size limit."""
    try:
        with Image.open(path) as im:
            w, h = im.size
    except Image.DecompressionBombError:   # PIL's own guard (over twice MAX_PIXELS), from the header too
        raise PreprocessError(f"the image is too large; the limit is {MAX_SIDE} px a side and "
                              f"{MAX_PIXELS:,} pixels") from None
    except (OSError, ValueError):
        raise PreprocessError("the drawing could not be read as an image "
                              "(not an image file this app can read)") from None
    _check_size(h, w)


def _check_size(h: int, w: int) -> None:
    if h < 1 or w < 1:
        raise PreprocessError(f"the image has no pixels ({w}x{h})")
    if max(h, w) > MAX_SIDE or h * w > MAX_PIXELS:
        raise PreprocessError(f"the image is too large ({w}x{h}); the limit is {MAX_SIDE} px a side and "
                              f"{MAX_PIXELS:,} pixels")


def sketch_to_array(value) -> np.ndarray | None:
    """Gradio Sketchpad/ImageEditor value (dict with background/layers/composite), PIL image or
    array -> one array, or None when there is nothing to look at."""
    if value is None:
        return None
    if isinstance(value, dict):
        composite = value.get("composite")
        if composite is not None:
            return sketch_to_array(composite)
        layers = [layer for layer in (value.get("layers") or []) if layer is not None]
        background = value.get("background")
        parts = ([background] if background is not None else []) + layers
        if not parts:
            return None
        arrays = [_as_rgba(sketch_to_array(p)) for p in parts]
        out = Image.fromarray(arrays[0])
        for a in arrays[1:]:
            if a.shape[:2] != arrays[0].shape[:2]:
                a = np.asarray(Image.fromarray(a).resize(out.size))
            out = Image.alpha_composite(out, Image.fromarray(a))
        return np.asarray(out)
    if isinstance(value, Image.Image):
        _check_size(value.height, value.width)
        return np.asarray(value.convert("RGBA") if value.mode not in ("L", "LA", "RGB", "RGBA") else value)
    if isinstance(value, (bytes, bytearray)):
        return decode_image_bytes(bytes(value))
    if isinstance(value, (str, os.PathLike)):
        return load_image_file(value)
    try:
        arr = np.asarray(value)
    except Exception:
        raise PreprocessError(f"cannot read a {type(value).__name__} as an image") from None
    if arr.dtype == object:
        raise PreprocessError(f"cannot read a {type(value).__name__} as an image")
    return arr


def to_uint8(arr: np.ndarray) -> np.ndarray:
    """Any numeric image array -> uint8 (H, W) or (H, W, C) with C in 2..4.

    bool -> 0/255; floats in [0, 1] are scaled to 255 (larger floats are taken as 0..255);
    NaN and inf become 0; ints wider than a byte are scaled down by their maximum.
    """
    arr = np.asarray(arr)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (2, 3, 4)):
        raise PreprocessError("expected a grayscale, grayscale+alpha, RGB or RGBA image, "
                              f"got an array of shape {arr.shape}")
    _check_size(arr.shape[0], arr.shape[1])
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == bool:
        return arr.astype(np.uint8) * 255
    if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise PreprocessError(f"unsupported pixel type {arr.dtype}")
    a = np.nan_to_num(arr.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    top = float(a.max()) if a.size else 0.0
    if np.issubdtype(arr.dtype, np.floating) and top <= 1.0:
        a = a * 255.0
    elif top > 255.0:
        a = a * (255.0 / top)
    return np.clip(a + 0.5, 0, 255).astype(np.uint8)


def _to_pil(arr: np.ndarray) -> Image.Image:
    """uint8 (H, W[, C]) -> PIL image of the matching mode."""
    return Image.fromarray(arr, "L" if arr.ndim == 2 else {2: "LA", 3: "RGB", 4: "RGBA"}[arr.shape[2]])


def _as_rgba(arr: np.ndarray) -> np.ndarray:
    return np.asarray(_to_pil(to_uint8(arr)).convert("RGBA"))


# ------------------------------------------------------------------------------------ pipeline

def ink_map(arr: np.ndarray) -> np.ndarray:
    """Image -> float32 (h, w) "ink" in [0, 1] (1 = full stroke), at most ~WORK_SIZE a side.

    Transparent pixels count as background (composited over white). The polarity is detected from
    the border: dark ink on light paper and light ink on a dark background (MNIST's own look) both
    give ink = 1 on the strokes. Contrast is measured against the border's level, so grey paper works.
    """
    arr = to_uint8(arr)
    h, w = arr.shape[:2]
    im = _to_pil(arr)
    k = max(1, max(h, w) // WORK_SIZE)
    lum = _reduced(im.convert("L"), k)      # for LA/RGBA this ignores alpha: the colour of the paint
    if im.mode not in ("LA", "RGBA"):
        return _polarity_ink(lum)
    # Composite over white at the reduced size: luminance and coverage are box-averaged separately
    # (two cheap one-channel passes instead of a full-resolution RGBA composite; exact for dark
    # strokes on transparent, as the sketchpad sends).
    a = _reduced(im.getchannel("A"), k) / 255.0
    ink = _polarity_ink(lum * a + 255.0 * (1.0 - a))
    if not (ink > INK_THRESHOLD).any():
        # Light strokes on a transparent canvas vanish over white: try them over black.
        ink = _polarity_ink(lum * a)
    return ink


def _reduced(gray: Image.Image, k: int) -> np.ndarray:
    """Box-average k x k blocks (in C, on one channel): strokes stay anti-aliased, later work drops by k^2."""
    return np.asarray(gray.reduce(k) if k > 1 else gray, dtype=np.float32)


def _polarity_ink(gray: np.ndarray) -> np.ndarray:
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    bg = float(np.median(border))
    # dark ink on light paper, else light ink on a dark background
    ink = (bg - gray) / max(bg, 1.0) if bg >= 128 else (gray - bg) / max(255.0 - bg, 1.0)
    return np.clip(ink, 0.0, 1.0, out=ink)


def ink_box(ink: np.ndarray) -> tuple[int, int, int, int] | None:
    """(top, bottom, left, right) of the pixels above INK_THRESHOLD (bottom/right exclusive), or None."""
    mask = ink > INK_THRESHOLD
    rows = np.flatnonzero(mask.any(1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def fit_to_mnist(crop: np.ndarray) -> np.ndarray:
    """Crop of ink -> 28x28: longer side scaled to 20 px (anti-aliased, aspect kept), peak scaled to 1,
    centre of mass moved to MNIST's centre (whole pixels, as MNIST did), kept inside the field."""
    h, w = crop.shape
    scale = BOX / max(h, w)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    # Pillow's BILINEAR widens its kernel when shrinking, i.e. it anti-aliases like an area filter.
    small = np.asarray(Image.fromarray(crop.astype(np.float32), "F").resize((nw, nh), Image.BILINEAR), dtype=np.float32)
    small = np.clip(small, 0.0, None)
    peak = float(small.max())
    if peak <= 0:
        return np.zeros((FIELD, FIELD), np.float32)
    small = small / peak  # MNIST digits reach full white; thin or grey strokes should too
    ys, xs = np.indices(small.shape)
    mass = small.sum()
    cy, cx = (small * ys).sum() / mass, (small * xs).sum() / mass
    top = int(np.clip(round(CENTER - cy), 0, FIELD - nh))
    left = int(np.clip(round(CENTER - cx), 0, FIELD - nw))
    out = np.zeros((FIELD, FIELD), np.float32)
    out[top:top + nh, left:left + nw] = small
    return out


def prepare(value) -> Prepared:
    """Any drawing (Sketchpad dict, PIL image, array, file path, bytes) -> what the network sees.

    Raises PreprocessError only for inputs that are not images at all; blank canvases, dots and
    1-pixel images come back as Prepared(empty=True) with a reason. A Prepared (strokes rendered by
    raster.py) is already what the network sees and is returned as it is.
    """
    if isinstance(value, Prepared):
        return value
    arr = sketch_to_array(value)
    if arr is None:
        return Prepared(None, True, "nothing drawn")
    arr = to_uint8(arr)
    ink = ink_map(arr)
    box = ink_box(ink)
    if box is None:
        return Prepared(None, True, "no ink found")
    top, bottom, left, right = box
    extent = max(bottom - top, right - left)
    if extent < max(MIN_EXTENT_PX, MIN_EXTENT * max(ink.shape)):
        return Prepared(None, True, "too small to be a digit")
    return Prepared(fit_to_mnist(ink[top:bottom, left:right]), False)


def normalize_image(images28: np.ndarray, mean: float, std: float) -> np.ndarray:
    """One 28x28 image or a [N, 28, 28] stack in [0, 1] -> float32 [N, 1, 28, 28] in the model's input scale."""
    x = (np.asarray(images28, np.float32) - mean) / std
    return x.reshape(-1, 1, 28, 28)
