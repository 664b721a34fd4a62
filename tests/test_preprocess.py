import numpy as np
import pytest

from mnist_core.preprocess import BOX, CENTER, PreprocessError, decode_image_bytes, load_image_file, prepare, to_uint8
from tests.drawing import render, stroke_digit

SEVEN = np.zeros((28, 28), np.uint8)
SEVEN[5:8, 6:22] = 255          # top bar
for i in range(16):             # diagonal
    SEVEN[8 + i, 20 - i // 2:23 - i // 2] = 255


def _com(img):
    ys, xs = np.indices(img.shape)
    return (img * ys).sum() / img.sum(), (img * xs).sum() / img.sum()


@pytest.mark.parametrize("mode", ["RGBA", "RGB", "L"])
def test_position_and_size_do_not_matter(mode):
    ref = prepare(render(SEVEN, height=400, top=200, left=300, mode=mode)).image
    for height, top, left in [(120, 10, 10), (250, 540, 30), (700, 50, 90), (90, 700, 700)]:
        img = prepare(render(SEVEN, height=height, top=top, left=left, mode=mode)).image
        assert img is not None
        assert np.abs(img - ref).mean() < 0.03, (height, top, left)


def test_all_modes_agree():
    a, b, c = (prepare(render(SEVEN, mode=m)).image for m in ("RGBA", "RGB", "L"))
    assert np.abs(a - b).max() < 0.02 and np.abs(a - c).max() < 0.02


def test_center_of_mass_and_box():
    img = prepare(render(SEVEN, height=333, top=77, left=401)).image
    cy, cx = _com(img)
    assert abs(cy - CENTER) <= 0.5 and abs(cx - CENTER) <= 0.5
    rows, cols = np.flatnonzero(img.max(1) > 0.05), np.flatnonzero(img.max(0) > 0.05)
    assert max(rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1) in (BOX, BOX + 1)
    assert img.max() == pytest.approx(1.0)
    assert img.shape == (28, 28) and img.dtype == np.float32


def test_an_mnist_style_digit_comes_out_nearly_unchanged():
    # White on black, 20 px box, centred by mass: preprocessing should be (almost) the identity.
    d = prepare(SEVEN).image                    # first pass puts it exactly where MNIST would
    again = prepare((d * 255).astype(np.uint8)).image
    assert np.abs(again - d).mean() < 0.02


@pytest.mark.parametrize("canvas", [
    np.zeros((800, 800, 4), np.uint8),              # nothing drawn, transparent
    np.full((800, 800, 3), 255, np.uint8),          # all white
    np.zeros((800, 800), np.uint8),                 # all black
])
def test_blank_canvases_are_empty(canvas):
    assert prepare(canvas).empty


def test_single_dot_is_empty():
    c = np.zeros((800, 800, 4), np.uint8)
    yy, xx = np.ogrid[:800, :800]
    c[(yy - 300) ** 2 + (xx - 500) ** 2 <= 12 ** 2, 3] = 255   # a tap with the brush
    p = prepare(c)
    assert p.empty and "small" in p.reason


def test_drawn_strokes_are_not_empty():
    for kind in "017":
        assert not prepare(stroke_digit(kind)).empty


def test_polarity_white_on_black_equals_black_on_white():
    black_on_white = render(SEVEN, mode="L")
    white_on_black = 255 - black_on_white
    a, b = prepare(black_on_white).image, prepare(white_on_black).image
    assert np.abs(a - b).max() < 0.01


def test_sketch_dict_forms():
    ink = render(SEVEN, mode="RGBA")
    ref = prepare(ink).image
    assert np.allclose(prepare({"composite": ink, "layers": [], "background": None}).image, ref)
    white = np.full_like(ink, 255)
    assert np.abs(prepare({"composite": None, "layers": [ink], "background": white}).image - ref).max() < 0.02
    assert prepare({"composite": None, "layers": [], "background": None}).empty
    assert prepare(None).empty


def test_file_inputs(tmp_path):
    from PIL import Image
    Image.fromarray(render(SEVEN, mode="RGB")).save(tmp_path / "d.png")
    from_file = prepare(load_image_file(tmp_path / "d.png")).image
    assert np.abs(from_file - prepare(render(SEVEN, mode="RGB")).image).max() < 1e-6
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(PreprocessError, match="not an image"):
        load_image_file(tmp_path / "bad.png")
    with pytest.raises(PreprocessError, match="empty"):
        decode_image_bytes(b"")


def test_to_uint8_conversions():
    assert to_uint8(np.array([[0.0, 1.0]])).tolist() == [[0, 255]]
    assert to_uint8(np.array([[True, False]])).tolist() == [[255, 0]]
    assert to_uint8(np.array([[np.nan, 0.5]])).tolist() == [[0, 128]]
    assert to_uint8(np.array([[0, 1000]], np.int16)).tolist() == [[0, 255]]
    with pytest.raises(PreprocessError, match="shape"):
        to_uint8(np.zeros((4, 4, 5)))
