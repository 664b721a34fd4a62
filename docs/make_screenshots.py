"""Take the README's screenshots from the real app in headless Chromium.

    python docs/make_screenshots.py [--data-dir ../shared/mnist]

Draws a digit with the mouse (the same helpers as the browser tests), then starts a short training
run and captures the Train tab mid-run, once several epochs are plotted. Writes docs/draw-tab.png and
docs/train-tab.png (palette PNGs, to keep the repository small).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from PIL import Image
from playwright.sync_api import sync_playwright

import demo
from tests.e2e.browser import DIGITS, draw, free_port, launch_browser, wait_label
from tests.e2e.test_browser import ROW_EPOCHS_JS, set_number


def save_small(png: Path) -> None:
    Image.open(png).convert("RGB").quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(png, optimize=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data-dir", default=os.environ.get("MNIST_DATA_DIR", str(ROOT.parent / "shared" / "mnist")))
    a = p.parse_args()
    app = demo.build_app(demo.SHIPPED_CHECKPOINT, Path(tempfile.mkdtemp()), data_dir=a.data_dir, download=False)
    port = free_port()
    demo.launch(app, port=port, prevent_thread_lock=True, quiet=True)
    with sync_playwright() as pw:
        browser = launch_browser(pw)
        page = browser.new_page(viewport={"width": 1200, "height": 820})
        page.goto(f"http://127.0.0.1:{port}/")
        page.wait_for_selector("#sketchpad canvas")
        draw(page, DIGITS["7"])
        wait_label(page, "7")
        page.screenshot(path=str(ROOT / "docs" / "draw-tab.png"))
        page.get_by_role("tab", name="Train").click()
        set_number(page, "epochs", 8)
        set_number(page, "samples", 12000)
        page.click("#start")
        page.wait_for_function(f"() => ({ROW_EPOCHS_JS})().length >= 4", timeout=300_000)
        page.wait_for_timeout(1500)  # mid-epoch: the progress bar is part-way
        page.screenshot(path=str(ROOT / "docs" / "train-tab.png"), full_page=True)
        page.click("#stop")
        page.wait_for_timeout(1500)
        browser.close()
    app.close()
    for name in ("draw-tab.png", "train-tab.png"):
        save_small(ROOT / "docs" / name)
        print(f"docs/{name}: {(ROOT / 'docs' / name).stat().st_size // 1024} KB")


if __name__ == "__main__":
    main()
