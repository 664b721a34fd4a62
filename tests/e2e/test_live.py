"""The live label computed in the page (web/mnistnet.js) in real Chromium, held against the server's
answer (mnist_core/raster.py + the PyTorch model, i.e. what /classify_strokes returns).

Parity: for 600 real test digits drawn as pen strokes (tests/mnist_strokes.py) and the edge cases of
tests/stroke_cases.py, with the shipped model and with a model trained through the Train tab's /train:
the page's 28x28 equals the server's within 1/255 per pixel, every probability and the "not a digit"
score within 1e-4, the same label and the same empty / "too small" / "not sure" / "not a digit" states.
Behaviour: no request while the pen moves, the weights once per model (with a 304 on a revalidation), the
server as the fallback when the weights do not arrive or the page's computation throws, "Show why" off
asks for nothing at pen-up.
"""
from __future__ import annotations

import json
import time
from urllib.error import HTTPError
from urllib.request import Request, urlopen

import numpy as np
import pytest

from mnist_core.data import load_mnist
from mnist_core.predict import Predictor
from mnist_core.raster import prepare_strokes
from mnist_web.views import label_value
from tests.e2e.browser import (
    DIGITS,
    LABEL,
    WATCH_LABEL_JS,
    draw,
    launch_browser,
    open_page,
    playwright_or_skip,
    quiet,
    wait_label,
)
from tests.mnist_strokes import random_drawings
from tests.server import launched
from tests.stroke_cases import EDGE_CASES

LIVE_MODE = "() => document.querySelector('#sketchpad .sketch').dataset.live"


@pytest.fixture(scope="module")
def app(tmp_path_factory, synthetic_root, shipped_checkpoint):
    sync_playwright = playwright_or_skip()
    from gradio_client import Client

    import demo

    runs = tmp_path_factory.mktemp("runs")
    app = demo.build_app(shipped_checkpoint, runs, data_dir=str(synthetic_root), download=False)
    with launched(app) as url:
        # a model trained by the Train tab's own endpoint (1,000 synthetic samples, 1 epoch)
        status = Client(url, verbose=False).predict(1, 0.02, 0.9, 32, 6, 0.1, 7, 0.0, 3, 1000, "cpu",
                                                    api_name="/train")[0]
        assert "data-state='finished'" in status, status
        (trained,) = sorted(runs.glob("*.pt"))
        with sync_playwright() as p:
            browser = launch_browser(p)
            try:
                yield {"url": url, "browser": browser, "shipped": shipped_checkpoint, "trained": trained}
            finally:
                browser.close()


def live_page(app, **options):
    pg = open_page(app["browser"], app["url"], **options)
    pg.wait_for_function(LIVE_MODE + " === 'page'", timeout=30_000)
    quiet(pg)
    return pg


def wait_until(pg, condition, timeout: float = 30):
    deadline = time.perf_counter() + timeout
    while not condition():
        assert time.perf_counter() < deadline, "timed out"
        pg.wait_for_timeout(50)


def source(pg):
    """'page' when the view shown was computed in the page, None for the server's."""
    return pg.locator("#view .prediction").get_attribute("data-source")


def pick_model(pg, text):
    pg.click("#model-picker input")
    pg.locator("li.item", has_text=text).first.click()
    pg.wait_for_function("(t) => document.querySelector('#model-msg').innerText.includes(t)", arg="Using",
                         timeout=30_000)


# The page's own computation for many drawings at once: its 28x28, probabilities, label value, states.
PAGE_PREDICT_JS = """(drawings) => drawings.map(d => {
  const r = window.MnistNet.predict(window.MnistApp.net, d);
  return {empty: r.empty, reason: r.reason, unsure: r.unsure, digit: r.digit,
          image: r.image ? Array.from(r.image) : null, probs: r.probs, novelty: r.novelty, notADigit: r.notADigit,
          label: window.MnistApp.labelValue(r).label};
})"""


def server_answers(predictor, drawings):
    out = []
    for d in drawings:
        prepared = prepare_strokes(d)
        pred = predictor.predict(prepared)
        lv = label_value(pred)
        out.append({"empty": pred.empty, "reason": pred.reason, "unsure": pred.unsure, "digit": pred.digit,
                    "image": prepared.image, "probs": pred.probabilities, "novelty": pred.novelty,
                    "notADigit": pred.not_a_digit,
                    "label": lv if isinstance(lv, str) else lv["label"]})
    return out


def assert_parity(page_out, server_out, names):
    worst_px, worst_p = 0.0, 0.0
    for name, a, b in zip(names, page_out, server_out, strict=True):
        assert (a["empty"], a["reason"], a["unsure"], a["digit"], a["label"], a["notADigit"]) == \
               (b["empty"], b["reason"], b["unsure"], b["digit"], b["label"], b["notADigit"]), name
        assert (a["novelty"] is None) == (b["novelty"] is None), name        # "not a digit": a model with stats
        if b["novelty"] is not None:
            assert abs(a["novelty"] - b["novelty"]) <= 1e-4, (name, a["novelty"], b["novelty"])
        if b["empty"]:
            assert a["image"] is None and a["probs"] is None, name
            continue
        px = float(np.abs(np.asarray(a["image"]).reshape(28, 28) - b["image"]).max())
        p = float(np.abs(np.asarray(a["probs"]) - b["probs"]).max())
        assert px <= 1 / 255 and p <= 1e-4, (name, px, p)
        worst_px, worst_p = max(worst_px, px), max(worst_p, p)
    return worst_px, worst_p


@pytest.fixture(scope="module")
def real_drawings(real_mnist):
    _, test = load_mnist(real_mnist, download=False)
    idx = np.random.default_rng(0).choice(len(test), 600, replace=False)
    return random_drawings(test.images[idx].numpy(), seed=0)


@pytest.mark.parametrize("model", ["shipped", "trained"])
def test_page_and_server_agree_on_600_real_digits_and_the_edge_cases(app, real_drawings, model):
    pg = live_page(app)
    try:
        if model == "trained":
            pick_model(pg, app["trained"].stem)
            pg.wait_for_function("(k) => window.MnistApp.net && window.MnistApp.key === k",
                                 arg=f"runs/{app['trained'].name}", timeout=30_000)
        predictor = Predictor.from_file(app[model])
        cases = list(EDGE_CASES.items())
        drawings = [d for _, d in cases] + real_drawings
        names = [n for n, _ in cases] + [f"real #{i}" for i in range(len(real_drawings))]
        t0 = time.perf_counter()
        page_out = []
        for i in range(0, len(drawings), 100):
            page_out += pg.evaluate(PAGE_PREDICT_JS, drawings[i:i + 100])
        seconds = time.perf_counter() - t0
        worst_px, worst_p = assert_parity(page_out, server_answers(predictor, drawings), names)
        states = {n: (a["label"], a["reason"]) for n, a in zip(names, page_out, strict=True) if n in EDGE_CASES}
        print(f"{model}: {len(drawings)} drawings in the page in {seconds:.1f} s; worst pixel {worst_px:.2e}, "
              f"worst probability {worst_p:.2e}")
        # the edge cases cover each state the app shows
        assert states["dot"] == ("Draw a digit", "too small to be a digit")
        assert states["nothing"] == ("Draw a digit", "nothing drawn")
        assert states["all outside the square"] == ("Draw a digit", "no ink found")
        if model == "shipped":
            assert states["ambiguous scrawl (not sure)"][0] == "7?"        # not sure
    finally:
        pg.close()


def test_drawing_sends_no_request_and_the_label_follows_the_pen(app):
    pg = live_page(app)
    try:
        pg.evaluate(WATCH_LABEL_JS, LABEL)
        requests = []
        pg.on("request", lambda r: requests.append((time.perf_counter(), r.url + (r.post_data or "")[:60])))
        box = pg.locator("#sketchpad canvas").first.bounding_box()
        pts = [(box["x"] + box["width"] * x, box["y"] + box["height"] * y) for x, y in
               [(0.2, 0.15), (0.5, 0.15), (0.8, 0.15), (0.7, 0.35), (0.6, 0.55), (0.5, 0.75), (0.45, 0.9)]]
        pg.mouse.move(*pts[0])
        pg.mouse.down()
        t_down = time.perf_counter()
        for p in pts[1:]:
            pg.mouse.move(*p, steps=8)
        labels_before_up = pg.evaluate("window.__labels.length")
        t_up = time.perf_counter()
        pg.mouse.up()
        wait_label(pg, "7")
        assert [u for t, u in requests if t_down <= t <= t_up] == []        # the pen moved: nothing asked
        assert labels_before_up >= 1                                       # it read the 7 before the pen lifted
        assert source(pg) == "page" and pg.locator("#view .bar-row").count() == 10
        # the explanation follows once the drawing settles (the page's, or the server's before the
        # look-alike index has arrived: tests/e2e/test_explain_page.py)
        pg.wait_for_function("() => document.querySelector('#saliency img, #saliency canvas, #saliency svg')",
                             timeout=30_000)
    finally:
        pg.close()


def test_show_why_off_asks_for_nothing_at_pen_up(app):
    pg = live_page(app)
    try:
        pg.click("#show-why input")
        pg.wait_for_function("() => !document.querySelector('#show-why input').checked")
        pg.wait_for_timeout(500)            # the checkbox's own event is done
        joins = []
        pg.on("request", lambda r: joins.append(r.url) if "queue/join" in r.url else None)
        draw(pg, DIGITS["1"])
        wait_label(pg, "1")
        pg.wait_for_timeout(500)
        assert joins == []
    finally:
        pg.close()


def test_switching_models_relabels_the_drawing_at_once(app):
    pg = live_page(app)
    try:
        draw(pg, DIGITS["0"])
        wait_label(pg, "0")
        shipped_view = pg.inner_text("#view")
        fetched = []
        pg.on("request", lambda r: fetched.append(r.url) if "mnist/weights" in r.url else None)
        pick_model(pg, app["trained"].stem)
        pg.wait_for_function("(v) => document.querySelector('#view').innerText !== v", arg=shipped_view,
                             timeout=30_000)
        assert "1 epoch" in pg.inner_text("#view")          # the trained model's description, from the page
        assert len(fetched) == 1
    finally:
        pg.close()


def test_without_weights_the_server_answers(app):
    """The weights never arrive (blocked): the page says nothing alarming and the server labels."""
    pg = app["browser"].new_page()
    try:
        calls = []
        pg.route("**/mnist/weights**", lambda route: (calls.append(1), route.abort()))
        pg.goto(app["url"])
        pg.wait_for_selector("#sketchpad canvas")
        wait_until(pg, lambda: calls)
        pg.wait_for_function(LIVE_MODE + " === 'server'", timeout=30_000)
        draw(pg, DIGITS["7"])
        wait_label(pg, "7", timeout=30_000)
        assert source(pg) is None                      # the server's view
        assert "error" not in pg.inner_text("#view").lower()
    finally:
        pg.close()


def test_weights_of_the_wrong_shape_are_refused(app):
    """A payload whose layer has the wrong number of weights is not computed with: the server answers."""
    calls = []

    def truncated(route):
        calls.append(route.request.url)
        res = route.fetch()
        data = res.json()
        data["layers"][4]["weight"] = data["layers"][4]["weight"][:40]        # 30 floats instead of 1,152
        route.fulfill(response=res, body=json.dumps(data))

    pg = app["browser"].new_page()
    try:
        pg.route("**/mnist/weights**", truncated)
        pg.goto(app["url"])
        pg.wait_for_selector("#sketchpad canvas")
        wait_until(pg, lambda: calls)
        pg.wait_for_function(LIVE_MODE + " === 'server'", timeout=30_000)
        assert pg.evaluate("window.MnistApp.net") is None
        draw(pg, DIGITS["0"])
        wait_label(pg, "0", timeout=30_000)
        assert source(pg) is None
    finally:
        pg.close()


def test_if_the_page_computation_throws_the_server_takes_over(app):
    pg = live_page(app)
    try:
        pg.evaluate("() => { window.MnistNet.predict = () => { throw new Error('planted'); }; }")
        draw(pg, DIGITS["1"])
        wait_label(pg, "1", timeout=30_000)
        assert pg.evaluate(LIVE_MODE) == "server"
        assert source(pg) is None
    finally:
        pg.close()


def test_weights_route_key_cache_and_bounds(app):
    base = app["url"] + "mnist/weights?key="
    with urlopen(base + "shipped") as res:
        body, etag = res.read(), res.headers["ETag"]
        assert res.headers["Cache-Control"] == "no-cache" and len(body) < 100_000
    data = json.loads(body)
    assert data["key"] == "shipped" and data["format"] == "mnist-folded-1" and len(data["layers"]) == 8
    with pytest.raises(HTTPError) as e304:
        urlopen(Request(base + "shipped", headers={"If-None-Match": etag}))
    assert e304.value.code == 304
    for bad in ("../checkpoints/mnist_cnn.pt", "/etc/passwd", "runs/nope.pt", ""):
        with pytest.raises(HTTPError) as err:
            urlopen(base + bad)
        assert err.value.code == 404
        assert "pick one from the list" in json.loads(err.value.read())["error"]
