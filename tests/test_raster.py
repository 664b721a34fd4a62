"""Strokes -> 28x28 straight from the geometry (mnist_core/raster.py), and the folded network
(mnist_core/fold.py) that the page runs: both are the Python halves of the page's own live label."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mnist_core.checkpoint import load_checkpoint, model_from_checkpoint
from mnist_core.data import load_mnist
from mnist_core.fold import FORMAT, LAYERS, fold, forward, from_payload, payload
from mnist_core.predict import Predictor
from mnist_core.preprocess import BOX, CENTER, FIELD, prepare
from mnist_core.raster import prepare_strokes, strokes_to_mnist
from mnist_core.strokes import StrokeError, parse_strokes, render_strokes
from tests.mnist_strokes import random_drawings
from tests.stroke_cases import EDGE_CASES, SEVEN


def test_empty_states_and_their_reasons():
    reasons = {name: prepare_strokes(v).reason for name, v in EDGE_CASES.items() if prepare_strokes(v).empty}
    assert reasons == {"nothing": "nothing drawn", "empty stroke": "nothing drawn", "dot": "too small to be a digit",
                       "tap": "too small to be a digit", "short dash (too small)": "too small to be a digit",
                       "all outside the square": "no ink found"}


def test_the_digit_fills_the_20px_box_and_its_centre_of_mass_is_centred():
    for name in ("seven", "zero", "vertical line (a 1)", "small seven in a corner", "big canvas"):
        img = prepare_strokes(EDGE_CASES[name]).image
        assert img.shape == (FIELD, FIELD) and img.dtype == np.float32 and img.max() == pytest.approx(1.0)
        rows, cols = np.flatnonzero(img.max(1) > 0), np.flatnonzero(img.max(0) > 0)
        assert max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 == BOX, name
        ys, xs = np.indices(img.shape)
        cy, cx = (img * ys).sum() / img.sum(), (img * xs).sum() / img.sum()
        assert abs(cy - CENTER) <= 0.5 + 1e-6 and abs(cx - CENTER) <= 0.5 + 1e-6, (name, cy, cx)


def test_where_and_how_big_it_is_drawn_does_not_matter():
    base = prepare_strokes(EDGE_CASES["seven"]).image
    for k, dx, dy in ((0.5, 0, 0), (0.5, 150, 140), (0.35, 10, 200)):
        moved = {"width": 320, "height": 320, "brush": 22 * k,
                 "strokes": [[[x * k + dx, y * k + dy] for x, y in s] for s in SEVEN]}
        assert np.abs(prepare_strokes(moved).image - base).max() < 1e-6


def near(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two 28x28 images, the better of placements a pixel apart (the two
    renderers may round a centre of mass on a half pixel differently)."""
    return min(float(np.abs(np.roll(a, (dy, dx), (0, 1)) - b).mean()) for dy in (-1, 0, 1) for dx in (-1, 0, 1))


@pytest.mark.parametrize("name", ["seven", "zero", "vertical line (a 1)", "huge zero past the edges",
                                  "stroke leaving the square", "small seven in a corner"])
def test_agrees_with_the_pil_pipeline(name):
    """The same picture as drawing the strokes at 320x320 with PIL (cut at the canvas's edge), then the
    image preprocessing: within a few percent per pixel, the same amount of strong ink."""
    s = parse_strokes(EDGE_CASES[name])
    new, old = strokes_to_mnist(s).image, prepare(render_strokes(s)).image
    assert near(new, old) < 0.05, name
    assert (new > 0.5).sum() == pytest.approx((old > 0.5).sum(), rel=0.35), name


def test_bad_payloads_are_refused_before_any_work():
    with pytest.raises(StrokeError, match="far outside"):
        prepare_strokes({"width": 320, "height": 320, "brush": 22, "strokes": [[[1000, 10]]]})
    with pytest.raises(StrokeError, match="not valid JSON"):
        prepare_strokes("{oops")


def test_the_largest_allowed_drawing_is_bounded():
    img = prepare_strokes(EDGE_CASES["19,000 points"]).image
    assert img is not None and np.isfinite(img).all()


# ------------------------------------------------------------------------------- the folded network

@pytest.fixture(scope="module")
def shipped_model(shipped_checkpoint):
    ckpt = load_checkpoint(shipped_checkpoint)
    return model_from_checkpoint(ckpt), ckpt["normalization"]


def test_folding_batchnorm_keeps_the_answers(shipped_model, tiny_checkpoint):
    ckpt = load_checkpoint(tiny_checkpoint)
    for model, norm in (shipped_model, (model_from_checkpoint(ckpt), ckpt["normalization"])):
        layers = fold(model)
        rng = np.random.default_rng(0)
        for img in [rng.random((28, 28)), prepare_strokes(EDGE_CASES["seven"]).image, np.zeros((28, 28))]:
            got, stages = forward(layers, img, norm["mean"], norm["std"])
            with torch.inference_mode():
                x = torch.tensor((img - norm["mean"]) / norm["std"], dtype=torch.float32)[None, None]
                want = model(x)[0].double().numpy()
            assert np.abs(got - want).max() < 1e-5
            assert [s.shape for s in stages] == [(8, 26, 26), (16, 24, 24), (8, 12, 12), (16, 10, 10), (8, 8, 8),
                                                 (16, 6, 6), (16, 1, 1), (10, 1, 1)]


def test_the_payload_is_small_and_checked(shipped_model):
    model, norm = shipped_model
    data = payload(model, norm)
    assert data["format"] == FORMAT and len(json.dumps(data)) < 100_000
    assert [layer["name"] for layer in data["layers"]] == [name for name, *_ in LAYERS]
    x = np.random.default_rng(1).random((28, 28))
    a, _ = forward(from_payload(data), x, norm["mean"], norm["std"])
    b, _ = forward(fold(model), x, norm["mean"], norm["std"])
    assert np.abs(a - b).max() < 1e-5           # float32 on the wire
    broken = json.loads(json.dumps(data))
    broken["layers"][3]["weight"] = broken["layers"][2]["weight"]
    with pytest.raises(ValueError, match="wrong shape"):
        from_payload(broken)


def test_drawn_real_digits_read_at_least_as_well_as_with_the_old_renderer(real_mnist, shipped_checkpoint):
    """600 real test digits as pen strokes (skeletons traced, tests/mnist_strokes.py) at random places
    and sizes: the stroke-native 28x28 reads them at least as well as drawing a 320x320 picture with
    PIL and shrinking it (the app's previous path)."""
    _, test = load_mnist(real_mnist, download=False)
    predictor = Predictor.from_file(shipped_checkpoint)
    idx = np.random.default_rng(0).choice(len(test), 600, replace=False)
    labels = test.labels[idx].numpy()
    drawings = random_drawings(test.images[idx].numpy(), seed=0)
    new = old = 0
    for d, y in zip(drawings, labels, strict=True):
        s = parse_strokes(d)
        a, b = strokes_to_mnist(s), prepare(render_strokes(s))
        new += (not a.empty) and predictor.predict(a).digit == y
        old += (not b.empty) and predictor.predict(b).digit == y
    print(f"600 stroke drawings of real digits: stroke-native {new / 6:.2f}%, PIL 320x320 {old / 6:.2f}%")
    assert new >= old and new / 600 >= 0.96, (new, old)
