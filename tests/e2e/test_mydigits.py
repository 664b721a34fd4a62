"""My digits in a real browser (Debian's Chromium + Playwright, issue 33): draw, press "It's a 1", the drawing
appears in My digits (its 28x28 image, its label, what the model says), survives a reload; the keys 0-9
save too while the canvas has the focus; remove one; Teach streams through the queue and ends with the new
model chosen (the picker and the page's own network); Download gives the zip; an upload restores My
digits (and a bad one changes nothing). The synthetic MNIST fixture and a short teach (TeachConfig
steps=20): these tests check the page, not accuracy.
"""
from __future__ import annotations

import json
import zipfile

import pytest

from tests.e2e.browser import ARTIFACTS, DIGITS, draw, playwright_or_skip, served_with_browser

QUICK = {"steps": 20, "renders": 120}
COUNT = "#mydigits .mydigits"
# Records every state the teach's status line shows.
STATES_JS = """() => { window.__teachStates = [];
  const box = document.querySelector('#teach-status');
  const note = () => { const s = box.querySelector('.train-status'); const st = s && s.dataset.state;
    if (st && window.__teachStates[window.__teachStates.length - 1] !== st) window.__teachStates.push(st); };
  new MutationObserver(note).observe(box, {subtree: true, childList: true, attributes: true}); }"""


@pytest.fixture(scope="module")
def app(tmp_path_factory, synthetic_root, shipped_checkpoint):
    playwright_or_skip()
    import demo
    from mnist_web.backends import LocalBackend

    runs = tmp_path_factory.mktemp("runs")
    built = demo.build_app(shipped_checkpoint, runs, data_dir=str(synthetic_root), download=False,
                           train_backend=LocalBackend(1, 1), teach=QUICK)
    ARTIFACTS.mkdir(exist_ok=True)
    with served_with_browser(built) as (url, browser):
        context = browser.new_context(viewport={"width": 1280, "height": 1100}, accept_downloads=True)
        yield {"url": url, "runs": runs, "context": context}
        context.close()


def open_panel(pg, url: str) -> None:
    """The page, with My digits opened (a closed accordion under the label until the visitor opens it)."""
    pg.goto(url)
    pg.get_by_text("My digits: your own drawings").click()
    pg.wait_for_selector(COUNT)


def count(pg) -> int:
    return int(pg.get_attribute(COUNT, "data-count"))


def wait_count(pg, n: int, timeout=10_000):
    pg.wait_for_function("([sel, n]) => +document.querySelector(sel).dataset.count === n", arg=[COUNT, n],
                         timeout=timeout)


def strokes_left(pg) -> int:
    return int(pg.get_attribute("#sketchpad .sketch", "data-strokes"))


def labels(pg) -> list[str]:
    return pg.eval_on_selector_all("#mydigits .md-tile", "ts => ts.map(t => t.dataset.label)")


def upload(pg, path):
    with pg.expect_file_chooser() as chooser:
        pg.click("#upload-digits")
    chooser.value.set_files(str(path))


def draw_and_save(pg, shape: str, digit: int, key: bool = False):
    n = count(pg)
    draw(pg, DIGITS[shape])
    pg.wait_for_function("() => +document.querySelector('#sketchpad .sketch').dataset.strokes > 0")
    if key:
        pg.keyboard.press(str(digit))          # the canvas has the focus since the pen went down
    else:
        pg.click(f"#its-a button[data-digit='{digit}']")
    wait_count(pg, n + 1)
    assert strokes_left(pg) == 0                # cleared for the next drawing


def test_save_reload_keys_remove(app):
    pg = app["context"].new_page()
    open_panel(pg, app["url"])
    assert count(pg) == 0
    draw_and_save(pg, "1", 1)
    assert "Saved as a 1" in pg.inner_text("#its-a .its-a-msg")
    tile = pg.locator("#mydigits .md-tile").first
    assert tile.get_attribute("data-label") == "1"
    pg.wait_for_function("() => document.querySelector('#mydigits .md-tile').dataset.guess !== undefined"
                         " && document.querySelector('#mydigits .md-tile').dataset.guess !== ''")
    ink = pg.evaluate("""() => { const c = document.querySelector('#mydigits .md-tile canvas');
        const d = c.getContext('2d').getImageData(0, 0, 28, 28).data; let s = 0;
        for (let i = 0; i < d.length; i += 4) s += d[i] > 0; return s; }""")
    assert 20 < ink < 400                       # the 28x28 image, as the network sees it
    pg.reload()
    pg.get_by_text("My digits: your own drawings").click()
    pg.wait_for_selector(COUNT)
    wait_count(pg, 1)                           # kept in the browser
    assert labels(pg) == ["1"]
    draw_and_save(pg, "7", 7, key=True)         # the key 7 while the canvas has the focus
    draw_and_save(pg, "0", 0, key=True)
    assert labels(pg) == ["1", "7", "0"]
    assert "1: 1" in pg.inner_text("#mydigits .md-counts") and "7: 1" in pg.inner_text("#mydigits .md-counts")
    pg.click("#mydigits .md-tile[data-label='0'] .md-remove")
    wait_count(pg, 2)
    assert labels(pg) == ["1", "7"]
    pg.screenshot(path=str(ARTIFACTS / "mydigits.png"), full_page=True)
    pg.close()


def test_teach_download_and_restore(app, tmp_path):
    pg = app["context"].new_page()
    open_panel(pg, app["url"])
    for shape, digit in [("1", 1), ("7", 7)] * 3:
        draw_and_save(pg, shape, digit)
    n = count(pg)
    assert n >= 6
    # Download: the zip of My digits (MNIST/raw/ and strokes.jsonl)
    pg.click("#download-digits")
    pg.wait_for_function("() => document.querySelector('#mydigits-note').textContent.includes('drawings')",
                         timeout=30_000)          # the zip is made: the save button has it
    with pg.expect_download() as got:
        pg.click("#digits-zip")
    path = tmp_path / "mine.zip"
    got.value.save_as(path)
    with zipfile.ZipFile(path) as z:
        lines = z.read("strokes.jsonl").decode().splitlines()
        assert len(lines) == n and "MNIST/raw/train-images-idx3-ubyte" in z.namelist()
    # Teach: streams through the queue and ends with the new model chosen
    before = pg.evaluate("() => window.MnistApp.model")
    pg.evaluate(STATES_JS)
    pg.click("#teach")
    pg.wait_for_function("() => { const s = document.querySelector('#teach-status .train-status');"
                         " return s && ['finished', 'failed', 'refused', 'stopped'].includes(s.dataset.state); }",
                         timeout=180_000)
    states = pg.evaluate("() => window.__teachStates")
    assert states[-1] == "finished", (states, pg.inner_text("#teach-status"))
    assert "running" in states or "loading" in states, states   # it streamed
    assert "your handwriting" in pg.inner_text("#teach-status")
    pg.wait_for_function("(b) => window.MnistApp.model && window.MnistApp.model !== b"
                         " && window.MnistApp.model.startsWith('runs/teach-')", arg=before, timeout=30_000)
    picked = pg.input_value("#model-picker input")
    assert "your handwriting" in picked or "teach-" in picked, picked
    pg.wait_for_function("() => window.MnistApp.key && window.MnistApp.key.startsWith('runs/teach-')",
                         timeout=30_000)          # the page's own network is the taught model's
    # Restore: a bad file changes nothing; the zip brings My digits back
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"strokes": {"width": 320, "height": 320, "strokes": []}, "label": 3}) + "\n")
    upload(pg, bad)
    pg.wait_for_function("() => document.querySelector('#mydigits .md-msg').textContent.startsWith('Not restored')",
                         timeout=30_000)
    assert count(pg) == n
    pg.click("#mydigits .md-clear")
    pg.click("#mydigits .md-clear")             # pressed twice: really
    wait_count(pg, 0)
    upload(pg, path)
    wait_count(pg, n, timeout=30_000)
    assert "Restored" in pg.inner_text("#mydigits .md-msg")
    pg.close()


def test_full_my_digits_and_full_storage_are_said_plainly(app):
    pg = app["context"].new_page()
    open_panel(pg, app["url"])
    one = {"width": 320, "height": 320, "brush": 22, "strokes": [[[160, 40], [162, 150], [165, 280]]]}
    items = [{"id": f"x{i}", "label": i % 10, "strokes": one} for i in range(500)]
    pg.evaluate("(v) => localStorage.setItem('mnist-my-digits', JSON.stringify(v))", {"version": 1, "items": items})
    pg.reload()
    pg.get_by_text("My digits: your own drawings").click()
    pg.wait_for_selector(COUNT)
    wait_count(pg, 500, timeout=30_000)
    draw(pg, DIGITS["7"])
    pg.click("#its-a button[data-digit='7']")
    pg.wait_for_function("() => document.querySelector('#its-a .its-a-msg').textContent.includes('is full (500')")
    assert count(pg) == 500 and strokes_left(pg) > 0          # nothing lost: the drawing is still there
    pg.click("#mydigits .md-clear")
    pg.click("#mydigits .md-clear")
    wait_count(pg, 0)
    # the browser's storage full: filled with something else, the drawing is not saved, and it says why
    pg.evaluate("""() => { let s = 'x'.repeat(1 << 20), n = 0;
        try { for (;;) { localStorage.setItem('filler' + n, s); n++; } } catch (e) {}
        s = 'x'.repeat(1 << 10);
        try { for (;;) { localStorage.setItem('filler' + n, s); n++; } } catch (e) {} }""")
    pg.click("#its-a button[data-digit='7']")
    pg.wait_for_function("() => document.querySelector('#its-a .its-a-msg').textContent.includes('storage is full')")
    assert count(pg) == 0 and strokes_left(pg) > 0
    pg.evaluate("() => Object.keys(localStorage).filter(k => k.startsWith('filler'))"
                ".forEach(k => localStorage.removeItem(k))")
    pg.click("#its-a button[data-digit='7']")
    wait_count(pg, 1)
    pg.close()
