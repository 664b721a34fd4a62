"""Predictor and Prediction: the "Not sure" threshold on both sides, and the path from drawing to answer."""
import dataclasses

import numpy as np
import pytest
import torch

from mnist_core import predict as predict_mod
from mnist_core.predict import UNSURE_BELOW, Prediction, Predictor
from tests.drawing import stroke_digit


def _probs(top_digit: int, top_p: float) -> np.ndarray:
    p = np.full(10, (1.0 - top_p) / 9, dtype=np.float64)
    p[top_digit] = top_p
    return p


def _pred(top_digit=3, top_p=0.9):
    return Prediction(_probs(top_digit, top_p), np.zeros((28, 28), np.float32), False)


def test_the_threshold_is_the_documented_60_percent():
    # docs/how-it-works.md: "a top probability under 60% (UNSURE_BELOW) is shown as ..."
    assert UNSURE_BELOW == 0.6


@pytest.mark.parametrize("top_p,unsure", [
    (0.35, True), (0.59, True), (0.5999, True),       # just below: unsure
    (0.6, False), (0.6001, False), (0.61, False), (0.99, False),   # at and just above: sure
])
def test_unsure_on_both_sides_of_the_threshold(top_p, unsure):
    p = _pred(4, top_p)
    assert p.confidence == pytest.approx(top_p)
    assert p.unsure is unsure
    assert p.as_dict()["unsure"] is unsure
    assert p.digit == 4          # unsure or not, the best guess is still reported


def test_unsure_follows_the_constant(monkeypatch):
    monkeypatch.setattr(predict_mod, "UNSURE_BELOW", 0.95)
    assert _pred(1, 0.9).unsure and not _pred(1, 0.96).unsure


def test_empty_prediction():
    e = Prediction(None, None, True, "nothing drawn")
    assert e.digit is None and e.confidence == 0.0 and e.unsure is False and e.top(3) == []
    assert e.as_dict() == {"empty": True, "reason": "nothing drawn", "digit": None, "confidence": 0.0,
                           "unsure": False, "not_a_digit": False, "novelty": None, "probabilities": None}


def test_top_k_and_dict():
    p = Prediction(np.array([0.01, 0.05, 0.5, 0.02, 0.3, 0.02, 0.04, 0.03, 0.02, 0.01]), None, False)
    assert p.top(3) == [(2, 0.5), (4, 0.3), (1, 0.05)]
    assert len(p.top()) == 3 and p.top(1) == [(2, 0.5)] and len(p.top(10)) == 10
    d = p.as_dict()
    assert d["digit"] == 2 and d["confidence"] == 0.5 and d["unsure"] is True and not d["empty"]
    assert d["probabilities"] == pytest.approx(p.probabilities.tolist()) and len(d["probabilities"]) == 10
    third = _pred(0, 1 / 3).as_dict()
    assert third["confidence"] == round(1 / 3, 6) == 0.333333
    assert third["probabilities"][0] == 0.333333 and third["probabilities"][1] == round((2 / 3) / 9, 6)
    with pytest.raises(dataclasses.FrozenInstanceError):     # a shared result cannot be changed in place
        p.empty = True


class Fixed(torch.nn.Module):
    """Answers every input with the same log-probabilities and remembers what it was given."""

    def __init__(self, probs):
        super().__init__()
        self.logp = torch.log(torch.tensor(probs, dtype=torch.float32))
        self.inputs = []

    def forward(self, x):
        self.inputs.append(x.clone())
        return self.logp.expand(len(x), 10)


SEVEN = stroke_digit("7", canvas=300)


@pytest.mark.parametrize("top_p,unsure", [(0.58, True), (0.62, False)])
def test_predictor_threshold_end_to_end(top_p, unsure):
    model = Fixed(_probs(8, top_p))
    pred = Predictor(model, {"mean": 0.1307, "std": 0.3081}).predict(SEVEN)
    assert not pred.empty and pred.digit == 8 and pred.unsure is unsure
    assert pred.confidence == pytest.approx(top_p, abs=1e-6)


def test_predictor_feeds_the_normalized_28x28_image():
    model = Fixed(_probs(1, 0.9))
    predictor = Predictor(model, {"mean": 0.25, "std": 0.5}, name="n", description="d")
    pred = predictor.predict(SEVEN)
    (x,) = model.inputs
    assert x.shape == (1, 1, 28, 28) and x.dtype == torch.float32
    np.testing.assert_allclose(x[0, 0].numpy(), (pred.image - 0.25) / 0.5, rtol=1e-6, atol=1e-6)
    assert pred.image.max() == pytest.approx(1.0) and pred.image.min() == 0.0
    assert np.allclose(pred.probabilities.sum(), 1.0) and predictor.name == "n" and predictor.description == "d"
    assert not model.training       # the predictor puts the model in eval mode


def test_predictor_probabilities_batch():
    model = Fixed(_probs(5, 0.7))
    predictor = Predictor(model, {"mean": 0.0, "std": 1.0})
    imgs = np.random.default_rng(0).random((3, 28, 28)).astype(np.float32)
    out = predictor.probabilities(imgs)
    assert out.shape == (3, 10) and np.allclose(out[:, 5], 0.7)
    np.testing.assert_allclose(model.inputs[0][:, 0].numpy(), imgs, rtol=1e-6)


def test_blank_canvas_is_empty_and_never_reaches_the_model():
    model = Fixed(_probs(5, 0.7))
    pred = Predictor(model, {"mean": 0.1307, "std": 0.3081}).predict(np.full((200, 200), 255, np.uint8))
    assert pred.empty and pred.digit is None and not pred.unsure and pred.reason and model.inputs == []


def test_from_file_names_and_describes(tiny_checkpoint):
    p = Predictor.from_file(tiny_checkpoint)
    assert p.name == str(tiny_checkpoint)
    assert p.description.endswith("1 epoch") and "%" in p.description
    assert (p.mean, p.std) == (0.1307, 0.3081)
    probs = p.probabilities(np.zeros((2, 28, 28), np.float32))
    assert probs.shape == (2, 10) and np.allclose(probs.sum(1), 1.0, atol=1e-5)
