""""Not a digit?" in real Chromium: the page's score (web/mnistnet.js `novelty`) equals the server's
(the /classify_strokes API: mnist_core/novelty.py through the Predictor) within 1e-4 for a digit, a star
and part of the non-digit set, with the model the page computes with; a star drawn with the mouse shows
"Not a digit?" with the best guess small, a 7 shows "7"; and the score keeps the live label's speed
(under 1 ms more per update)."""
from __future__ import annotations

import json
import math

import pytest

from mnist_core.predict import Predictor
from mnist_core.raster import prepare_strokes
from tests import nondigit_strokes
from tests.e2e.browser import DIGITS, LABEL, clear, draw, open_page, quiet, wait_label

PAGE_SCORES_JS = """(drawings) => drawings.map(d => {
  const r = window.MnistNet.predict(window.MnistApp.net, d);
  return {novelty: r.novelty, notADigit: r.notADigit, digit: r.digit, label: window.MnistApp.labelValue(r)};
})"""

# the same update (MnistNet.predict, then the label and the view) computed with and without the score, in
# alternating blocks of `n` (the browser's clock is coarse: a block's time / n), and the score alone:
# the fastest block of each (the least disturbed by other work on the machine), ms per update
TIMING_JS = """([d, n, blocks]) => {
  const app = window.MnistApp, net = app.net, plain = {...net, novelty: null};
  const update = (nt) => {
    const r = window.MnistNet.predict(nt, d); app.labelValue(r); app.predictionHtml(r, ''); return r; };
  const block = (fn) => {
    const t0 = performance.now(); for (let i = 0; i < n; i++) fn(); return (performance.now() - t0) / n; };
  const stages = update(net).stages, t = {with: [], without: [], score: []};
  for (let b = 0; b < blocks; b++) {
    t.with.push(block(() => update(net))); t.without.push(block(() => update(plain)));
    t.score.push(block(() => window.MnistNet.novelty(net.novelty, stages)));
  }
  return {with: Math.min(...t.with), without: Math.min(...t.without), score: Math.min(...t.score)};
}"""


def star_strokes(cx=0.5, cy=0.5, r=0.35):
    pts = [(cx + r * math.sin(math.radians(144 * k)), cy - r * math.cos(math.radians(144 * k))) for k in range(6)]
    return [pts]


@pytest.fixture(scope="module")
def page(browser, server):
    pg = open_page(browser, server)
    pg.wait_for_function("document.querySelector('#sketchpad .sketch').dataset.live === 'page'", timeout=30_000)
    quiet(pg)
    yield pg
    pg.close()


@pytest.fixture(scope="module")
def key(page):
    """The model the page computes with (the Draw tab's default): the server is asked about the same one."""
    k = page.evaluate("window.MnistApp.key")
    assert page.evaluate("window.MnistApp.net.novelty !== null"), f"the model {k!r} has no novelty stats"
    return k


@pytest.fixture(scope="module")
def client(server):
    from gradio_client import Client

    return Client(server, verbose=False)


def server_label(client, key, drawing) -> dict:
    """What /classify_strokes answers: the label value with not_a_digit and the score."""
    return client.predict(json.dumps(drawing), key, api_name="/classify_strokes")[0]


def test_page_score_equals_the_servers_within_1e4(page, key, client):
    digit = {"width": 320, "height": 320, "brush": 22,
             "strokes": [[[x * 320, y * 320] for x, y in s] for s in DIGITS["7"]]}
    drawings = [nondigit_strokes.star(), *[d.payload for d in nondigit_strokes.drawings(0)[::6]], digit]
    page_out = page.evaluate(PAGE_SCORES_JS, drawings)
    worst = 0.0
    for i, (d, a) in enumerate(zip(drawings, page_out, strict=True)):
        b = server_label(client, key, d)
        worst = max(worst, abs(a["novelty"] - b["novelty"]))
        assert abs(a["novelty"] - b["novelty"]) <= 1e-4, (i, a["novelty"], b["novelty"])
        assert a["notADigit"] is b["not_a_digit"] and a["label"]["label"] == b["label"], i
        assert a["label"]["not_a_digit"] is b["not_a_digit"]
    assert page_out[0]["notADigit"] and page_out[0]["label"]["label"] == "Not a digit?"     # the star
    assert not page_out[-1]["notADigit"] and page_out[-1]["label"]["label"] == "7"          # the 7
    print(f"{len(drawings)} drawings: worst |page - server| score {worst:.2e}")


def test_the_api_carries_the_flag_and_the_score(key, client, shipped_checkpoint):
    star = nondigit_strokes.star()
    label = server_label(client, key, star)
    assert label["not_a_digit"] is True and label["label"] == "Not a digit?" and label["novelty"] > 0
    assert {c["label"] for c in label["confidences"]} == {str(d) for d in range(10)}     # the guess is still there
    shipped = server_label(client, "shipped", star)              # the recipe's model: the Predictor's numbers
    expected = Predictor.from_file(shipped_checkpoint).predict(prepare_strokes(star))
    assert shipped["novelty"] == pytest.approx(expected.novelty, abs=1e-5) and shipped["not_a_digit"] is True


def test_a_star_drawn_shows_not_a_digit_and_a_seven_its_digit(page, key):
    draw(page, star_strokes())
    wait_label(page, "Not a digit?")
    headline = page.inner_text("#view .prediction .headline")
    assert headline.startswith("Not a digit?") and "best guess" in headline
    assert page.get_attribute("#view .prediction", "data-not-a-digit") == "true"
    assert page.locator(LABEL).count() == 1
    clear(page)
    draw(page, DIGITS["7"])
    wait_label(page, "7")
    assert page.get_attribute("#view .prediction", "data-not-a-digit") == "false"


def test_the_score_costs_under_1_ms_per_update(page, key):
    d = nondigit_strokes.star()
    timing = page.evaluate(TIMING_JS, [d, 20, 9])
    extra = timing["with"] - timing["without"]
    print(f"one live update: {timing['without']:.3f} ms without the score, {timing['with']:.3f} ms with it "
          f"({extra:+.3f} ms); the score alone {timing['score']:.4f} ms")
    # what the score adds to an update is its own computation (the layer means and 10 distances, above);
    # the difference of the two blocks is printed too, but on a shared machine it is mostly noise
    assert timing["score"] < 0.5
