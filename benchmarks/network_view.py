"""The Draw tab's network view (issue 26): the top-digits index build, and the view's update rate.

1. Index: mnist_core.units.UnitIndex.build for the shipped model over the 60,000 real training digits,
   --reps times, in this process (the app's thread count, 1 intra-op thread by default as the tests; the
   app's background thread uses torch's default): seconds, the index's bytes, and the growth of this
   process's peak RSS during the first build (the working set of one batch of activations).
2. View: the app in this process (real MNIST), Debian's Chromium headless, a 60 Hz pen dispatched in the
   page (one pointer move per animation frame, tests/e2e/test_network.py PEN_60HZ_JS): view updates per
   second, label changes per second, pen moves per second (= the frames the browser gave), ms per view
   update (painting the ~14,000 cells), requests while the pen is down; idle, and while the server builds
   the index in its low-priority background thread (started by the first /unit call).

    python benchmarks/network_view.py [--data-dir ../shared/mnist] [--reps 2] [--strokes 5] [--threads 1]
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
from pathlib import Path
from urllib.request import urlopen

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from mnist_core.insight import InsightService  # noqa: E402
from mnist_core.predict import Predictor  # noqa: E402
from mnist_core.units import UnitIndex  # noqa: E402


def rss_peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def index_build(data_dir: str, reps: int) -> None:
    predictor = Predictor.from_file(ROOT / "checkpoints" / "mnist_cnn.pt")
    train, _ = InsightService(data_dir).data()
    before = rss_peak_mb()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        index = UnitIndex.build(predictor.model, train.images, train.labels, predictor.mean, predictor.std)
        times.append(time.perf_counter() - t0)
        grown = rss_peak_mb() - before
    print(f"index build, {len(train):,} digits, {index.channels} channels x 9, {torch.get_num_threads()} thread(s): "
          f"{', '.join(f'{t:.1f}' for t in times)} s; index {index.nbytes:,} bytes; peak RSS grew {grown:.1f} MB")


def view_rate(data_dir: str, strokes: int) -> None:
    from playwright.sync_api import sync_playwright

    import demo
    from tests.e2e.browser import free_port, launch_browser, open_page
    from tests.e2e.test_network import PEN_60HZ_JS, quiet

    app = demo.build_app(ROOT / "checkpoints" / "mnist_cnn.pt", Path(os.environ.get("TMPDIR", "/tmp")) / "nv-runs",
                         data_dir=data_dir, download=False, train_enabled=False)
    port = free_port()
    demo.launch(app, port=port, prevent_thread_lock=True, quiet=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        with sync_playwright() as p:
            b = launch_browser(p)
            pg = open_page(b, url)
            pg.wait_for_function("document.querySelector('#sketchpad .sketch').dataset.live === 'page'",
                                 timeout=30_000)
            quiet(pg)
            requests = []
            pg.on("request", lambda r: requests.append(r.url))

            def strokes_now(label, n):
                runs = []
                for _ in range(n):
                    before = len(requests)
                    runs.append(pg.evaluate(PEN_60HZ_JS, 90) + [len(requests) - before])
                    pg.click("#sketchpad button[aria-label='Clear canvas']")
                    quiet(pg)     # the clear's own explanation request ("Show why" on) is done
                med = [statistics.median(r[i] for r in runs) for i in range(5)]
                print(f"{label}: view {med[0]:.1f} updates/s (min {min(r[0] for r in runs):.1f}), label "
                      f"{med[1]:.1f}/s, pen {med[2]:.1f} moves/s, {med[3]:.2f} ms per view update, "
                      f"requests while the pen was down: {max(r[4] for r in runs)} ({n} strokes, median)")

            pg.evaluate(PEN_60HZ_JS, 60)            # warm-up
            pg.click("#sketchpad button[aria-label='Clear canvas']")
            quiet(pg)
            strokes_now("idle server", strokes)
            t0 = time.perf_counter()
            urlopen(f"{url}mnist/unit?key=shipped&stage=conv1&channel=0").read()   # starts the index build
            strokes_now("while the index builds", strokes)
            while b"\"ready\":true" not in urlopen(f"{url}mnist/unit?key=shipped&stage=conv1&channel=0").read():
                time.sleep(0.5)
            print(f"index ready {time.perf_counter() - t0:.1f} s after the first /unit call (the app's background "
                  f"thread, nice 19, during the strokes above)")
            b.close()
    finally:
        app.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default=os.environ.get("MNIST_DATA_DIR", str(ROOT.parent / "shared" / "mnist")))
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--strokes", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, torch {torch.__version__}")
    index_build(a.data_dir, a.reps)
    torch.set_num_threads(os.cpu_count() or 1)     # the app's own setting for its background thread
    view_rate(a.data_dir, a.strokes)


if __name__ == "__main__":
    main()
