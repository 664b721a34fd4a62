"""The front-end toolkit in real Chromium: web/kit.js and web/mnistnet.js are each in the page once, although
three components name the kit in their head (the canvas, the network view, the Train tab's run view), and
window.MnistApp is the one object they share, with the fields its opening comment declares."""
from __future__ import annotations

from mnist_web.assets import web_file
from tests.e2e.browser import DIGITS, draw, open_page

COUNT_JS = """([kit, net]) => ({kit: Array.from(document.scripts).filter(s => s.text === kit).length,
                                net: Array.from(document.scripts).filter(s => s.text === net).length})"""
SCRIPTS = [web_file("kit.js"), web_file("mnistnet.js")]
FIELDS_JS = """() => { const a = window.MnistApp;
  return {fields: ['net', 'key', 'model', 'pending', 'failures', 'live', 'last', 'network'].filter(k => !(k in a)),
          helpers: ['el', 'mapCanvas', 'paintMap', 'labelValue', 'predictionHtml', 'on', 'emit']
                     .filter(k => typeof a[k] !== 'function'),
          live: a.live, updates: a.network && a.network.updates, last: a.last && a.last.digit}; }"""


def test_the_kit_is_loaded_once_and_is_the_one_shared_object(browser, server):
    pg = open_page(browser, server)
    try:
        pg.wait_for_function("() => window.MnistApp && window.MnistApp.live === 'page'", timeout=30_000)
        assert pg.evaluate(COUNT_JS, SCRIPTS) == {"kit": 1, "net": 1}
        draw(pg, DIGITS["7"])
        pg.wait_for_function("() => window.MnistApp.last && !window.MnistApp.last.empty", timeout=30_000)
        got = pg.evaluate(FIELDS_JS)
        assert got["fields"] == [] and got["helpers"] == [] and got["live"] == "page"
        assert got["updates"] >= 1 and got["last"] is not None      # the network view heard 'result'
        pg.get_by_role("tab", name="Train").click()
        pg.wait_for_selector("#train-view", state="attached")
        pg.wait_for_timeout(300)
        assert pg.evaluate(COUNT_JS, SCRIPTS) == {"kit": 1, "net": 1}
    finally:
        pg.close()
