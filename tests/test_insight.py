"""Model insight (issue 13): saliency, look-alikes, mistakes, and their pictures.

Logic on synthetic inputs and a stub model (fast); the claims about the real network (saliency on
the ink, look-alikes sharing the label, the gallery = the misclassified test digits) on the real
MNIST via the real_mnist fixture.
"""
from __future__ import annotations

import itertools
import re
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mnist_core import insight
from mnist_core.data import DataError, raw_dir, read_split
from mnist_core.insight import (
    METHODS,
    FeatureIndex,
    InsightError,
    InsightService,
    Mistake,
    confusion_from_mistakes,
    explain,
    explain_image28,
    find_mistakes,
    lookalikes,
    mass_on_ink,
    mnist_unavailable,
    pooled_features,
    saliency,
    sort_mistakes,
    stored_confusion,
    stroke_mask,
)
from mnist_core.predict import Predictor
from mnist_core.preprocess import PreprocessError
from mnist_web.insight_views import (
    SCALE,
    confusion_html,
    explanation_caption,
    explanation_image,
    lookalike_items,
    mistake_items,
    mistakes_note,
    overlay,
    png_data_uri,
)
from tests.drawing import stroke_digit


@pytest.fixture(scope="module")
def predictor(shipped_checkpoint) -> Predictor:
    return Predictor.from_file(shipped_checkpoint)


def seven28(predictor) -> np.ndarray:
    return predictor.predict(stroke_digit("7")).image


# ------------------------------------------------------------------------------------ features

def test_pooled_features_are_what_the_head_reads(predictor):
    x = torch.randn(5, 1, 28, 28)
    with torch.no_grad():
        f = pooled_features(predictor.model, x)
        assert f.shape == (5, 16)
        via_head = F.log_softmax(predictor.model.head(f[:, :, None, None]).flatten(1), 1)
        assert torch.allclose(via_head, predictor.model(x), atol=1e-5)


# ------------------------------------------------------------------------------------ saliency

def test_every_method_gives_a_finite_28x28_map_for_the_top_class(predictor):
    img = seven28(predictor)
    for m in METHODS:
        a = saliency(predictor.model, img, predictor.mean, predictor.std, method=m)
        assert a.shape == (28, 28) and a.dtype == np.float32 and np.isfinite(a).all(), m
        assert (a > 0).any(), f"{m}: no evidence at all for the top class"


def test_integrated_gradients_add_up_to_the_change_in_log_probability(predictor):
    """Completeness: the attributions sum to log p(x) - log p(black), up to the Riemann error."""
    img = seven28(predictor)
    a = saliency(predictor.model, img, predictor.mean, predictor.std, target=7, method="integrated_gradients",
                 steps=256)
    with torch.no_grad():
        lp = predictor.model(torch.from_numpy(((np.stack([img, np.zeros_like(img)]) - predictor.mean)
                                               / predictor.std)[:, None].astype(np.float32)))[:, 7]
    expected = float(lp[0] - lp[1])
    assert expected > 1
    assert abs(float(a.sum()) - expected) < 0.05 * expected


def test_gradient_x_input_and_ig_are_zero_on_black_pixels(predictor):
    img = seven28(predictor)
    for m in ("gradient_x_input", "integrated_gradients"):
        a = saliency(predictor.model, img, predictor.mean, predictor.std, method=m)
        assert np.all(a[img == 0] == 0), m


def test_occlusion_with_one_pixel_patches_is_the_drop_from_blacking_out_that_pixel(predictor):
    img = seven28(predictor)
    a = saliency(predictor.model, img, predictor.mean, predictor.std, target=7, method="occlusion", patch=1, stride=1)
    ys, xs = np.nonzero(img > 0.5)
    with torch.no_grad():
        for y, x in list(zip(ys, xs, strict=True))[:5]:
            hole = img.copy()
            hole[y, x] = 0
            lp = predictor.model(torch.from_numpy(((np.stack([img, hole]) - predictor.mean)
                                                   / predictor.std)[:, None].astype(np.float32)))[:, 7]
            assert a[y, x] == pytest.approx(float(lp[0] - lp[1]), abs=1e-4)
    assert np.all(a[img == 0] == 0)


def test_occlusion_squares_reach_the_edges(predictor):
    img = np.zeros((28, 28), np.float32)
    img[23:28, 23:28] = 1.0   # ink in the far corner only
    for patch, stride in ((4, 2), (4, 1), (3, 3), (5, 2), (6, 4)):
        a = saliency(predictor.model, img, predictor.mean, predictor.std, target=1, method="occlusion",
                     patch=patch, stride=stride)
        assert a[27, 27] != 0 and np.isfinite(a).all(), (patch, stride)
        assert np.all(a[:10, :10] == 0)   # far from the ink: no square there touches ink
    with pytest.raises(InsightError, match="stride"):
        saliency(predictor.model, img, predictor.mean, predictor.std, method="occlusion", patch=2, stride=3)


def test_target_changes_the_map(predictor):
    img = seven28(predictor)
    a7 = saliency(predictor.model, img, predictor.mean, predictor.std, target=7)
    a1 = saliency(predictor.model, img, predictor.mean, predictor.std, target=1)
    assert not np.allclose(a7, a1)
    assert a7.sum() > a1.sum()  # more evidence for what it is than for what it is not


def test_stroke_mask_and_mass_on_ink():
    img = np.zeros((28, 28), np.float32)
    img[10:18, 13:15] = 1.0
    m = stroke_mask(img, dilate=1)
    assert m.sum() == 10 * 4 and m[9:19, 12:16].all()
    on = np.zeros_like(img)
    on[12, 13] = 3.0
    off = np.zeros_like(img)
    off[2, 2] = 1.0
    assert mass_on_ink(on + off, img) == pytest.approx(0.75)
    assert mass_on_ink(-on, img) != mass_on_ink(-on, img)  # NaN: no positive evidence at all


@pytest.mark.parametrize("bad, message", [
    (np.zeros((28, 27)), "28x28"),
    (np.full((28, 28), np.nan), "NaN"),
    (np.full((28, 28), 2.0), "in \\[0, 1\\]"),
    ("seven", "28x28"),
])
def test_bad_images_are_refused_clearly(predictor, bad, message):
    with pytest.raises(InsightError, match=message):
        saliency(predictor.model, bad, predictor.mean, predictor.std)


def test_bad_method_target_and_k_are_refused(predictor):
    img = seven28(predictor)
    with pytest.raises(InsightError, match="unknown saliency method"):
        saliency(predictor.model, img, predictor.mean, predictor.std, method="lime")
    for t in (10, -1, 3.0, True):
        with pytest.raises(InsightError, match="digit 0-9"):
            saliency(predictor.model, img, predictor.mean, predictor.std, target=t)
    index = FeatureIndex(torch.randn(20, 16), torch.zeros(20, 28, 28, dtype=torch.uint8), torch.arange(20) % 10)
    for k in (0, 65, "8"):
        with pytest.raises(InsightError, match="k must be"):
            lookalikes(predictor, index, img, k=k)


# ------------------------------------------------------------------------------------ explain

def test_explain_takes_what_predict_takes(predictor):
    sketch = stroke_digit("7")
    e = explain(predictor, sketch)
    p = predictor.predict(sketch)
    assert not e.empty and e.target == p.digit == 7
    np.testing.assert_allclose(e.prediction.probabilities, p.probabilities, atol=1e-6)
    img = explanation_image(e)
    assert img.shape == (28 * SCALE, 28 * SCALE, 3) and img.dtype == np.uint8
    assert "Evidence for 7" in explanation_caption(e)
    # sketchpad-like dict, as the app sends
    assert explain(predictor, {"background": None, "layers": [], "composite": sketch}).target == 7


def test_explain_blank_and_junk(predictor):
    e = explain(predictor, np.zeros((200, 200, 4), np.uint8))
    assert e.empty and e.attribution is None and explanation_image(e) is None
    assert "Nothing to explain" in explanation_caption(e)
    with pytest.raises(PreprocessError):
        explain(predictor, b"not an image")
    with pytest.raises(InsightError, match="unknown saliency method"):
        explain(predictor, stroke_digit("1"), method="nope")


# ------------------------------------------------------------------------------------ pictures

def test_overlay_is_crisp_gray_digit_plus_heat():
    img = np.zeros((28, 28), np.float32)
    img[5:20, 10:14] = 1.0
    attr = np.zeros((28, 28), np.float32)
    attr[6, 11] = 1.0
    out = overlay(img, attr, scale=4)
    assert out.shape == (112, 112, 3) and out.dtype == np.uint8
    blocks = out.reshape(28, 4, 28, 4, 3)
    assert (blocks == blocks[:, :1, :, :1]).all(), "every 28x28 pixel must be one flat 4x4 square"
    px = blocks[:, 0, :, 0]
    assert tuple(px[0, 0]) == (0, 0, 0)                     # background stays black
    assert px[10, 11, 0] == px[10, 11, 1] == px[10, 11, 2]  # ink without evidence stays gray
    assert px[6, 11, 0] > px[6, 11, 2] + 50                 # evidence is warm (red/yellow)
    assert (overlay(img, None, 1) == overlay(img, np.zeros((28, 28)), 1)).all()
    with pytest.raises(ValueError):
        overlay(img, np.zeros((27, 28)))
    assert png_data_uri(out).startswith("data:image/png;base64,")


def test_confusion_html():
    cm = np.diag(np.full(10, 100))
    cm[4, 9] = 3
    cm[7, 2] = 1
    h = confusion_html(cm, "shipped")
    assert h.count("<td") == 100 and "data-errors='4'" in h
    assert "1,000 of 1,004 right (99.60%), 4 wrong" in h and "shipped" in h
    assert re.search(r"data-true='4' data-said='9' [^>]*rgba\(220,38,38,0\.90\)[^>]*>3<", h)
    with pytest.raises(ValueError):
        confusion_html(np.zeros((9, 10)))
    assert stored_confusion({"test_metrics": {"confusion_matrix": cm.tolist()}}) == cm.tolist()
    assert stored_confusion({"test_metrics": {}}) is None and stored_confusion(None) is None


# ------------------------------------------------------------------------------------ mistakes (stub model)

class FirstPixelModel(torch.nn.Module):
    """Says the digit written in pixel (0, 0) (value d/10), with confidence set by pixel (0, 1)."""

    def __init__(self, mean, std):
        super().__init__()
        self.mean, self.std = mean, std

    def forward(self, x):
        pix = x[:, 0] * self.std + self.mean
        said = (pix[:, 0, 0] * 10).round().long().clamp(0, 9)
        logits = torch.zeros(len(x), 10)
        logits[torch.arange(len(x)), said] = pix[:, 0, 1] * 20
        return F.log_softmax(logits, 1)


def stub_data(said, labels, sure):
    images = np.zeros((len(labels), 28, 28), np.uint8)
    images[:, 0, 0] = np.round(np.asarray(said) / 10 * 255)
    images[:, 0, 1] = np.round(np.asarray(sure) * 255)
    return torch.from_numpy(images), torch.tensor(labels)


def test_find_mistakes_sorting_captions_and_confusion():
    said = [3, 4, 9, 2, 7, 7, 1]
    true = [3, 9, 9, 7, 7, 1, 1]
    sure = [0.9, 0.9, 0.1, 0.1, 0.5, 0.4, 0.2]
    images, labels = stub_data(said, true, sure)
    found = find_mistakes(FirstPixelModel(0.1307, 0.3081), images, labels, 0.1307, 0.3081, batch=3)
    assert [m.index for m in found] == [1, 5, 3]                 # most confident first
    assert [(m.true, m.said) for m in found] == [(9, 4), (1, 7), (7, 2)]
    assert re.fullmatch(r"true 9 -> said 4 \(\d+%\)", found[0].caption)
    assert (found[0].image == images[1].numpy()).all()
    assert [m.index for m in sort_mistakes(found, "least confident first")] == [3, 5, 1]
    assert [m.true for m in sort_mistakes(found, "by true digit")] == [1, 7, 9]
    with pytest.raises(InsightError, match="unknown order"):
        sort_mistakes(found, "random")
    cm = np.asarray(confusion_from_mistakes(found, labels))
    assert cm.sum() == 7 and np.trace(cm) == 4 and cm[9, 4] == cm[1, 7] == cm[7, 2] == 1
    items = mistake_items(found)
    assert len(items) == 3 and items[0][1] == found[0].caption and items[0][0].shape == (84, 84, 3)


def test_caption_format():
    m = Mistake(0, 4, 9, 0.871, np.zeros((28, 28), np.uint8))
    assert m.caption == "true 4 -> said 9 (87%)"


# ------------------------------------------------------------------------------------ service

def test_service_without_mnist_gives_one_line_reason(tmp_path):
    reason = mnist_unavailable(tmp_path)
    assert reason and "\n" not in reason and "not on disk" in reason and str(tmp_path) in reason
    service = InsightService(tmp_path)
    assert service.unavailable() == reason
    with pytest.raises(DataError, match="not on disk"):
        service.data()


def test_service_caches_per_model_and_uses_stored_confusion(tmp_path, synthetic_root, predictor, monkeypatch):
    service = InsightService(synthetic_root)
    assert service.unavailable() is None
    calls = {"build": 0, "mistakes": 0}
    build, find = FeatureIndex.build.__func__, insight.find_mistakes

    def counting_build(cls, *a, **k):
        calls["build"] += 1
        return build(cls, *a, **k)

    def counting_find(*a, **k):
        calls["mistakes"] += 1
        return find(*a, **k)

    monkeypatch.setattr(FeatureIndex, "build", classmethod(counting_build))
    monkeypatch.setattr(insight, "find_mistakes", counting_find)
    img = seven28(predictor)
    first = service.lookalikes(predictor, img, k=5)
    again = service.lookalikes(predictor, img, k=5)
    assert len(first) == 5 and [x.index for x in first] == [x.index for x in again] and calls["build"] == 1
    assert all(0 <= x.label <= 9 and x.image.shape == (28, 28) for x in first)
    assert first[0].similarity >= first[-1].similarity
    assert len(lookalike_items(first)) == 5
    m1 = service.mistakes(predictor)
    m2 = service.mistakes(predictor, "least confident first")
    assert calls["mistakes"] == 1 and sorted(m.index for m in m1) == sorted(m.index for m in m2)
    assert service.test_size == 300
    assert f"{len(m1)} of the 300 MNIST test digits" in mistakes_note(m1, service.test_size)
    stored = [[7] * 10 for _ in range(10)]
    assert service.confusion(predictor, {"test_metrics": {"confusion_matrix": stored}}) == stored
    rebuilt = np.asarray(service.confusion(predictor, {}))
    test = read_split(raw_dir(synthetic_root), False)
    assert rebuilt.sum() == len(test) and rebuilt.sum() - np.trace(rebuilt) == len(m1)
    other = Predictor.from_file(predictor.name)   # the same file loaded again: another model object
    service.lookalikes(other, img, k=5)
    assert calls["build"] == 2  # a different loaded model gets its own features


# ------------------------------------------------------------------------------------ real MNIST

@pytest.fixture(scope="module")
def real(real_mnist):
    raw = raw_dir(real_mnist)
    return read_split(raw, True), read_split(raw, False)


def test_saliency_lies_on_the_ink_of_real_test_digits(predictor, real):
    _, test = real
    for method in ("integrated_gradients", "occlusion"):
        on, shifted = [], []
        for i in range(0, 10_000, 100):   # 100 test digits, every class
            img = test.images[i].numpy().astype(np.float32) / 255
            a = saliency(predictor.model, img, predictor.mean, predictor.std, method=method)
            on.append(mass_on_ink(a, img))
            shifted.append(mass_on_ink(np.roll(a, (5, 5), (0, 1)), img))
        assert np.median(on) >= 0.9 and np.mean(np.asarray(on) >= 0.7) >= 0.95, (method, np.median(on), min(on))
        # the check can fail: the same maps moved 5 px off their digit are mostly off the ink
        assert np.median(shifted) < 0.7, (method, np.median(shifted))


def test_lookalikes_of_test_digits_share_their_label(predictor, real):
    """Top-1 look-alike of 500 test digits has the true label >= 90% of the time (index of 10,000
    training digits to keep the test quick; the app indexes all 60,000)."""
    train, test = real
    index = FeatureIndex.build(predictor.model, train.images[:10_000], train.labels[:10_000],
                               predictor.mean, predictor.std)
    assert index.features.shape == (10_000, 16)
    idx = np.random.default_rng(0).choice(len(test), 500, replace=False)
    same = 0
    for i in idx:
        found = lookalikes(predictor, index, test.images[i].numpy().astype(np.float32) / 255, k=8)
        assert len(found) == 8 and all(a.similarity >= b.similarity for a, b in itertools.pairwise(found))
        same += found[0].label == int(test.labels[i])
    assert same / 500 >= 0.90, same


def test_gallery_holds_exactly_the_misclassified_test_digits(predictor, real, real_mnist, shipped_checkpoint):
    from mnist_core.checkpoint import load_checkpoint

    _, test = real
    mistakes = InsightService(real_mnist).mistakes(predictor)
    # independent evaluation: the Predictor's own path (preprocess.normalize_image + forward), per index
    probs = np.concatenate([predictor.probabilities(test.images[i:i + 1000].numpy() / 255.0)
                            for i in range(0, len(test), 1000)])
    wrong = np.flatnonzero(probs.argmax(1) != test.labels.numpy())
    assert sorted(x.index for x in mistakes) == wrong.tolist()
    for x in mistakes:
        assert x.said == probs[x.index].argmax() and x.true == test.labels[x.index]
        assert x.confidence == pytest.approx(probs[x.index].max(), abs=1e-5)
        assert (x.image == test.images[x.index].numpy()).all()
    # the training run's own evaluation, stored in the checkpoint (what the heat map shows), agrees cell by cell
    stored = np.asarray(stored_confusion(load_checkpoint(shipped_checkpoint)))
    assert stored.sum() - np.trace(stored) == len(mistakes) == len(wrong)
    assert (np.asarray(confusion_from_mistakes(mistakes, test.labels)) == stored).all()
    # a clicked mistake is explained the same way as a drawing
    first = mistakes[0]
    e = explain_image28(predictor, first.image / 255.0)
    assert e.target == first.said and explanation_image(e).shape == (224, 224, 3)


def test_inspect_drawing_never_waits_for_the_index_and_says_why(tmp_path, synthetic_root, predictor):
    from mnist_core.insight import INDEXING_NOTE, inspect_drawing, inspect_image28
    from mnist_web.insight_views import drawing_outputs

    sketch = stroke_digit("7")
    missing = inspect_drawing(InsightService(tmp_path), predictor, sketch)
    assert missing.explanation.target == 7 and missing.lookalikes is None
    assert missing.note.startswith("No look-alikes: MNIST is not on disk") and "\n" not in missing.note
    image, caption, strip = drawing_outputs(missing)
    assert image.shape == (224, 224, 3) and "data-count='0'" in strip and "not on disk" in strip

    service = InsightService(synthetic_root)
    first = inspect_drawing(service, predictor, sketch)
    assert first.lookalikes is None and first.note == INDEXING_NOTE    # built in the background
    deadline = time.time() + 60
    while service.ready_index(predictor) is None and time.time() < deadline:
        time.sleep(0.05)
    later = inspect_drawing(service, predictor, sketch, k=6)
    assert len(later.lookalikes) == 6 and "nearest training digits" in later.note
    strip = drawing_outputs(later)[2]
    assert "data-count='6'" in strip and strip.count("<figure") == 6 and strip.count("data:image/png;base64,") == 6
    assert [f"data-label='{x.label}'" in strip for x in later.lookalikes] == [True] * 6
    blank = inspect_drawing(service, predictor, np.zeros((50, 50), np.uint8))
    assert blank.explanation.empty and blank.lookalikes is None and drawing_outputs(blank)[0] is None
    digit = inspect_image28(service, predictor, seven28(predictor), wait_for_index=True)
    assert digit.explanation.target == 7 and len(digit.lookalikes) == 8
