"""End to end in a real browser: Debian's Chromium driven by Playwright draws with the mouse and trains.

Skips outside CI when Chromium or Playwright is missing; in CI both are installed by .ci/run and the
tests must run.
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from tests.conftest import REAL_MNIST, ROOT, need

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = ROOT / "tests" / "artifacts"   # screenshots of each run (git-ignored)


@pytest.fixture(scope="module")
def page(tmp_path_factory, synthetic_root, shipped_checkpoint):
    need(Path(CHROMIUM).exists(), "Chromium is not installed (apt-get install -y chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        need(False, "playwright is not installed (pip install -r requirements-dev.txt)")
    import demo
    from tests.test_app import free_port

    data = REAL_MNIST if (REAL_MNIST / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file() else synthetic_root
    app = demo.build_app(shipped_checkpoint, tmp_path_factory.mktemp("runs"), data_dir=str(data), download=False)
    port = free_port()
    demo.launch(app, port=port, prevent_thread_lock=True, quiet=True)
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        pg = browser.new_page(viewport={"width": 1280, "height": 1000})
        pg.goto(f"http://127.0.0.1:{port}/")
        pg.wait_for_selector("#sketchpad canvas")
        yield pg
        browser.close()
    app.close()


def wait_brush(pg, timeout=15_000):
    """Wait until the page has selected the brush (Gradio shows "select the draw tool" until then)."""
    pg.wait_for_function("() => !document.querySelector('#sketchpad').innerText.includes('select the draw tool')",
                         timeout=timeout)


def canvas_square(pg):
    """Screen box of the drawing square: the canvas element is wider than the square it shows."""
    box = pg.locator("#sketchpad canvas").first.bounding_box()
    side = min(box["width"], box["height"]) * 0.8
    return box["x"] + (box["width"] - side) / 2, box["y"] + (box["height"] - side) / 2, side


def draw(pg, strokes):
    """strokes: lists of (x, y) in [0, 1] of the drawing square; each stroke is one mouse drag."""
    x0, y0, side = canvas_square(pg)
    for stroke in strokes:
        pts = [(x0 + x * side, y0 + y * side) for x, y in stroke]
        pg.mouse.move(*pts[0])
        pg.mouse.down()
        for p in pts[1:]:
            pg.mouse.move(*p, steps=4)
        pg.mouse.up()


def clear(pg):
    pg.click("#sketchpad button[aria-label='Clear canvas']")
    pg.wait_for_function("() => document.querySelector('#view .prediction').dataset.empty === 'true'", timeout=10_000)
    wait_label(pg, "Draw a digit")
    wait_brush(pg)  # the page re-selects the brush after a clear


def shown_label(pg) -> str:
    return pg.inner_text("#label [data-testid='label-output-value']").strip()


def wait_label(pg, expected: str, timeout=10_000):
    pg.wait_for_function(
        "(d) => { const e = document.querySelector(\"#label [data-testid='label-output-value']\");"
        " return e && e.textContent.trim() === d; }", arg=expected, timeout=timeout)


def circle(cx, cy, rx, ry, n=24):
    import math
    return [(cx + rx * math.sin(2 * math.pi * i / n), cy - ry * math.cos(2 * math.pi * i / n)) for i in range(n + 1)]


DIGITS = {
    # a 1: one vertical stroke, small, left of centre
    "1": [[(0.30, 0.30), (0.31, 0.45), (0.32, 0.62)]],
    # a 7: two strokes (bar, then diagonal), large, centred
    "7": [[(0.15, 0.12), (0.50, 0.12), (0.85, 0.12)], [(0.85, 0.12), (0.65, 0.50), (0.45, 0.90)]],
    # a 0: a closed loop, medium, bottom right
    "0": [circle(0.68, 0.66, 0.14, 0.22)],
}


def test_draw_digits_clear_and_dot(page):
    wait_brush(page)
    for digit, strokes in DIGITS.items():
        draw(page, strokes)
        wait_label(page, digit)
        assert page.locator("#view .prediction").get_attribute("data-empty") == "false"
        if digit == "7":
            page.screenshot(path=str(ARTIFACTS / "draw-tab.png"))
        clear(page)
    # a tiny dot is not a confident digit
    draw(page, [[(0.5, 0.5), (0.505, 0.5)]])
    page.wait_for_timeout(1500)
    pred = page.locator("#view .prediction")
    assert pred.get_attribute("data-empty") == "true" or pred.get_attribute("data-unsure") == "true"
    clear(page)


def set_number(pg, elem_id, value):
    field = pg.locator(f"#{elem_id} input")
    field.fill(str(value))
    field.press("Tab")


def wait_state(pg, states, timeout):
    pg.wait_for_function(
        "(s) => s.includes(document.querySelector('#train-status .train-status').dataset.state)",
        arg=list(states), timeout=timeout)
    return pg.locator("#train-status .train-status").get_attribute("data-state")


# Gradio 6's Dataframe draws body rows as elements carrying aria-rowindex (2, 3, ...): epoch = first word.
ROW_EPOCHS_JS = """() => { const rows = new Map();
  for (const e of document.querySelectorAll('#history [aria-rowindex]')) {
    const i = +e.getAttribute('aria-rowindex');
    if (i > 1 && !rows.has(i)) rows.set(i, e.innerText.trim().split(/\\s+/)[0]);
  }
  return [...rows.keys()].sort((a, b) => a - b).map(k => rows.get(k)); }"""


def test_train_tab_run_stop_and_use_model(page):
    page.get_by_role("tab", name="Train").click()
    set_number(page, "epochs", 2)
    set_number(page, "samples", 3000)
    page.click("#start")
    assert wait_state(page, ["finished", "failed", "refused"], 180_000) == "finished", page.inner_text("#train-status")
    page.wait_for_function(f"() => ({ROW_EPOCHS_JS})().length === 2", timeout=10_000)
    assert page.evaluate(ROW_EPOCHS_JS) == ["1", "2"]
    page.wait_for_selector("#loss-plot canvas, #loss-plot svg", timeout=10_000)
    page.wait_for_selector("#acc-plot canvas, #acc-plot svg", timeout=10_000)
    page.screenshot(path=str(ARTIFACTS / "train-tab.png"), full_page=True)

    # a longer run, stopped by the button
    set_number(page, "epochs", 30)
    set_number(page, "samples", 60000)
    page.click("#start")
    wait_state(page, ["running"], 60_000)
    t0 = time.time()
    page.click("#stop")
    assert wait_state(page, ["stopped"], 15_000) == "stopped"
    assert time.time() - t0 < 10
    assert "Stopped after" in page.inner_text("#train-status")

    # the finished model is in the Draw tab's picker; classify with it
    page.get_by_role("tab", name="Draw").click()
    wait_brush(page)
    page.click("#model-picker input")
    option = page.locator("li.item", has_text="2 epochs").first
    option.click()
    page.wait_for_timeout(500)
    draw(page, DIGITS["7"])
    page.wait_for_function("() => document.querySelector('#view .prediction').dataset.empty === 'false'", timeout=10_000)
    assert "2 epochs" in page.inner_text("#view")


def test_closing_the_tab_stops_its_run(page):
    """No orphan training: a tab that starts a run and is closed takes its run with it."""
    import threading

    other = page.context.browser.new_page()
    other.goto(page.url)
    other.wait_for_selector("#sketchpad canvas")
    other.get_by_role("tab", name="Train").click()
    set_number(other, "epochs", 30)
    other.click("#start")
    wait_state(other, ["running"], 60_000)
    training = lambda: any(t.name == "mnist-training" for t in threading.enumerate())
    assert training()
    other.close()
    deadline = time.time() + 30
    while training() and time.time() < deadline:
        time.sleep(0.2)
    assert not training(), "the run went on after its tab was closed"
