"""Draw-tab latency in a real browser: the app's stroke canvas vs a gr.Sketchpad baseline, same run.

Debian's Chromium (Playwright) draws the same digits with the mouse at a human pace (a pointer event
every ~16 ms) in (a) the app and (b) a minimal app that uses gr.Sketchpad with the same handler (what
the Draw tab was before). Printed per app:

- mouse-up -> settled answer, p50 / p90 (ms): the last update of the prediction view after the pen
  lifts (the view changes with every answer: it holds the 28x28 image the network saw);
- answers per second while a stroke is drawn (a slow 1.6 s loop);
- HTTP requests per answer while drawing;
- files written to Gradio's temp dir by drawing.

- mouse-up -> evidence heat map shown, p50 (ms; the app with "Show why" on).

The app is measured twice: as it starts ("Show why" on: the evidence and look-alikes are asked for
when the drawing settles, as their own event beside the label) and with "Show why" off (the label
alone).

    python benchmarks/browser_latency.py [--reps 5]
"""
from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import gradio as gr  # noqa: E402

import demo  # noqa: E402
from mnist_core.registry import SHIPPED_KEY, ModelRegistry  # noqa: E402
from mnist_web.components import Label  # noqa: E402
from mnist_web.views import EMPTY_MESSAGE, label_value, message_html, prediction_html  # noqa: E402
from tests.e2e.browser import DIGITS, circle, free_port, launch_browser  # noqa: E402

# One entry per answer: the view's 28x28 image (a data URI) and headline change with every answer.
WATCH_VIEW_JS = """() => {
  window.__views = []; window.__heats = [];
  const heat = document.querySelector('#saliency');   // the evidence heat map (app only)
  if (heat) {
    let lastHeat = '';
    new MutationObserver(() => {
      const img = heat.querySelector('img'), k = img ? img.src : '';
      if (k && k !== lastHeat) { lastHeat = k; window.__heats.push(performance.now()); }
    }).observe(heat, {childList: true, subtree: true, attributes: true});
  }
  const el = document.querySelector('#view');
  const key = () => { const img = el.querySelector('img'); const h = el.querySelector('.headline');
                      return (img ? img.src : '') + '|' + (h ? h.textContent : ''); };
  let last = key();
  new MutationObserver(() => {
    const k = key();
    if (k !== last) { last = k; window.__views.push(performance.now()); }
  }).observe(el, {childList: true, subtree: true, characterData: true, attributes: true});
}"""


def baseline_app() -> gr.Blocks:
    """The Draw tab as it was: gr.Sketchpad (PNG export + upload per stroke) and the same handler."""
    registry = ModelRegistry(demo.SHIPPED_CHECKPOINT, ROOT / "checkpoints" / "runs")

    def classify(sketch):
        predictor = registry.get(SHIPPED_KEY)
        if sketch is None:
            return EMPTY_MESSAGE, message_html("nothing drawn")
        pred = predictor.predict(sketch)
        return label_value(pred), prediction_html(pred, predictor.description)

    with gr.Blocks() as app:
        pad = gr.Sketchpad(canvas_size=(320, 320), image_mode="RGBA", type="numpy", format="png", layers=False,
                           transforms=(), brush=gr.Brush(default_size=11, colors=["#000000"], color_mode="fixed"),
                           elem_id="sketchpad")
        label = Label(value=EMPTY_MESSAGE, elem_id="label")
        view = gr.HTML("", elem_id="view")
        pad.change(classify, pad, [label, view], trigger_mode="always_last", show_progress="hidden")
    return app


def square(pg, which: str):
    """Screen box of the drawing square: the stroke canvas is the square; the sketchpad's canvas is
    wider than the square it shows."""
    box = pg.locator("#sketchpad canvas").first.bounding_box()
    if which == "app":
        return box["x"], box["y"], box["width"]
    side = min(box["width"], box["height"]) * 0.8
    return box["x"] + (box["width"] - side) / 2, box["y"] + (box["height"] - side) / 2, side


def human_stroke(pg, pts, box, per_segment_ms: float):
    """Mouse down, move through pts at ~60 Hz (per_segment_ms per segment), return performance.now() at up."""
    x0, y0, side = box
    scr = [(x0 + x * side, y0 + y * side) for x, y in pts]
    pg.mouse.move(*scr[0])
    pg.mouse.down()
    for a, b in itertools.pairwise(scr):
        n = max(1, round(per_segment_ms / 16))
        for i in range(1, n + 1):
            pg.mouse.move(a[0] + (b[0] - a[0]) * i / n, a[1] + (b[1] - a[1]) * i / n)
            time.sleep(0.016)
    pg.mouse.up()
    return pg.evaluate("performance.now()")


def settle(pg, n0: int, quiet_ms: float = 1500, timeout_s: float = 15) -> None:
    """Wait until the view has answered (more than n0 answers so far) and then not changed for quiet_ms."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if pg.evaluate(f"window.__views.length > {n0} && "
                       f"performance.now() - window.__views[window.__views.length - 1] > {quiet_ms}"):
            return
        time.sleep(0.1)


def clear(pg, which: str):
    """Clear the canvas and wait for the empty answer (or 3 s)."""
    n0 = pg.evaluate("window.__views.length")
    pg.click("#sketchpad button[aria-label='Clear canvas']")
    if which != "app":
        select_brush(pg)
    settle(pg, n0, 800, timeout_s=3)


def select_brush(pg):
    """gr.Sketchpad starts (and restarts after Clear) with no tool selected: pick the brush."""
    pg.wait_for_function("""() => { const b = document.querySelector('#sketchpad button[aria-label="Brush"]');
        if (b) b.click();
        return !document.querySelector('#sketchpad').innerText.includes('select the draw tool'); }""",
                         polling=200, timeout=15_000)


def measure(pg, which: str, reps: int, cache: Path) -> dict:
    requests: list[float] = []
    pg.on("request", lambda r: requests.append(time.time()) if "/gradio_api/" in r.url else None)
    pg.evaluate(WATCH_VIEW_JS)
    files0 = sum(1 for p in cache.rglob("*") if p.is_file()) if cache.exists() else 0
    latencies, rates, per_answer, explained = [], [], [], []
    before_up = 0
    for _rep in range(reps):
        for _digit, strokes in DIGITS.items():
            box = square(pg, which)
            n_req0, n_view0 = len(requests), pg.evaluate("window.__views.length")
            n_heat0 = pg.evaluate("window.__heats.length")
            t_up = None
            for s in strokes:
                t_up = human_stroke(pg, s, box, per_segment_ms=120)
            settle(pg, n_view0)
            views = pg.evaluate("window.__views")[n_view0:]
            after = [v for v in views if v >= t_up]
            # settled = the last answer after the pen lifted; none after it = the answer to the whole
            # drawing had already arrived while drawing (0 ms; only a live canvas can do that)
            latencies.append(after[-1] - t_up if after else (0.0 if views else float("nan")))
            before_up += 0 if after or not views else 1
            heats = [h for h in pg.evaluate("window.__heats")[n_heat0:] if h >= t_up]
            if heats:
                explained.append(heats[-1] - t_up)
            answers = len(views)
            per_answer.append((len(requests) - n_req0) / max(1, answers))
            clear(pg, which)
        # a slow loop (~1.6 s of drawing): answers per second while the button is down
        box = square(pg, which)
        n0 = pg.evaluate("window.__views.length")
        t0 = pg.evaluate("performance.now()")
        t_up = human_stroke(pg, circle(0.5, 0.5, 0.3, 0.35, n=24), box, per_segment_ms=64)
        during = [t for t in pg.evaluate("window.__views")[n0:] if t <= t_up]
        rates.append(len(during) / ((t_up - t0) / 1000))
        settle(pg, n0)
        clear(pg, which)
    files = (sum(1 for p in cache.rglob("*") if p.is_file()) if cache.exists() else 0) - files0
    lat = sorted(x for x in latencies if x == x)
    return {"p50": statistics.median(lat), "p90": lat[int(0.9 * (len(lat) - 1))], "n": len(lat),
            "missing": len(latencies) - len(lat), "rate": statistics.mean(rates),
            "requests_per_answer": statistics.mean(per_answer), "files": files, "before_up": before_up,
            "explained_p50": statistics.median(explained) if explained else float("nan")}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=5, help="repetitions of the three digits per app")
    a = p.parse_args()
    import gradio.processing_utils
    from playwright.sync_api import sync_playwright
    cache = Path(gradio.processing_utils.get_upload_folder())   # GRADIO_TEMP_DIR
    apps = {"app": demo.build_app(train_enabled=False), "app, Show why off": demo.build_app(train_enabled=False),
            "baseline (gr.Sketchpad)": baseline_app()}
    urls = {}
    for name, app in apps.items():
        port = free_port()
        demo.launch(app, port=port, prevent_thread_lock=True, quiet=True)
        urls[name] = f"http://127.0.0.1:{port}/"
    results = {}
    with sync_playwright() as pw:
        browser = launch_browser(pw)
        for name, url in urls.items():
            pg = browser.new_page(viewport={"width": 1280, "height": 1000})
            pg.goto(url)
            pg.wait_for_selector("#sketchpad canvas")
            if name.startswith("baseline"):
                select_brush(pg)
            if name == "app, Show why off":   # the label alone, without the evidence and look-alikes
                pg.click("#show-why input")
                pg.wait_for_selector("#why", state="hidden")
            results[name] = measure(pg, "baseline" if name.startswith("baseline") else "app", a.reps, cache)
            pg.close()
        browser.close()
    for app in apps.values():
        app.close()
    print(f"{'':26} {'p50 ms':>8} {'p90 ms':>8} {'answers/s drawing':>18} {'requests/answer':>16} {'temp files':>11} "
          f"{'evidence p50 ms':>16}")
    for name, r in results.items():
        missing = f", {r['missing']:d} without an answer" if r["missing"] else ""
        print(f"{name:26} {r['p50']:8.0f} {r['p90']:8.0f} {r['rate']:18.1f} {r['requests_per_answer']:16.1f} "
              f"{r['files']:11d} {r['explained_p50']:16.0f}"
              f"   ({r['n']} drawings, {r['before_up']} settled before the pen lifted{missing})")
    app, base = results["app"], results["baseline (gr.Sketchpad)"]
    print(f"settled p50: {base['p50'] / max(app['p50'], 1):.1f}x faster than the baseline; p90 "
          f"{base['p90'] / max(app['p90'], 1):.1f}x")


if __name__ == "__main__":
    main()
