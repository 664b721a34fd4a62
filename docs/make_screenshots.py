"""Take the screenshots of the README and docs/ from the real app in headless Chromium.

    python docs/make_screenshots.py [--data-dir ../shared/mnist]

Draws a digit with the mouse (the same helpers as the browser tests), opens the Inspect tab on a
mistake, then trains a short run to compare against and captures the Train tab mid-run with it
overlaid. Writes docs/draw-tab.png, docs/inspect-tab.png, docs/train-tab.png and docs/train-view.png
(the run's filters and guesses, mid-run; palette PNGs, to keep the repository small).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from PIL import Image
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import demo
from tests.e2e.browser import DIGITS, draw, free_port, launch_browser, set_number, wait_label, wait_state


def save_small(png: Path) -> None:
    Image.open(png).convert("RGB").quantize(colors=96, method=Image.Quantize.MEDIANCUT).save(png, optimize=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data-dir", default=os.environ.get("MNIST_DATA_DIR", str(ROOT.parent / "shared" / "mnist")))
    a = p.parse_args()
    # as `make demo` serves it: both shipped models, the canvas one chosen
    app = demo.build_app(demo.SHIPPED_CHECKPOINT, Path(tempfile.mkdtemp()), data_dir=a.data_dir, download=False,
                         canvas=demo.SHIPPED_CHECKPOINT.with_name("mnist_canvas.pt"))
    port = free_port()
    demo.launch(app, port=port, prevent_thread_lock=True, quiet=True)
    with sync_playwright() as pw:
        browser = launch_browser(pw)
        page = browser.new_page(viewport={"width": 1200, "height": 820})
        page.goto(f"http://127.0.0.1:{port}/")
        page.wait_for_selector("#sketchpad canvas")
        draw(page, DIGITS["7"])
        wait_label(page, "7")
        # the evidence and the look-alikes (the feature index of the 60,000 training digits builds once)
        page.wait_for_function("() => { const i = document.querySelector('#saliency img'); return i && i.complete; }",
                               timeout=60_000)
        for _ in range(40):   # the look-alikes appear once the index is built: redraw the last stroke until then
            if page.locator("#lookalikes .lookalikes[data-count='8']").count():
                break
            page.wait_for_timeout(3000)
            page.click("#sketchpad button[aria-label='Undo']")
            draw(page, DIGITS["7"][1:])
            wait_label(page, "7")
        page.locator("#network").scroll_into_view_if_needed()   # the network view paints once it is in sight
        page.wait_for_function("() => document.querySelector('#network').dataset.state === 'live'", timeout=30_000)
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(ROOT / "docs" / "draw-tab.png"), full_page=True)
        # Inspect: the evidence for the drawing is on the Draw tab (below the canvas); the tab itself holds
        # the mistakes gallery and the confusion matrix
        page.set_viewport_size({"width": 1200, "height": 1100})
        page.get_by_role("tab", name="Inspect").click()
        page.wait_for_selector("#mistakes .gallery-item", timeout=120_000)
        page.locator("#mistakes .gallery-item").first.click()
        page.wait_for_function("() => { const i = document.querySelector('#mistake-saliency img'); "
                               "return i && i.complete; }", timeout=60_000)
        page.screenshot(path=str(ROOT / "docs" / "inspect-tab.png"), full_page=True)
        # Train: an earlier run with a higher learning rate to compare against, then the recipe on 12,000
        # samples caught mid-epoch 3 of 4, with the earlier run overlaid
        page.set_viewport_size({"width": 1200, "height": 900})
        page.get_by_role("tab", name="Train").click()
        page.wait_for_selector("#start")
        set_number(page, "epochs", 3)
        set_number(page, "samples", 6000)
        set_number(page, "lr", 0.08)
        page.click("#start")
        wait_state(page, ["running"], 60_000)
        assert wait_state(page, ["finished", "failed"], 900_000) == "finished", page.inner_text("#train-status")
        page.wait_for_function("() => document.querySelector('#compare-acc .chart').dataset.seriesCount === '1'")
        set_number(page, "epochs", 4)
        set_number(page, "samples", 12000)
        set_number(page, "lr", 0.02)
        page.click("#start")
        page.wait_for_function("""() => {
            const cells = document.querySelectorAll('#history [aria-rowindex]');
            const rows = new Set([...cells].map(e => e.getAttribute('aria-rowindex'))).size - 1;
            const t = document.querySelector("#loss-plot path[data-series='train (this run)']");
            return rows >= 2 && t && +t.dataset.points >= 2 * 7 + 3; }""", timeout=900_000)
        page.screenshot(path=str(ROOT / "docs" / "train-tab.png"), full_page=True)
        page.locator("#train-view").screenshot(path=str(ROOT / "docs" / "train-view.png"))   # inside the run
        page.click("#stop")
        wait_state(page, ["stopped", "finished"], 60_000)
        browser.close()
    app.close()
    for name in ("draw-tab.png", "inspect-tab.png", "train-tab.png", "train-view.png"):
        save_small(ROOT / "docs" / name)
        print(f"docs/{name}: {(ROOT / 'docs' / name).stat().st_size // 1024} KB")


if __name__ == "__main__":
    main()
