"""End to end in a real browser: Debian's Chromium driven by Playwright draws with the mouse, a finger and
the keyboard, and trains.

Skips outside CI when Chromium or Playwright is missing; in CI both are installed by .ci/run and the
tests must run. Every wait is for the response an action caused (a label, an attribute), never a sleep.
"""
from __future__ import annotations

import itertools
import time
from pathlib import Path

import pytest

from tests.e2e.browser import (
    ARTIFACTS,
    DIGITS,
    LABEL,
    PHONE,
    ROW_EPOCHS_JS,
    WATCH_LABEL_JS,
    clear,
    draw,
    open_page,
    set_number,
    shown_label,
    strokes_on_canvas,
    to_screen,
    wait_label,
    wait_state,
)


@pytest.fixture(scope="module")
def page(browser, server):
    pg = open_page(browser, server)
    pg.evaluate(WATCH_LABEL_JS, LABEL)
    yield pg
    pg.close()


def test_draw_digits_and_clear(page):
    for digit, strokes in DIGITS.items():
        draw(page, strokes)
        wait_label(page, digit)
        assert page.locator("#view .prediction").get_attribute("data-empty") == "false"
        assert strokes_on_canvas(page) == len(strokes)
        # one chart of the probabilities on the page: the 10 bars in digit order; the Label shows the answer
        assert page.locator("#view .bar-row").count() == 10
        assert page.locator("#label .confidence-set:visible").count() == 0
        if digit == "7":
            page.screenshot(path=str(ARTIFACTS / "draw-tab.png"))
        clear(page)


def test_the_label_follows_the_pen_before_it_lifts(page):
    """A slow 7: the label must change while the mouse button is still down."""
    n0 = page.evaluate("window.__labels.length")
    bar, diagonal = to_screen(page, DIGITS["7"][0]), to_screen(page, DIGITS["7"][1])
    page.mouse.move(*bar[0])
    page.mouse.down()
    try:
        for p in bar[1:] + diagonal[1:]:
            page.mouse.move(*p, steps=12)
        # still drawing: an update for the strokes so far must already have arrived
        page.wait_for_function("(n) => window.__labels.length > n", arg=n0, timeout=10_000)
        assert page.evaluate("window.__labels.length") > n0
    finally:
        page.mouse.up()
    wait_label(page, "7")
    clear(page)


def test_undo_button_and_keyboard(page):
    draw(page, DIGITS["7"])
    wait_label(page, "7")
    n0 = page.evaluate("window.__labels.length")
    page.click("#sketchpad button[aria-label='Undo']")            # only the bar is left
    assert strokes_on_canvas(page) == 1
    page.wait_for_function("(n) => window.__labels.length > n", arg=n0, timeout=10_000)
    assert shown_label(page) != "7"
    page.locator("#sketchpad canvas").focus()
    page.keyboard.press("Control+z")                                # nothing left
    assert strokes_on_canvas(page) == 0
    wait_label(page, "Draw a digit")
    draw(page, DIGITS["1"])
    wait_label(page, "1")
    page.keyboard.press("Escape")                                   # Escape clears
    wait_label(page, "Draw a digit")
    assert strokes_on_canvas(page) == 0


def test_a_dot_is_not_a_digit(page):
    draw(page, [[(0.5, 0.5)]])                                      # a tap: one point
    # wait for the answer to the dot itself (the empty state before it said "nothing drawn")
    page.wait_for_function("() => document.querySelector('#view').innerText.includes('too small')", timeout=10_000)
    assert page.locator("#view .prediction").get_attribute("data-empty") == "true"
    assert shown_label(page) == "Draw a digit"
    clear(page)


def test_drawing_writes_no_files(page):
    import gradio.processing_utils

    cache = Path(gradio.processing_utils.get_upload_folder())   # Gradio's temp dir (GRADIO_TEMP_DIR)
    before = {p for p in cache.rglob("*") if p.is_file()} if cache.exists() else set()
    for digit in "170":
        draw(page, DIGITS[digit])
        wait_label(page, digit)
        clear(page)
    after = {p for p in cache.rglob("*") if p.is_file()} if cache.exists() else set()
    assert after - before == set()


def test_touch_draws_too(browser, server):
    """A phone: touch pointer events (through Chromium's own touch emulation) draw instead of scrolling."""
    pg = open_page(browser, server, **PHONE)
    try:
        pg.locator("#sketchpad canvas").scroll_into_view_if_needed()
        cdp = pg.context.new_cdp_session(pg)
        for stroke in DIGITS["7"]:
            pts = to_screen(pg, stroke)
            dense = [(a[0] + (b[0] - a[0]) * t / 8, a[1] + (b[1] - a[1]) * t / 8)
                     for a, b in itertools.pairwise(pts) for t in range(8)] + [pts[-1]]
            cdp.send("Input.dispatchTouchEvent",
                     {"type": "touchStart", "touchPoints": [{"x": dense[0][0], "y": dense[0][1]}]})
            for x, y in dense[1:]:
                cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": x, "y": y}]})
            cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
        wait_label(pg, "7")
        assert pg.get_attribute("#sketchpad .sketch", "data-pointer") == "touch"
        assert strokes_on_canvas(pg) == 2
        # crisp on a high-DPI screen: the backing store is the displayed size x devicePixelRatio
        w, css_w = pg.evaluate("() => { const c = document.querySelector('#sketchpad canvas');"
                               " return [c.width, c.getBoundingClientRect().width]; }")
        assert w == round(css_w * PHONE["device_scale_factor"])
    finally:
        pg.close()


CHART_PAIRS = [("#loss-plot", "#acc-plot"), ("#compare-acc", "#compare-loss"), ("#per-class", "#confusion")]


def chart_boxes(pg) -> list[tuple[dict, dict]]:
    pg.get_by_role("tab", name="Train").click()
    pg.wait_for_selector("#loss-plot svg")
    return [(pg.locator(a).bounding_box(), pg.locator(b).bounding_box()) for a, b in CHART_PAIRS]


def test_train_charts_side_by_side_on_a_laptop_one_under_the_other_on_a_phone(browser, server):
    """Each pair of charts shares a row where there is room; on a phone each gets the full width instead of
    half of it (where the charts' 11-px labels shrank to 3 px)."""
    wide = open_page(browser, server)
    try:
        for left, right in chart_boxes(wide):
            assert abs(left["y"] - right["y"]) < 2 and right["x"] >= left["x"] + left["width"] - 1
    finally:
        wide.close()
    phone = open_page(browser, server, **PHONE)
    try:
        for top, bottom in chart_boxes(phone):
            assert bottom["y"] >= top["y"] + top["height"] - 1
            assert min(top["width"], bottom["width"]) >= 300
    finally:
        phone.close()


def test_train_tab_run_stop_and_use_model(page):
    page.get_by_role("tab", name="Train").click()
    page.wait_for_selector("#loss-plot")
    empty_plots = [page.locator(f"#{p}").screenshot() for p in ("loss-plot", "acc-plot")]
    set_number(page, "epochs", 2)
    set_number(page, "samples", 1200)
    page.click("#start")
    assert wait_state(page, ["finished", "failed", "refused"], 180_000) == "finished", page.inner_text("#train-status")
    page.wait_for_function(f"() => ({ROW_EPOCHS_JS})().length === 2", timeout=10_000)
    assert page.evaluate(ROW_EPOCHS_JS) == ["1", "2"]
    # the plots were drawn with the run's data: their pixels differ from the empty plots'
    for name, empty in zip(("loss-plot", "acc-plot"), empty_plots, strict=True):
        deadline = time.time() + 10
        while page.locator(f"#{name}").screenshot() == empty and time.time() < deadline:
            page.wait_for_timeout(200)
        assert page.locator(f"#{name}").screenshot() != empty, f"{name} never showed the run"
    page.screenshot(path=str(ARTIFACTS / "train-tab.png"), full_page=True)

    # a longer run, stopped by the button
    set_number(page, "epochs", 30)
    set_number(page, "samples", 60000)
    page.click("#start")
    wait_state(page, ["running"], 60_000)
    t0 = time.time()
    page.click("#stop")
    assert wait_state(page, ["stopped"], 30_000) == "stopped"
    assert time.time() - t0 < 30   # within a batch or two; generous for a loaded 2-core machine
    assert "Stopped after" in page.inner_text("#train-status")

    # the finished model is in the Draw tab's picker; classify with it
    page.get_by_role("tab", name="Draw").click()
    page.wait_for_selector("#sketchpad canvas")
    page.click("#model-picker input")
    option = page.locator("li.item", has_text="2 epochs").first
    option.click()
    page.wait_for_function("() => document.querySelector('#model-msg').innerText.includes('2 epochs')", timeout=10_000)
    draw(page, DIGITS["7"])
    page.wait_for_function("() => document.querySelector('#view').innerText.includes('2 epochs')", timeout=10_000)
    assert page.locator("#view .prediction").get_attribute("data-empty") == "false"


def test_closing_the_tab_stops_its_run(page):
    """No orphan training: a tab that starts a run and is closed takes its run with it (the server's
    GET /queue_status counts the runs going, in worker processes)."""
    import json
    import urllib.parse
    import urllib.request

    other = page.context.browser.new_page()
    other.goto(page.url)
    other.wait_for_selector("#sketchpad canvas")
    other.get_by_role("tab", name="Train").click()
    set_number(other, "epochs", 30)
    other.click("#start")
    wait_state(other, ["running"], 60_000)

    def training():
        u = urllib.parse.urlsplit(page.url)
        with urllib.request.urlopen(f"{u.scheme}://{u.netloc}/queue_status", timeout=10) as r:
            return json.loads(r.read())["running"] > 0

    assert training()
    other.close()
    deadline = time.time() + 30
    while training() and time.time() < deadline:
        time.sleep(0.2)
    assert not training(), "the run went on after its tab was closed"
