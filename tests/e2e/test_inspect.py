"""End to end in Chromium: the insight views (issue 13) - the evidence heat map and the look-alike
training digits under a drawing (and the toggle that hides them), and the Inspect tab's mistakes
gallery, confusion heat map and a clicked mistake's evidence.

Runs on the small synthetic data set (fast, and the same in CI); the gallery must hold exactly the
mistakes an independent InsightService finds on that data. Skips outside CI when Chromium or
Playwright is missing.
"""
from __future__ import annotations

import re

import pytest

from tests.e2e.browser import ARTIFACTS, DIGITS, clear, draw, open_page, wait_label

CAPTION = re.compile(r"^true \d -> said \d \(\d+%\)$")


@pytest.fixture(scope="module")
def page(browser, server):
    pg = open_page(browser, server, height=1100)
    yield pg
    pg.close()


def wait_image(pg, elem_id: str, timeout=15_000):
    pg.wait_for_function("(id) => { const i = document.querySelector(`#${id} img`); "
                         "return i && i.complete && i.naturalWidth > 0; }", arg=elem_id, timeout=timeout)
    return pg.evaluate("(id) => document.querySelector(`#${id} img`).naturalWidth", elem_id)


def wait_items(pg, elem_id: str, n: int | None = None, timeout=30_000) -> int:
    cond = "c >= 1" if n is None else f"c === {n}"
    pg.wait_for_function("(id) => { const c = document.querySelectorAll(`#${id} .gallery-item`).length; "
                         f"return {cond}; }}", arg=elem_id, timeout=timeout)
    return pg.locator(f"#{elem_id} .gallery-item").count()


def test_drawing_shows_its_evidence_and_look_alikes_and_the_toggle_hides_them(page):
    draw(page, DIGITS["7"])
    wait_label(page, "7")
    assert wait_image(page, "saliency") == 224            # the 28x28 view, 8x, crisp
    page.wait_for_function("() => document.querySelector('#saliency-caption').innerText.includes('Evidence for 7')",
                           timeout=15_000)
    # hide: the panel goes; show again: recomputed for the drawing on the canvas, look-alikes included
    # (the feature index is built in the background after the first drawing)
    for _ in range(20):
        page.click("#show-why input")
        page.wait_for_selector("#why", state="hidden", timeout=10_000)
        page.click("#show-why input")
        page.wait_for_selector("#why", state="visible", timeout=10_000)
        page.wait_for_selector("#lookalikes .lookalikes", timeout=10_000)
        page.wait_for_function("() => !document.querySelector('#saliency-caption').innerText.includes('Nothing')")
        try:   # the first answers say "Indexing ..." until the background feature pass is done
            page.wait_for_selector("#lookalikes .lookalikes[data-count='8']", timeout=2_000)
            break
        except Exception:
            assert "Indexing" in page.inner_text("#lookalikes")
    page.wait_for_selector("#lookalikes .lookalikes[data-count='8']", timeout=1_000)
    captions = page.locator("#lookalikes figcaption").all_inner_texts()
    assert len(captions) == 8 and all(re.fullmatch(r"\d \(-?[01]\.\d\d\)", t.strip()) for t in captions), captions
    assert page.locator("#lookalikes img").evaluate_all("els => els.every(e => e.complete && e.naturalWidth === 28)")
    assert "nearest training digits" in page.inner_text("#lookalikes")
    page.screenshot(path=str(ARTIFACTS / "draw-why.png"), full_page=True)
    clear(page)
    page.wait_for_function("() => document.querySelector('#saliency-caption').innerText.includes('Nothing to explain')",
                           timeout=10_000)


def test_inspect_tab_gallery_confusion_and_click(page, synthetic_root, shipped_checkpoint):
    from mnist_core.insight import InsightService, sort_mistakes
    from mnist_core.predict import Predictor

    expected = InsightService(synthetic_root).mistakes(Predictor.from_file(shipped_checkpoint))
    least = sort_mistakes(expected, "least confident first")[0]
    page.get_by_role("tab", name="Inspect").click()
    assert wait_items(page, "mistakes", len(expected)) == len(expected)
    captions = page.locator("#mistakes .gallery-item img").evaluate_all("els => els.map(e => e.alt)")
    assert captions == [m.caption for m in expected]
    assert all(CAPTION.match(c) for c in captions)
    assert f"{len(expected)} of the" in page.inner_text("#mistakes-note")
    # the confusion heat map is the checkpoint's stored test metrics (52 errors for the shipped model)
    page.wait_for_selector("#mistakes-confusion table")
    assert page.locator("#mistakes-confusion td").count() == 100
    assert page.get_attribute("#mistakes-confusion .confusion", "data-errors") == "52"
    # another order: least confident first
    page.click("#mistakes-order input")
    page.locator("li.item", has_text="least confident first").first.click()
    page.wait_for_function("(c) => document.querySelector('#mistakes .gallery-item img').alt === c",
                           arg=least.caption, timeout=15_000)
    # click a mistake: its evidence, the same way as a drawing
    page.locator("#mistakes .gallery-item button").first.click()
    assert wait_image(page, "mistake-saliency") == 224
    page.wait_for_function("(c) => document.querySelector('#mistake-saliency-caption').innerText.includes(c)",
                           arg=least.caption, timeout=15_000)
    assert f"Evidence for {least.said}" in page.inner_text("#mistake-saliency-caption")
    page.wait_for_selector("#mistake-lookalikes .lookalikes[data-count='8']", timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "inspect-tab.png"), full_page=True)
