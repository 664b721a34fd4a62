"""The stroke payload the Draw tab's canvas sends: parsing, bounds, rendering, and the /classify_strokes API."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from gradio_client import Client

import demo
from mnist_core.predict import UNSURE_BELOW, Prediction
from mnist_core.strokes import MAX_POINTS, MAX_STROKES, StrokeError, parse_strokes, render_strokes, strokes_to_image
from mnist_web.components import Label
from mnist_web.views import EMPTY_MESSAGE, label_value, prediction_html
from tests.e2e.browser import free_port


def payload(strokes, **kw) -> str:
    return json.dumps({"width": 320, "height": 320, "brush": 22, "strokes": strokes, **kw})


SEVEN = [[[60, 50], [160, 50], [260, 50]], [[260, 50], [200, 160], [140, 280]]]
ONE = [[[160, 40], [162, 150], [165, 280]]]


def circle(cx, cy, rx, ry, n=32):
    return [[cx + rx * math.sin(2 * math.pi * i / n), cy - ry * math.cos(2 * math.pi * i / n)] for i in range(n + 1)]


ZERO = [circle(160, 160, 70, 110)]


def test_parse_and_render_a_seven():
    s = parse_strokes(payload(SEVEN))
    assert (s.width, s.height, s.brush, len(s.strokes), s.points) == (320, 320, 22, 2, 6)
    img = render_strokes(s)
    assert img.shape == (320, 320) and img.dtype == np.uint8
    ink = img < 128
    # the bar is drawn at the brush width (round caps reach brush/2 beyond the end points)
    cols = np.flatnonzero(ink[50])
    assert cols.min() == pytest.approx(60 - 11, abs=2) and cols.max() >= 260
    rows = np.flatnonzero(ink[:, 110])
    assert rows.min() == pytest.approx(50 - 11, abs=2) and rows.max() <= 50 + 12
    assert not ink[200:, :100].any()          # nothing where no stroke went


def test_canvas_size_scales_the_drawing_not_the_result():
    small = render_strokes(parse_strokes(payload(SEVEN)))
    big_strokes = [[[x * 2, y * 2] for x, y in s] for s in SEVEN]
    big = render_strokes(parse_strokes(json.dumps({"width": 640, "height": 640, "brush": 44, "strokes": big_strokes})))
    assert big.shape == small.shape                 # rendered at <= 320 px whatever the canvas claims
    assert np.mean((big < 128) != (small < 128)) < 0.01


@pytest.mark.parametrize("value", [None, "", "  ", payload([]), {"strokes": []}, payload([[]])])
def test_nothing_drawn_is_empty(value):
    assert parse_strokes(value).empty and strokes_to_image(value) is None


BAD = {
    "not json": ("{strokes: oops", "not valid JSON"),
    "a list": ("[1, 2, 3]", "must be an object"),
    "strokes not a list": (payload("abc"), "strokes must be a list"),
    "stroke not a list": (payload([5]), "each stroke"),
    "point not a pair": (payload([[[1, 2, 3]]]), "[x, y]"),
    "string coordinate": (payload([[["1", 2], [3, 4]]]), "must be a number"),
    "bool coordinate": (payload([[[True, 2], [3, 4]]]), "must be a number"),
    "NaN": ('{"width": 320, "height": 320, "strokes": [[[NaN, 1], [2, 3]]]}', "not a number"),
    "Infinity": ('{"width": 320, "height": 320, "strokes": [[[Infinity, 1], [2, 3]]]}', "not a number"),
    "huge number": (payload([[[1e308 * 10, 1], [2, 3]]]), "not a number"),
    "far outside": (payload([[[5000, 10], [20, 30]]]), "far outside"),
    "negative far outside": (payload([[[-400, 10], [20, 30]]]), "far outside"),
    "canvas too big": (json.dumps({"width": 10**6, "height": 320, "strokes": []}), "canvas size"),
    "canvas zero": (json.dumps({"width": 0, "height": 0, "strokes": []}), "canvas size"),
    "brush zero": (payload(SEVEN, brush=0), "brush"),
    "brush huge": (payload(SEVEN, brush=300), "brush"),
    "too many strokes": (payload([[[1, 1], [2, 2]]] * (MAX_STROKES + 1)), "too many strokes"),
    "too many points": (payload([[[1.0, 1.0]] * (MAX_POINTS + 1)]), "too many points"),
    "too long": ("x" * 500_001, "too large"),
    "deep nesting": ("[" * 100_000 + "]" * 100_000, "not valid JSON"),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_payloads_get_a_short_clear_message(name):
    value, words = BAD[name]
    with pytest.raises(StrokeError) as e:
        parse_strokes(value)
    assert words in str(e.value) and len(str(e.value)) < 120


def test_a_one_point_stroke_is_a_dot_not_an_error():
    s = parse_strokes(payload([[[160, 160]]]))
    img = render_strokes(s)
    ys, xs = np.nonzero(img < 128)
    assert 15 <= xs.max() - xs.min() + 1 <= 24 and 15 <= ys.max() - ys.min() + 1 <= 24   # a dot of the brush's size


def test_unsure_label_never_looks_confident():
    probs = np.full(10, (1 - 0.45) / 9, np.float32)
    probs[7] = 0.45
    unsure = Prediction(probs, np.zeros((28, 28), np.float32), False)
    assert unsure.unsure and label_value(unsure)["label"] == "7?"
    assert "maybe a 7" in prediction_html(unsure)
    sure = np.full(10, 0.01, np.float32)
    sure[8] = 0.91
    p = Prediction(sure, np.zeros((28, 28), np.float32), False)
    assert not p.unsure and label_value(p)["label"] == "8"
    eight = sure.copy()
    eight[8], eight[3] = UNSURE_BELOW - 0.01, 1 - (UNSURE_BELOW - 0.01) - 0.08
    assert "maybe an 8" in prediction_html(Prediction(eight / eight.sum(), np.zeros((28, 28), np.float32), False))
    # what the page's Label shows: the headline as given, the 10 confidences sorted
    out = Label(num_top_classes=None).postprocess(label_value(unsure))
    assert out.label == "7?" and len(out.confidences) == 10 and out.confidences[0].label == "7"


@pytest.fixture(scope="module")
def client(tmp_path_factory, synthetic_root, shipped_checkpoint):
    app = demo.build_app(shipped_checkpoint, tmp_path_factory.mktemp("runs"), data_dir=str(synthetic_root),
                            download=False, train_enabled=False)
    port = free_port()
    demo.launch(app, port=port, prevent_thread_lock=True, quiet=True)
    yield Client(f"http://127.0.0.1:{port}/", verbose=False)
    app.close()


@pytest.mark.parametrize("strokes, digit", [(SEVEN, "7"), (ONE, "1"), (ZERO, "0")])
def test_classify_strokes_api(client, strokes, digit):
    label, html = client.predict(payload(strokes), api_name="/classify_strokes")
    assert label["label"] == digit and len(label["confidences"]) == 10
    assert "data:image/png;base64," in html
    # the page calls /explain_strokes when the drawing settles ("Show why" is on by default)
    heat, caption, lookalikes = client.predict(payload(strokes), api_name="/explain_strokes")
    assert "<img class='heat'" in heat and f"Evidence for {digit}" in caption
    heat, caption, lookalikes = client.predict(payload(strokes), False, api_name="/explain_strokes")
    assert "<img" not in heat and caption == lookalikes == ""     # off: the (hidden) panel's empty state


def test_classify_strokes_api_refuses_bad_payloads_and_keeps_working(client):
    for name in ("not json", "NaN", "far outside", "too many strokes", "too many points", "string coordinate"):
        label, html, *_ = client.predict(BAD[name][0], api_name="/classify_strokes")
        assert label["label"] == EMPTY_MESSAGE and "Cannot classify" in html, name
        assert BAD[name][0][:60] not in html            # the payload is never echoed back
        heat, caption, _ = client.predict(BAD[name][0], api_name="/explain_strokes")
        assert caption.startswith("Cannot explain") and BAD[name][0][:60] not in caption, name
    for value in ("", payload([]), payload([[[160, 160]]])):
        label, html, *_ = client.predict(value, api_name="/classify_strokes")
        assert label["label"] == EMPTY_MESSAGE and "data-empty='true'" in html
    label, *_ = client.predict(payload(SEVEN), api_name="/classify_strokes")
    assert label["label"] == "7"
