"""The Train tab in a real browser (Debian's Chromium + Playwright): curves that grow within an epoch,
two runs compared, the confusion matrix after a run, download and delete, Start/Stop states, a second
page waiting in the queue, then getting its own curves.

Every action waits for the response it caused (a changed attribute or element, a download event),
never a fixed sleep. The data are the small synthetic MNIST-format set (tests/conftest.py) on purpose:
these tests check the page, not accuracy, and with batch size 2 one epoch is 600 batches, ~20 plotted
points, a few seconds on 2 cores.
"""
from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import pytest

from tests.conftest import need
from tests.e2e.browser import (
    ARTIFACTS,
    open_page,
    playwright_or_skip,
    quiet,
    served_with_browser,
    set_number,
    train_state,
    wait_state,
)

# Records, on every change of the loss chart, (train points, test points, table rows, series count).
RECORDER_JS = """() => {
  window.__curveLog = [];
  const snap = () => {
    const train = document.querySelector("#loss-plot path[data-series='train (this run)']");
    const test = document.querySelector("#loss-plot path[data-series='test (this run)']");
    const chart = document.querySelector('#loss-plot .chart');
    const rows = new Set([...document.querySelectorAll('#history [aria-rowindex]')]
      .map(e => +e.getAttribute('aria-rowindex')).filter(i => i > 1)).size;
    window.__curveLog.push([train ? +train.dataset.points : 0, test ? +test.dataset.points : 0, rows,
                            chart ? +chart.dataset.seriesCount : 0]);
  };
  new MutationObserver(snap).observe(document.querySelector('#loss-plot'), {subtree: true, childList: true,
                                                                             attributes: true, characterData: true});
}"""


@pytest.fixture(scope="module")
def app(tmp_path_factory, shipped_checkpoint):
    playwright_or_skip()
    import demo
    from mnist_core.data import write_mnist
    from tests.conftest import synthetic_digits

    runs = tmp_path_factory.mktemp("runs")
    from mnist_web.backends import LocalBackend

    # 6,000 synthetic training digits: runs use 1,200 of them, the run view's test all 6,000 (on a fast idle
    # machine an epoch of 1,200 at batch 2 ends within one heartbeat of the stream, and the view sees only its end)
    data = write_mnist(tmp_path_factory.mktemp("data6k"), synthetic_digits(6000, 0), synthetic_digits(300, 1))
    # one training slot: a second page's run waits in the queue (the default is 2 slots)
    app = demo.build_app(shipped_checkpoint, runs, data_dir=str(data), download=False,
                            train_backend=LocalBackend(1, 1))
    ARTIFACTS.mkdir(exist_ok=True)
    with served_with_browser(app) as (url, browser):
        page = browser.new_page(viewport={"width": 1280, "height": 1000}, accept_downloads=True)
        page.goto(url)
        page.get_by_role("tab", name="Train").click()
        page.wait_for_selector("#start")
        yield {"page": page, "runs": runs, "browser": browser, "url": url}


# Records each state the Train tab's status takes from now on, the current one first (an update may replace
# the element or patch its attribute), so a run's end is told apart from the previous run's "finished".
STATES_JS = """() => {
  const now = () => {
    const el = document.querySelector('#train-status .train-status');
    return el && el.dataset.state;
  };
  window.__states = [now()];
  if (window.__statesWatch) window.__statesWatch.disconnect();
  window.__statesWatch = new MutationObserver(() => {
    const s = now(); if (s !== window.__states[window.__states.length - 1]) window.__states.push(s); });
  window.__statesWatch.observe(document.querySelector('#train-status'),
                               {subtree: true, childList: true, attributes: true, characterData: true});
}"""
GOING = ["queued", "loading", "running"]
ENDED = ["finished", "failed", "refused", "stopped"]


def run(pg, epochs, lr, timeout=180_000, samples=1200) -> str:
    """Start a run and wait for its end; returns the final state."""
    set_number(pg, "epochs", epochs)
    set_number(pg, "samples", samples)
    set_number(pg, "batch", 2)
    set_number(pg, "lr", lr)
    pg.evaluate(STATES_JS)
    pg.click("#start")
    # this run's status: a going state, then an end (or refused at once); never the last run's "finished"
    pg.wait_for_function("([going, ended]) => { const s = window.__states.slice(1);"
                         " const i = s.findIndex(x => going.includes(x));"
                         " return s.includes('refused') || (i >= 0 && s.slice(i + 1).some(x => ended.includes(x))); }",
                         arg=[GOING, ENDED], timeout=timeout, polling=100)
    return wait_state(pg, ENDED, 30_000)


def pick(pg, elem_id, text):
    """Choose an option of one dropdown (its own option list), then close the list."""
    pg.click(f"#{elem_id} input")
    pg.locator(f"#{elem_id} li.item", has_text=text).first.click()
    pg.keyboard.press("Escape")
    pg.wait_for_selector(f"#{elem_id} li.item", state="detached", timeout=30_000)


def disabled(pg, elem_id) -> bool:
    return pg.locator(f"#{elem_id}").is_disabled()


def series_count(pg, elem_id) -> int:
    return int(pg.locator(f"#{elem_id} .chart").get_attribute("data-series-count"))


def test_curves_grow_within_the_epoch_then_results_and_comparison(app):
    pg, runs = app["page"], app["runs"]
    assert disabled(pg, "stop") and not disabled(pg, "start")          # nothing runs yet
    pg.evaluate(RECORDER_JS)
    set_number(pg, "epochs", 2)
    set_number(pg, "samples", 1200)
    set_number(pg, "batch", 2)
    pg.click("#start")
    wait_state(pg, ["running"], 30_000)
    pg.wait_for_function("() => document.querySelector('#start').disabled && !document.querySelector('#stop').disabled",
                         timeout=30_000)                                   # Start off, Stop on while it runs
    assert wait_state(pg, ["finished", "failed"], 180_000) == "finished", pg.inner_text("#train-status")
    log = pg.evaluate("() => window.__curveLog")
    before_row = [train for train, _, rows, _ in log if rows == 0]
    growth = sorted(set(before_row))
    assert len(growth) >= 3 and growth[-1] >= 5, log                     # several steps, 5+ points, no row yet
    train, test, rows, _ = log[-1]
    assert (train, test, rows) == (40, 2, 2), log[-1]                    # 20 points per epoch, 2 test points
    pg.wait_for_function("() => !document.querySelector('#start').disabled && document.querySelector('#stop').disabled",
                         timeout=30_000)
    ticks = pg.locator("#loss-plot text.xtick").all_text_contents()
    assert ticks == ["0", "1", "2"]                                      # whole epochs only
    assert "after 2 epochs" in pg.inner_text("#train-status")

    # after the run: the new run is picked under Results, with its confusion matrix and per-class accuracy
    pg.wait_for_selector("#confusion table.confusion[data-empty='false']", timeout=30_000)
    assert pg.locator("#confusion tbody tr").count() == 10
    pg.screenshot(path=str(ARTIFACTS / "train-tab-after-run.png"), full_page=True)
    first = sorted(p.name for p in runs.glob("*.pt"))
    assert len(first) == 1

    # a second run with another learning rate: the first is overlaid live, then both are compared
    pg.wait_for_function("() => document.querySelector('#compare-acc .chart').dataset.seriesCount === '1'",
                         timeout=30_000)
    pg.evaluate(RECORDER_JS)
    assert run(pg, 1, 0.05) == "finished", pg.inner_text("#train-status")
    shown = pg.evaluate("() => [[...document.querySelectorAll('#loss-plot path[data-series]')]"
                        ".map(p => p.dataset.series), window.__states, window.__curveLog]")
    assert max(c for *_, c in shown[2]) == 3, shown                     # train, test, and "test: <run 1>"
    pg.wait_for_function("() => document.querySelector('#compare-acc .chart').dataset.seriesCount === '2'",
                         timeout=30_000)
    headers = pg.locator("#compare-table thead th").all_inner_texts()
    assert any(h.strip() == "lr" for h in headers) and not any("momentum" in h for h in headers), headers
    assert any(h.strip() == "epochs" for h in headers)                   # 2 vs 1: they differ too
    # add the shipped model to the comparison by hand
    pick(pg, "compare", "Recipe model")
    pg.wait_for_function("() => document.querySelector('#compare-acc .chart').dataset.seriesCount === '3'",
                         timeout=30_000)
    pg.screenshot(path=str(ARTIFACTS / "train-tab-compare.png"), full_page=True)


def test_download_and_delete_with_confirmation(app):
    pg, runs = app["page"], app["runs"]
    files = sorted(runs.glob("*.pt"))
    if not files:
        assert run(pg, 1, 0.02) == "finished"
        files = sorted(runs.glob("*.pt"))
    target = max(files, key=lambda p: p.stat().st_mtime)
    pick(pg, "run-pick", target.stem)
    pg.wait_for_function("() => !document.querySelector('#delete').disabled", timeout=30_000)

    with pg.expect_download(timeout=30_000) as info:
        pg.click("#download")
    dl = info.value
    assert dl.suggested_filename == target.name
    assert Path(dl.path()).read_bytes() == target.read_bytes()

    pg.click("#delete")
    pg.wait_for_selector("#confirm-delete", state="visible", timeout=30_000)
    assert target.exists()                                                # nothing happens before confirming
    pg.click("#cancel-delete")
    pg.wait_for_selector("#confirm-delete", state="hidden", timeout=30_000)
    assert target.exists()
    pg.click("#delete")
    pg.wait_for_selector("#confirm-delete", state="visible", timeout=30_000)
    pg.click("#confirm-delete")
    pg.wait_for_function("(n) => document.querySelector('#run-msg').innerText.includes('Deleted ' + n)",
                         arg=target.name, timeout=30_000)
    assert not target.exists()

    # the shipped model can be downloaded but not deleted
    pick(pg, "run-pick", "Recipe model")
    pg.wait_for_function("() => document.querySelector('#run-msg').innerText.includes('never deleted')",
                         timeout=30_000)
    assert disabled(pg, "delete")


ONNX_WATCH_JS = """() => {
  window.__onnxOff = false;
  const root = document.querySelector('#download-onnx').parentElement;
  new MutationObserver(() => { const b = document.querySelector('#download-onnx');
                               if (!b || b.disabled) window.__onnxOff = true; })
    .observe(root, {subtree: true, childList: true, attributes: true});
}"""


def test_download_onnx_of_the_picked_run(app, shipped_checkpoint, tmp_path):
    """The ONNX next to the checkpoint: made for the run picked (never the previous pick's file), and it
    runs in onnxruntime with the run's own answers."""
    need(importlib.util.find_spec("onnxruntime") is not None, "onnxruntime is not installed (requirements-dev.txt)")
    import numpy as np
    import onnxruntime
    import torch

    from mnist_core.checkpoint import load_checkpoint, model_from_checkpoint

    pg, runs = app["page"], app["runs"]
    if not sorted(runs.glob("*.pt")):
        assert run(pg, 1, 0.02) == "finished"      # the run is then picked, and its ONNX made: wait for it
        pg.wait_for_function("() => !document.querySelector('#download-onnx').disabled", timeout=60_000)
    trained = max(runs.glob("*.pt"), key=lambda p: p.stat().st_mtime)
    for label, ckpt_path, name in (("Recipe model", shipped_checkpoint, "mnist_cnn.onnx"),
                                   (trained.stem, trained, trained.stem + ".onnx")):
        pg.evaluate(ONNX_WATCH_JS)        # the button must go off (cleared) and on again for this pick
        pick(pg, "run-pick", label)
        pg.wait_for_function("() => window.__onnxOff && !document.querySelector('#download-onnx').disabled",
                             timeout=60_000)
        with pg.expect_download(timeout=30_000) as info:
            pg.click("#download-onnx")
        assert info.value.suggested_filename == name
        saved = tmp_path / name
        info.value.save_as(saved)
        assert saved.stat().st_size < 100_000
        x = torch.randn(8, 1, 28, 28)
        with torch.inference_mode():
            want = model_from_checkpoint(load_checkpoint(ckpt_path))(x).numpy()
        sess = onnxruntime.InferenceSession(str(saved), providers=["CPUExecutionProvider"])
        (got,) = sess.run(None, {"image": x.numpy()})
        assert np.abs(got - want).max() <= 1e-4


@pytest.mark.parametrize("typed,words", [("2.5", "epochs must be a whole number"),
                                         ("", "got nothing (an empty field)")])
def test_typed_values_are_checked_not_rounded(app, typed, words):
    """The number fields pass what was typed (precision=None): 2.5 epochs is refused, not rounded to 2."""
    pg = app["page"]
    before = sorted(app["runs"].glob("*.pt"))
    set_number(pg, "epochs", typed)
    pg.evaluate("() => { document.querySelector('#train-status .train-status').dataset.seen = '1'; }")
    pg.click("#start")   # wait for the status this click renders (a new element), not the previous one
    pg.wait_for_function("() => { const e = document.querySelector('#train-status .train-status');"
                         " return e && !e.dataset.seen; }", timeout=30_000)
    assert train_state(pg) == "refused" and words in pg.inner_text("#train-status .train-status")
    assert not disabled(pg, "start") and disabled(pg, "stop")
    assert sorted(app["runs"].glob("*.pt")) == before
    set_number(pg, "epochs", 1)


TRAIN_POINTS_JS = """() => { const p = document.querySelector("#loss-plot path[data-series='train (this run)']");
  return p ? +p.dataset.points : 0; }"""
TEST_POINTS_JS = """() => { const p = document.querySelector("#loss-plot path[data-series='test (this run)']");
  return p ? +p.dataset.points : 0; }"""


def test_a_second_page_waits_in_line_then_gets_its_own_curves(app):
    first = app["page"]
    second = open_page(app["browser"], app["url"])
    try:
        second.get_by_role("tab", name="Train").click()
        second.wait_for_selector("#start")
        for pg, epochs in ((first, 2), (second, 1)):
            set_number(pg, "epochs", epochs)
            set_number(pg, "samples", 1200)
            set_number(pg, "batch", 2)
        first.click("#start")
        wait_state(first, ["running"], 60_000)
        second.click("#start")
        assert wait_state(second, ["queued"], 5_000) == "queued"     # answered at once, not refused
        status = second.locator("#train-status .train-status")
        assert status.get_attribute("data-position") == "1" and "next in line" in status.inner_text()
        assert not second.locator("#stop").is_disabled()              # Stop would take it out of the queue
        second.wait_for_function("() => { const q = document.querySelector('#queue-info .queue-info');"
                                 "  return q && q.dataset.running === '1' && q.dataset.waiting === '1'; }",
                                 timeout=15_000)                      # the tab's line on the queue
        assert train_state(first) == "running" and second.evaluate(TRAIN_POINTS_JS) == 0
        assert wait_state(first, ["finished", "failed"], 180_000) == "finished"
        wait_state(second, ["running"], 60_000)                       # its turn
        second.wait_for_function(f"() => ({TRAIN_POINTS_JS})() >= 3 && "
                                 "document.querySelector('#train-status .train-status').dataset.state === 'running'",
                                 timeout=60_000)                      # live curves while it runs
        assert wait_state(second, ["finished", "failed"], 180_000) == "finished"
        assert second.evaluate(TEST_POINTS_JS) == 1 and first.evaluate(TEST_POINTS_JS) == 2   # each its own run
    finally:
        second.close()


# Records each redraw of the run's view (#train-look): (epoch, batch, per-class rows, digits right, a
# fingerprint of conv1's and of conv2's filter images as drawn).
LOOK_RECORDER_JS = """() => {
  window.__lookLog = [];
  const root = document.querySelector('#train-view');
  const print = (sel) => [...root.querySelectorAll(sel)].map(c => c.toDataURL()).join('|')
    .split('').reduce((h, ch) => (h * 31 + ch.charCodeAt(0)) | 0, 7);
  new MutationObserver(() => window.__lookLog.push([+root.dataset.epoch, +root.dataset.batch,
      root.querySelectorAll('#per-class-epochs tbody tr').length, +root.dataset.right,
      print("section[data-filters='conv1'] canvas"), print("section[data-filters='conv2'] canvas")]))
    .observe(root, {attributes: true, attributeFilter: ['data-updates']});
}"""


def test_the_run_view_shows_the_filters_forming_and_the_guesses_changing(app):
    """Issue 26: during the first epoch of a short real run, conv1's and conv2's filters are redrawn as
    they change and the 20 test digits' guesses move; after it, a row of per-digit accuracy."""
    pg = app["page"]
    pg.evaluate(LOOK_RECORDER_JS)
    assert run(pg, 1, 0.002, samples=6000) == "finished", pg.inner_text("#train-status")   # slow enough to watch
    pg.wait_for_function("() => document.querySelectorAll('#per-class-epochs tbody tr').length === 1", timeout=30_000)
    log = pg.evaluate("() => window.__lookLog")
    first_epoch = [r for r in log if r[0] == 1 and r[2] == 0]
    # The job's first look is its random start (batch 0: tests/test_watch.py); the page shows it when the
    # stream's first running update goes out before the next look arrives, so a fast machine may join later
    assert first_epoch and first_epoch[0][1] < first_epoch[-1][1], log         # shown as the epoch goes on
    assert len(first_epoch) >= 4, log                                         # of ~10 snapshots in the epoch
    assert len({r[4] for r in first_epoch}) >= 3 and len({r[5] for r in first_epoch}) >= 3, log   # filters form
    assert len({r[3] for r in log}) >= 2, log                                 # guesses change
    assert log[-1][3] > first_epoch[0][3], log                                # more digits right than at random
    assert pg.locator("section[data-filters='conv1'] canvas").count() == 8
    assert pg.locator("section[data-filters='conv2'] canvas").count() == 16
    figs = pg.locator("#train-view .tv-grid figure")
    assert figs.count() == 20
    for i in range(20):
        f = figs.nth(i)
        right = f.get_attribute("data-guess") == f.get_attribute("data-label")
        assert f.get_attribute("class") == ("right" if right else "wrong")
    cells = pg.locator("#per-class-epochs tbody tr[data-epoch='1'] td").all_inner_texts()
    assert len(cells) == 10 and all(c == "-" or 0 <= float(c) <= 100 for c in cells), cells
    # the digits were drawn (not blank canvases): the probe strip reached the page once and stayed
    drawn = pg.evaluate("""() => [...document.querySelectorAll('#train-view .tv-grid canvas')].filter(c =>
        c.getContext('2d').getImageData(0, 0, 28, 28).data.some((v, i) => i % 4 === 0 && v > 0)).length""")
    assert drawn == 20
    pg.locator("#train-view").screenshot(path=str(ARTIFACTS / "train-view.png"))


def test_the_queue_line_asks_the_server_only_while_the_train_tab_is_shown(app):
    """The queue line refreshes itself (GET queue_status every 3 s) while it is on screen; on the Draw
    tab the page makes no request at all while nobody draws."""
    pg = open_page(app["browser"], app["url"])
    try:
        quiet(pg)                                                     # the page's own load-time events
        requests = []
        pg.on("request", lambda r: requests.append((time.perf_counter(), r.url)))
        pg.wait_for_timeout(7_000)                                    # the Draw tab: more than two periods
        assert requests == [], requests
        pg.get_by_role("tab", name="Train").click()
        pg.wait_for_function("() => +document.querySelector('#queue-info .queue-info').dataset.refreshed >= 2",
                             timeout=15_000)
        polls = [u for _, u in requests if u.endswith("/queue_status")]
        # Gradio's own front-end files (a chart library, a font) load once when the tab is first shown: now
        # that Train shares the one tab bar it is hidden at page load; they are static, cached, no server work
        static = ("/assets/", "/static/")
        assert polls and all("/queue_status" in u or "/gradio_api/" in u or any(s in u for s in static)
                             for _, u in requests), requests
        text = pg.inner_text("#queue-info .queue-info")
        assert text.startswith("Training on this server: ") and "waiting" in text
        pg.get_by_role("tab", name="Draw").click()
        pg.wait_for_timeout(500)
        left = time.perf_counter()
        pg.wait_for_timeout(7_000)
        assert [u for t, u in requests if t > left] == []              # back on Draw: silence again
    finally:
        pg.close()
