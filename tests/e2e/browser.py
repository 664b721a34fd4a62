"""Driving the app in Debian's Chromium with Playwright: shared by the browser tests, the latency
benchmark and the screenshots of the README and docs/. Coordinates of strokes are fractions (0..1) of the
drawing square."""
from __future__ import annotations

import contextlib
import math
import shutil
import socket
import time
from pathlib import Path

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"   # screenshots of each test run (git-ignored)
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
LABEL = "#label [data-testid='label-output-value']"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def playwright_or_skip():
    """Playwright's sync_playwright, once Chromium and Playwright are known to be here (else the test
    skips outside CI, and fails in CI: tests.conftest.need)."""
    from tests.conftest import need

    need(Path(CHROMIUM).exists(), "Chromium is not installed (apt-get install -y chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        need(False, "playwright is not installed (pip install -r requirements-dev.txt)")
    return sync_playwright


def launch_browser(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)


@contextlib.contextmanager
def served_with_browser(app):
    """An app of demo.build_app served as demo.launch serves it (tests.server.launched) and Chromium
    started: yields (its URL, the browser); both closed after. Call playwright_or_skip() first, before
    building the app."""
    from playwright.sync_api import sync_playwright

    from tests.server import launched

    with launched(app) as url, sync_playwright() as p:
        browser = launch_browser(p)
        try:
            yield url, browser
        finally:
            browser.close()


def circle(cx, cy, rx, ry, n=24):
    return [(cx + rx * math.sin(2 * math.pi * i / n), cy - ry * math.cos(2 * math.pi * i / n)) for i in range(n + 1)]


DIGITS = {
    # a 1: one vertical stroke, small, left of centre
    "1": [[(0.30, 0.30), (0.31, 0.45), (0.32, 0.62)]],
    # a 7: two strokes (bar, then diagonal), large, centred
    "7": [[(0.15, 0.12), (0.50, 0.12), (0.85, 0.12)], [(0.85, 0.12), (0.65, 0.50), (0.45, 0.90)]],
    # a 0: a closed loop, medium, bottom right
    "0": [circle(0.68, 0.66, 0.14, 0.22)],
}


def canvas_box(pg):
    box = pg.locator("#sketchpad canvas").first.bounding_box()
    return box["x"], box["y"], box["width"]


def to_screen(pg, pts):
    x0, y0, side = canvas_box(pg)
    return [(x0 + x * side, y0 + y * side) for x, y in pts]


def draw(pg, strokes, steps: int = 4):
    """Each stroke is one mouse drag through its points (the canvas scrolled into view first: mouse
    coordinates are the viewport's, and a click further down the page may have scrolled it away)."""
    pg.locator("#sketchpad canvas").first.scroll_into_view_if_needed()
    for stroke in strokes:
        pts = to_screen(pg, stroke)
        pg.mouse.move(*pts[0])
        pg.mouse.down()
        for p in pts[1:]:
            pg.mouse.move(*p, steps=steps)
        pg.mouse.up()


def shown_label(pg) -> str:
    return pg.inner_text(LABEL).strip()


def wait_label(pg, expected: str, timeout=10_000):
    pg.wait_for_function(
        "([sel, d]) => { const e = document.querySelector(sel); return e && e.textContent.trim() === d; }",
        arg=[LABEL, expected], timeout=timeout)


def strokes_on_canvas(pg) -> int:
    return int(pg.get_attribute("#sketchpad .sketch", "data-strokes"))


def clear(pg):
    pg.click("#sketchpad button[aria-label='Clear canvas']")
    wait_label(pg, "Draw a digit")
    assert strokes_on_canvas(pg) == 0


# Counts every change of the label's text and remembers when it happened (for "updates during a
# stroke" and "settled after pen-up"); installed once per page.
WATCH_LABEL_JS = """(sel) => {
  if (window.__labels) return;
  window.__labels = [];
  const text = () => { const e = document.querySelector(sel); return e ? e.textContent.trim() : ''; };
  let last = text();
  new MutationObserver(() => {
    const t = text();
    if (t !== last) { last = t; window.__labels.push([performance.now(), t]); }
  }).observe(document.querySelector('#label'), {childList: true, characterData: true, subtree: true});
}"""


def set_number(pg, elem_id, value):
    field = pg.locator(f"#{elem_id} input")
    field.fill(str(value))
    field.press("Tab")


def train_state(pg) -> str:
    return pg.locator("#train-status .train-status").get_attribute("data-state")


def wait_state(pg, states, timeout=120_000) -> str:
    """Wait until the Train tab's status is one of `states`; return it."""
    pg.wait_for_function(
        "(s) => s.includes(document.querySelector('#train-status .train-status').dataset.state)",
        arg=list(states), timeout=timeout)
    return train_state(pg)


# Gradio 6's Dataframe draws body rows as elements carrying aria-rowindex (2, 3, ...): epoch = first word.
ROW_EPOCHS_JS = """() => { const rows = new Map();
  for (const e of document.querySelectorAll('#history [aria-rowindex]')) {
    const i = +e.getAttribute('aria-rowindex');
    if (i > 1 && !rows.has(i)) rows.set(i, e.innerText.trim().split(/\\s+/)[0]);
  }
  return [...rows.keys()].sort((a, b) => a - b).map(k => rows.get(k)); }"""


# The start of an `async (n) => {...}` page function that draws a circle of n pointer moves, one per
# animation frame (a 60 Hz pen), dispatched in the page: Playwright's own mouse moves arrive at only
# ~15-30 per second on a loaded 2-core machine. Defines at(i) (the i-th point) and ev(type, i).
PEN_60HZ_PRELUDE = """async (n) => {
  const c = document.querySelector('#sketchpad canvas'), r = c.getBoundingClientRect();
  const at = (i) => [r.left + r.width * (0.5 + 0.3 * Math.sin(2 * Math.PI * i / n)),
                     r.top + r.height * (0.5 - 0.35 * Math.cos(2 * Math.PI * i / n))];
  const ev = (type, i) => { const [x, y] = at(i);
    c.dispatchEvent(new PointerEvent(type, {pointerId: 7, pointerType: 'mouse', button: 0, buttons: 1,
                                           clientX: x, clientY: y, bubbles: true, cancelable: true})); };
"""


PHONE = {"viewport": {"width": 390, "height": 844}, "has_touch": True, "is_mobile": True, "device_scale_factor": 2}


def open_page(browser, url: str, height: int = 1000, **options):
    """The app loaded in a new page (its own context): a 1280-px laptop window, or e.g. **PHONE."""
    pg = browser.new_page(**{"viewport": {"width": 1280, "height": height}, **options})
    pg.goto(url)
    pg.wait_for_selector("#sketchpad canvas")
    return pg


INDEX_SETTLED_JS = """() => { const x = window.MnistExplain, k = window.MnistApp && window.MnistApp.key;
  return !x || !k || !['loading', 'building'].includes(x.state(k)); }"""


def quiet(pg, ms: float = 800, timeout: float = 30):
    """Wait until the page has started no request for `ms` and its look-alike index is no longer on its
    way (a 202 "being built" is retried 2 s later: a load-time request, not one the test's drawing made)."""
    last = [time.perf_counter()]
    pg.on("request", lambda r: last.__setitem__(0, time.perf_counter()))
    deadline = time.perf_counter() + timeout
    while ((time.perf_counter() - last[0] < ms / 1000 or not pg.evaluate(INDEX_SETTLED_JS))
           and time.perf_counter() < deadline):
        pg.wait_for_timeout(100)
