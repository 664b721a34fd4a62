"""Draw-tab latency in a real browser: the label computed in the page vs the server's live path, same run.

The app runs as its own process (python demo.py --no-train). Debian's Chromium (Playwright) draws real
MNIST test digits as pen strokes (tests/mnist_strokes.py: skeletons of held-out test digits, traced)
with the mouse at a human pace (a pointer event every ~16 ms), in three page modes:

- page: as the app starts; the label, bars and 28x28 view come from the page's own network, and so
  does "Show why" (web/explain.js: the evidence map and the look-alikes, with the model's look-alike
  index, GET mnist/lookalikes, and the digits' pixels, GET mnist/digits);
- page-why-on-server: the same with window.MNIST_SERVER_WHY set: the label in the page, the
  explanation asked of the server at each pen-up (/explain_strokes), what the Draw tab did before issue 34;
- server: the same page with window.MNIST_SERVER_ONLY set, so every live update asks the server
  (/classify_strokes at most every 100 ms and at pen-up), which is what the Draw tab did before;

each with the server idle and with --crowd simulated people (default 50, `benchmarks/soak.py crowd`,
a process of its own) drawing against the same server through its live path. Printed per case:

- pen-up -> settled label, p50 / p90 (ms): the last change of the prediction view after the pen lifts;
- the share of drawings whose settled label is the digit drawn (a stale answer counts as wrong);
- label updates per second while a stroke is drawn at one pointer move per animation frame (and the
  moves per second the page got);
- requests per drawing (events sent to the server, weights fetched) while the pen moves / after it
  lifts for the last time; each pen-up of a drawing of several strokes is a settled drawing that asks
  for its explanation ("Show why" on), 0.3 s before the next stroke starts;
- the server's CPU time per drawing (user + system of its process, idle cases only), and in brackets
  what the server spends in the same time with the page open and nothing drawn (measured for 10 s first);
- pen-up -> evidence heat map shown, p50 / p90 (ms), and the longest task of the page (PerformanceObserver
  'longtask', >= 50 ms) from the first pen-down of a drawing to its evidence shown (0: none);
- POSTs after the last pen-up, and GETs of digit images per drawing;
- the look-alike index: its size on the wire and the time to fetch and parse it in the page.

    python benchmarks/browser_latency.py [--drawings 20] [--crowd 50]
"""
from __future__ import annotations

import argparse
import itertools
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from benchmarks.common import pct  # noqa: E402
from mnist_core.data import load_mnist, resolve_data_dir  # noqa: E402
from tests.e2e.browser import LABEL, PEN_60HZ_PRELUDE, launch_browser  # noqa: E402
from tests.mnist_strokes import random_drawings  # noqa: E402
from tests.server import Server  # noqa: E402

# One entry per change of the view (its 28x28 image and headline change with every answer), and of
# the evidence heat map.
WATCH_VIEW_JS = """() => {
  window.__views = []; window.__heats = []; window.__long = [];
  new PerformanceObserver(list => { for (const e of list.getEntries()) window.__long.push([e.startTime, e.duration]); })
    .observe({type: 'longtask', buffered: false});
  const heat = document.querySelector('#saliency');
  let lastHeat = '';
  new MutationObserver(() => {
    const img = heat.querySelector('img'), k = img ? img.src : '';
    if (k && k !== lastHeat) { lastHeat = k; window.__heats.push(performance.now()); }
  }).observe(heat, {childList: true, subtree: true, attributes: true});
  const el = document.querySelector('#view');
  const key = () => { const img = el.querySelector('img'); const h = el.querySelector('.headline');
                      return (img ? img.src : '') + '|' + (h ? h.textContent : ''); };
  let last = key();
  new MutationObserver(() => {
    const k = key();
    if (k !== last) { last = k; window.__views.push(performance.now()); }
  }).observe(el, {childList: true, subtree: true, characterData: true, attributes: true});
}"""


# Label updates per second at 60 Hz input: one pointer move per animation frame, dispatched in the page
# (Playwright's own mouse moves arrive at ~30 per second on this machine, below the frame rate).
RATE_JS = PEN_60HZ_PRELUDE + """  const n0 = window.__views.length;
  ev('pointerdown', 0);
  const t0 = performance.now();
  for (let i = 1; i <= n; i++) { await new Promise(requestAnimationFrame); ev('pointermove', i); }
  await new Promise(requestAnimationFrame);
  const t1 = performance.now(), updates = window.__views.filter(t => t > t0 && t <= t1).length;
  ev('pointerup', n);
  return [updates / ((t1 - t0) / 1000), n / ((t1 - t0) / 1000)];
}"""


# Warm: the page can explain by itself (or it is not meant to: the why-on-server and server modes).
WHY_READY_JS = """() => !!(window.MNIST_SERVER_WHY || window.MNIST_SERVER_ONLY
  || (window.MnistExplain && window.MnistExplain.ready(window.MnistApp.key)))"""

# The look-alike index fetched afresh (no cache) and parsed: [bytes, ms].
INDEX_LOAD_JS = """async () => {
  const t0 = performance.now();
  const res = await fetch('mnist/lookalikes?key=' + encodeURIComponent(window.MnistApp.model), {cache: 'no-store'});
  if (res.status !== 200) return [0, 0];
  const buf = await res.arrayBuffer();
  window.MnistExplain.parseIndex(buf);
  return [buf.byteLength, performance.now() - t0];
}"""


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def human_stroke(pg, pts, box, per_segment_ms: float) -> float:
    """Mouse down, move through pts (canvas units 0..320) at ~60 Hz; returns performance.now() at up."""
    x0, y0, side = box
    scr = [(x0 + x / 320 * side, y0 + y / 320 * side) for x, y in pts]
    pg.mouse.move(*scr[0])
    pg.mouse.down()
    for a, b in itertools.pairwise(scr):
        n = max(1, round(per_segment_ms / 16))
        for i in range(1, n + 1):
            pg.mouse.move(a[0] + (b[0] - a[0]) * i / n, a[1] + (b[1] - a[1]) * i / n)
            time.sleep(0.016)
    pg.mouse.up()
    return pg.evaluate("performance.now()")


def settle(pg, n0: int, quiet_ms: float = 1200, timeout_s: float = 15) -> None:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if pg.evaluate(f"window.__views.length > {n0} && "
                       f"performance.now() - window.__views[window.__views.length - 1] > {quiet_ms}"):
            return
        time.sleep(0.05)


def clear(pg) -> None:
    n0 = pg.evaluate("window.__views.length")
    pg.click("#sketchpad button[aria-label='Clear canvas']")
    settle(pg, n0, 600, timeout_s=5)


def warm_up(pg, drawing, box, pid: int | None) -> float:
    """Draw until the look-alikes show (the model's one-time feature pass is done) and the page can
    explain by itself; then the server's CPU seconds per second with this page open and nothing drawn."""
    deadline = time.time() + 180
    while time.time() < deadline:
        human_stroke(pg, drawing["strokes"][0], box, per_segment_ms=48)
        pg.wait_for_timeout(1500)
        done = pg.locator("#lookalikes img").count() > 0
        clear(pg)
        if done and pg.evaluate(WHY_READY_JS):
            break
        pg.wait_for_timeout(3000)
    if not pid:
        return 0.0
    c0 = cpu_seconds(pid)
    time.sleep(10)
    return (cpu_seconds(pid) - c0) / 10


def measure(pg, url: str, drawings, labels, pid: int | None) -> dict:
    requests: list[tuple[float, str]] = []
    # a request = an event sent to the server (POST queue/join; its answer streams back on queue/data)
    # or a fetch of the weights
    pg.on("request", lambda r: requests.append((time.time(), r.url))
          if r.url.startswith(url) and ("queue/join" in r.url or "mnist/weights" in r.url) else None)
    digit_gets: list[float] = []
    pg.on("request", lambda r: digit_gets.append(time.time()) if "mnist/digits" in r.url else None)
    pg.evaluate(WATCH_VIEW_JS)
    b = pg.locator("#sketchpad canvas").first.bounding_box()
    box = (b["x"], b["y"], b["width"])
    latencies, explained, rates, during, after, right, longest, digits = [], [], [], [], [], 0, [], []
    idle_rate = warm_up(pg, drawings[0], box, pid)
    cpu0, wall0 = (cpu_seconds(pid) if pid else 0.0), time.time()
    for d, y in zip(drawings, labels, strict=True):
        n_view0, n_heat0 = pg.evaluate("window.__views.length"), pg.evaluate("window.__heats.length")
        n_req0, t_up, pen_down = len(requests), None, []      # (down, up) wall times of each stroke
        n_dig0, t_first = len(digit_gets), pg.evaluate("performance.now()")
        for k, s in enumerate(d["strokes"]):
            if k:
                time.sleep(0.3)                   # the pen moves to the next stroke
            t_down_wall = time.time()
            t_up = human_stroke(pg, s, box, per_segment_ms=16)   # one move per point, ~60 Hz
            pen_down.append((t_down_wall, time.time()))
        t_up_wall = pen_down[-1][1]
        while_drawing = [u for t, u in requests[n_req0:] if any(lo <= t <= hi for lo, hi in pen_down)]
        settle(pg, n_view0)
        views = pg.evaluate("window.__views")[n_view0:]
        last_stroke = [v for v in views if v >= t_up]
        latencies.append(last_stroke[-1] - t_up if last_stroke else 0.0)
        heats = [h for h in pg.evaluate("window.__heats")[n_heat0:] if h >= t_up]
        if heats:
            explained.append(heats[-1] - t_up)
            long = [dur for t, dur in pg.evaluate("window.__long") if t_first <= t <= heats[-1]]
            longest.append(max(long, default=0.0))
        digits.append(len(digit_gets) - n_dig0)
        during.append(len(while_drawing))
        after.append(len([1 for t, _ in requests[n_req0:] if t > t_up_wall]))
        right += pg.inner_text(LABEL).strip() == str(int(y))
        clear(pg)
    cpu = (cpu_seconds(pid) - cpu0) / len(drawings) if pid else float("nan")
    idle_share = idle_rate * (time.time() - wall0) / len(drawings)      # what an idle page costs meanwhile
    # a loop drawn at one pointer move per frame (~1.6 s): label updates per second while the pen is down
    moves = []
    for _ in range(3):
        rate, move_rate = pg.evaluate(RATE_JS, 96)
        rates.append(rate)
        moves.append(move_rate)
        settle(pg, 0, 600, timeout_s=5)
        clear(pg)
    return {"p50": pct(latencies, 50), "p90": pct(latencies, 90), "right": 100.0 * right / len(drawings),
            "rate": statistics.mean(rates), "moves": statistics.mean(moves),
            "during": statistics.mean(during), "after": statistics.mean(after),
            "cpu_ms": 1000 * cpu, "idle_ms": 1000 * idle_share,
            "explained_p50": pct(explained, 50) if explained else float("nan"),
            "explained_p90": pct(explained, 90) if explained else float("nan"),
            "longest": max(longest, default=float("nan")), "digits": statistics.mean(digits),
            "index": pg.evaluate(INDEX_LOAD_JS), "n": len(drawings)}


MODES = ("page", "page-why-on-server", "server")
WHY_ON_SERVER = MODES[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--drawings", type=int, default=20, help="real test digits drawn per case")
    p.add_argument("--crowd", type=int, default=50, help="simulated people drawing through the server meanwhile")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, of: {', '.join(MODES)}")
    a = p.parse_args()
    from playwright.sync_api import sync_playwright

    _, test = load_mnist(resolve_data_dir(a.data_dir), download=False)
    idx = np.random.default_rng(7).choice(len(test), a.drawings, replace=False)   # not the tests' 600
    labels = test.labels[idx].numpy()
    drawings = random_drawings(test.images[idx].numpy(), seed=7)
    server = Server(Path(tempfile.mkdtemp(prefix="mnist-latency-")), "--no-train")
    results = {}
    try:
        with sync_playwright() as pw:
            browser = launch_browser(pw)
            for load in ("idle", f"{a.crowd} people drawing"):
                crowd = None
                if load != "idle":
                    crowd = subprocess.Popen([sys.executable, str(ROOT / "benchmarks" / "soak.py"), "crowd", "--url",
                                              server.url + "/", "--users", str(a.crowd), "--seconds", "100000"],
                                             cwd=ROOT)
                    time.sleep(15)                       # the crowd is connected and drawing
                for mode in [m for m in MODES if m in a.modes.split(",")]:
                    ctx = browser.new_context(viewport={"width": 1280, "height": 1000})
                    if mode == "server":
                        ctx.add_init_script("window.MNIST_SERVER_ONLY = true;")
                    if mode == WHY_ON_SERVER:
                        ctx.add_init_script("window.MNIST_SERVER_WHY = true;")
                    pg = ctx.new_page()
                    pg.goto(server.url + "/")
                    pg.wait_for_selector("#sketchpad canvas")
                    live = "server" if mode == "server" else "page"
                    pg.wait_for_function(f"() => document.querySelector('#sketchpad .sketch').dataset.live === "
                                         f"'{live}'", timeout=60_000)
                    results[(load, mode)] = measure(pg, server.url, drawings, labels,
                                                    server.proc.pid if load == "idle" else None)
                    ctx.close()
                if crowd is not None:
                    crowd.terminate()
                    crowd.wait(30)
            browser.close()
    finally:
        server.stop()
    print(f"{a.drawings} real test digits drawn as strokes per case; machine: {os.cpu_count()} CPUs")
    print(f"{'case':44} {'p50 ms':>7} {'p90 ms':>7} {'right %':>8} {'updates/s':>10} {'moves/s':>8} "
          f"{'req drawing':>12} {'req pen-up':>11} {'server CPU ms':>14} {'evidence p50':>13} {'p90':>5} "
          f"{'longest task':>13} {'digit GETs':>11}")
    for (load, mode), r in results.items():
        print(f"{load + ', ' + mode:44} {r['p50']:7.0f} {r['p90']:7.0f} {r['right']:8.1f} {r['rate']:10.1f} "
              f"{r['moves']:8.1f} "
              f"{r['during']:12.2f} {r['after']:11.2f} {r['cpu_ms']:6.0f} ({r['idle_ms']:5.0f}) "
              f"{r['explained_p50']:13.0f} "
              f"{r['explained_p90']:5.0f} {r['longest']:13.0f} {r['digits']:11.2f}")
    for (load, mode), r in results.items():
        if mode == "page" and r["index"][0]:
            size, ms = r["index"]
            print(f"{load}: look-alike index {size / 1e6:.2f} MB, fetched and parsed in {ms:.0f} ms")
    for load in ("idle", f"{a.crowd} people drawing"):
        if (load, "page") not in results or (load, "server") not in results:
            continue
        page, srv = results[(load, "page")], results[(load, "server")]
        print(f"{load}: settled p50 {srv['p50'] / max(page['p50'], 1):.1f}x and "
              f"p90 {srv['p90'] / max(page['p90'], 1):.1f}x faster in the page; "
              f"{page['rate'] / max(srv['rate'], 1e-9):.1f}x the label updates per second")


if __name__ == "__main__":
    main()
