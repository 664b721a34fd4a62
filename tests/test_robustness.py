"""Bad input never raises in the UI path, never crashes, and never changes the model."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from mnist_core.predict import Predictor
from mnist_core.preprocess import PreprocessError, prepare
from tests.drawing import stroke_digit

SEVEN = stroke_digit("7", canvas=400)


def _gray(rgba):  # black ink on white, grayscale
    return (255 - rgba[..., 3]).astype(np.uint8)


CASES = {
    "none": (None, "empty"),
    "dict without composite": ({"background": None, "layers": []}, "empty"),
    "dict with composite None and no layers": ({"composite": None, "layers": [], "background": None}, "empty"),
    "layers only": ({"composite": None, "layers": [SEVEN], "background": None}, "7"),
    "all transparent": (np.zeros((400, 400, 4), np.uint8), "empty"),
    "all white": (np.full((400, 400, 3), 255, np.uint8), "empty"),
    "all black": (np.zeros((400, 400, 3), np.uint8), "empty"),
    "single dot": (np.pad(np.full((9, 9), 0, np.uint8), 195, constant_values=255), "empty"),
    "1x1": (np.zeros((1, 1), np.uint8), "empty"),
    "20000x1": (np.full((1, 20000), 255, np.uint8), "empty"),
    "4000x4000 RGBA": (np.asarray(Image.fromarray(SEVEN).resize((4000, 4000))), "7"),
    "float in [0, 1]": (_gray(SEVEN).astype(np.float32) / 255, "7"),
    "NaN values": (np.where(_gray(SEVEN) > 0, _gray(SEVEN) / 255.0, np.nan), "7"),
    "bool": (_gray(SEVEN) > 127, "7"),
    "int16": (_gray(SEVEN).astype(np.int16), "7"),
    "grayscale": (_gray(SEVEN), "7"),
    "grayscale + alpha": (np.stack([np.zeros((400, 400), np.uint8), SEVEN[..., 3]], -1), "7"),
    "RGB": (np.repeat(_gray(SEVEN)[..., None], 3, 2), "7"),
    "RGBA": (SEVEN, "7"),
    "semi-transparent strokes": (np.concatenate([SEVEN[..., :3], (SEVEN[..., 3:] * 0.45).astype(np.uint8)], -1), "7"),
    "white on black": (255 - _gray(SEVEN), "7"),
    "touching the border": (np.pad(_gray(SEVEN)[60:330, 60:320], ((0, 40), (0, 40)), constant_values=255), "7"),
    "PIL image": (Image.fromarray(SEVEN), "7"),
    "white strokes on transparent": (np.concatenate([np.full((400, 400, 3), 255, np.uint8), SEVEN[..., 3:]], -1), "7"),
}


@pytest.fixture(scope="module")
def predictor(shipped_checkpoint):
    return Predictor.from_file(shipped_checkpoint)


@pytest.mark.parametrize("name", list(CASES))
def test_bad_and_odd_inputs(predictor, name):
    value, expected = CASES[name]
    before = {k: v.clone() for k, v in predictor.model.state_dict().items()}
    pred = predictor.predict(value)
    if expected == "empty":
        assert pred.empty and pred.reason
    else:
        assert not pred.empty and pred.digit == int(expected), pred.as_dict()
    after = predictor.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("value,words", [
    (np.zeros((20001, 2), np.uint8), "too large"),
    (np.zeros((7000, 7000), np.uint8), "too large"),
    (np.zeros((4, 4, 7), np.uint8), "shape"),
    (np.array([["a", "b"]], dtype=object), "cannot read"),
    (b"", "empty"),
    (b"definitely not a png", "not an image"),
])
def test_unreadable_inputs_raise_the_apps_error(value, words):
    with pytest.raises(PreprocessError, match=words):
        prepare(value)


def test_mnist_digit_itself_is_recognized(predictor, real_mnist):
    from mnist_core.data import load_mnist
    _, test = load_mnist(real_mnist, download=False)
    hits = sum(predictor.predict(test.images[i].numpy()).digit == int(test.labels[i]) for i in range(50))
    assert hits >= 48


def test_huge_image_is_bounded_in_time(predictor):
    import time
    big = np.asarray(Image.fromarray(SEVEN).resize((4000, 4000)))
    t0 = time.perf_counter()
    predictor.predict(big)
    assert time.perf_counter() - t0 < 2.0   # a generous bound: one request cannot stall the server
