"""Model insight (issue 13): saliency methods compared, /explain latency, look-alike search, the
feature pass and the mistakes pass.

    python benchmarks/explain_latency.py [--data-dir ../shared/mnist] [--digits 200] [--runs 100]
    python benchmarks/explain_latency.py --app [--calls 60]    # also through gradio_client
    python benchmarks/explain_latency.py --app-only [--demo path/to/demo.py]

1. saliency methods on real MNIST test digits (the shipped model): how much of the positive
   evidence lies on the ink (inside the stroke mask dilated by 1 px), how faithful the map is
   (deletion: black out the k most-attributed ink pixels; the lower the class probability left,
   the better the map found the evidence; baseline: the same number of ink pixels in random order),
   and the time per map.
2. explain() in process on an 800x800 RGBA sketch, per method: p50/p90 (target: p50 <= 100 ms),
   next to the plain predict() of the same sketch (the label's cost).
3. the feature pass over the 60,000 training images: seconds and memory (the index itself, and the
   process RSS before/after reading MNIST and building it).
4. look-alike search per drawing: p50/p90 (target <= 20 ms), cosine vs L2 on the same features:
   top-1 / majority-of-8 label agreement on test digits and search time.
5. the mistakes pass over the 10,000 test images: seconds, count, and the stored confusion matrix's count.
6. (--app) /explain and /classify through gradio_client (target: /explain p50 <= 300 ms), and
   /classify while another client calls /explain in a loop (the label must not wait for the insight).
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import fmt as _fmt  # noqa: E402
from benchmarks.common import pct, rss_mb, timed  # noqa: E402
from tests.e2e.browser import free_port  # noqa: E402


def fmt(name, ms):
    return _fmt(name, ms, high=90)


def deletion_score(predictor, img: np.ndarray, attr: np.ndarray | None, ks, rng) -> float:
    """Mean probability of the original class after blacking out the top-k ink pixels (k in ks)."""
    ink = np.flatnonzero(img.ravel() > 0)
    if attr is None:
        order = rng.permutation(ink)
    else:
        a = attr.ravel()[ink] + rng.random(len(ink)) * 1e-9   # random tie-break
        order = ink[np.argsort(-a)]
    batch = np.repeat(img.ravel()[None], len(ks), 0)
    for r, k in enumerate(ks):
        batch[r, order[:k]] = 0.0
    probs = predictor.probabilities(batch.reshape(-1, 28, 28))
    target = int(predictor.probabilities(img[None])[0].argmax())
    return float(probs[:, target].mean())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=os.environ.get("MNIST_DATA_DIR", str(ROOT.parent / "shared" / "mnist")))
    p.add_argument("--digits", type=int, default=200, help="test digits for the method comparison")
    p.add_argument("--runs", type=int, default=100, help="in-process repetitions")
    p.add_argument("--app", action="store_true", help="also measure through gradio_client (part 6)")
    p.add_argument("--demo", default=str(ROOT / "demo.py"), help="the app file for part 6")
    p.add_argument("--calls", type=int, default=60)
    p.add_argument("--app-only", action="store_true", help="only part 6")
    a = p.parse_args()
    if a.app_only:
        return app_part(a)

    from mnist_core import insight
    from mnist_core.checkpoint import load_checkpoint
    from mnist_core.data import raw_dir, read_split, resolve_data_dir
    from mnist_core.insight import (
        METHODS,
        FeatureIndex,
        explain,
        find_mistakes,
        lookalikes,
        mass_on_ink,
        saliency,
        stored_confusion,
    )
    from mnist_core.predict import Predictor
    from tests.drawing import stroke_digit

    torch.set_num_threads(1)   # what the app's requests get on a shared 2-core machine; see the note printed
    ckpt_path = ROOT / "checkpoints" / "mnist_cnn.pt"
    predictor = Predictor.from_file(ckpt_path)
    print(f"machine: {os.cpu_count()} CPUs, torch {torch.__version__} ({torch.get_num_threads()} thread), "
          f"load average {os.getloadavg()[0]:.1f} at start")
    rss0 = rss_mb()
    raw = raw_dir(resolve_data_dir(a.data_dir))
    t0 = time.perf_counter()
    train, test = read_split(raw, True), read_split(raw, False)
    print(f"MNIST read in {time.perf_counter() - t0:.2f} s; RSS {rss0:.0f} -> {rss_mb():.0f} MB "
          f"(train images {train.images.nelement() / 2**20:.1f} MB as uint8)")

    # 1 ----------------------------------------------------------------------------------------------
    print(f"\n1. saliency methods on {a.digits} MNIST test digits (shipped model)")
    rng = np.random.default_rng(0)
    ks = (4, 8, 16, 32)
    pick = rng.choice(len(test), a.digits, replace=False)
    imgs = [test.images[i].numpy().astype(np.float32) / 255.0 for i in pick]
    base = [deletion_score(predictor, im, None, ks, rng) for im in imgs]
    print(f"   deletion baseline (random ink pixels): mean p(class) left {np.mean(base):.3f}")
    print(f"   {'method':30s} {'on ink (median)':>15s} {'on ink (min)':>12s} {'deletion p left':>15s} "
          f"{'ms/map p50':>10s}")
    candidates = [("integrated_gradients", dict(method="integrated_gradients", steps=16)),
                  ("integrated_gradients 64 steps", dict(method="integrated_gradients", steps=64)),
                  ("gradient_x_input", dict(method="gradient_x_input")),
                  ("occlusion 4x4 stride 1", dict(method="occlusion", patch=4, stride=1)),
                  ("occlusion 4x4 stride 2 *", dict(method="occlusion", patch=4, stride=2)),
                  ("occlusion 3x3 stride 3", dict(method="occlusion", patch=3, stride=3)),
                  ("gradient", dict(method="gradient"))]
    for name, kw in candidates:
        on, dele, ms = [], [], []
        for im in imgs:
            t0 = time.perf_counter()
            attr = saliency(predictor.model, im, predictor.mean, predictor.std, **kw)
            ms.append((time.perf_counter() - t0) * 1000)
            on.append(mass_on_ink(attr, im))
            dele.append(deletion_score(predictor, im, attr, ks, rng))
        print(f"   {name:30s} {np.nanmedian(on):15.3f} {np.nanmin(on):12.3f} {np.mean(dele):15.3f} {pct(ms, 50):10.2f}")
    print(f"   (* the default, insight.DEFAULT_METHOD = {insight.DEFAULT_METHOD!r}, stride {insight.OCCLUSION_STRIDE})")

    # 2 ----------------------------------------------------------------------------------------------
    print("\n2. explain() in process, 800x800 RGBA sketch of a 7 (preprocessing + forward + saliency)")
    sketch = stroke_digit("7", canvas=800, box=(150, 150, 650, 650), width=44)
    for _ in range(5):
        predictor.predict(sketch)
    print("   " + fmt("predict (the label, baseline)", timed(lambda: predictor.predict(sketch), a.runs)))
    for m in METHODS:
        explain(predictor, sketch, m)
        print("   " + fmt(f"explain {m}", timed(lambda m=m: explain(predictor, sketch, m), a.runs)))
    from mnist_web.insight_views import explanation_image
    e = explain(predictor, sketch)
    print("   " + fmt("overlay image (224x224 RGB)", timed(lambda: explanation_image(e), a.runs)))

    # 3 ----------------------------------------------------------------------------------------------
    print("\n3. feature pass over the 60,000 training images")
    before = rss_mb()
    index = FeatureIndex.build(predictor.model, train.images, train.labels, predictor.mean, predictor.std)
    print(f"   {index.seconds:.2f} s; index {index.nbytes / 2**20:.2f} MB ({index.features.shape[0]} x "
          f"{index.features.shape[1]} float32); RSS {before:.0f} -> {rss_mb():.0f} MB")

    # 4 ----------------------------------------------------------------------------------------------
    print("\n4. look-alike search (k=8)")
    img28 = e.prediction.image
    print("   " + fmt("lookalikes() per drawing (features of the query + search)",
                      timed(lambda: lookalikes(predictor, index, img28), a.runs)))
    n_eval = 2000
    with torch.inference_mode():
        q = insight.pooled_features(predictor.model, insight._normalized(test.images[:n_eval].float() / 255,
                                                                         predictor.mean, predictor.std))
        # L2 needs the raw (not unit-length) features: computed once more here
        feats = torch.cat([insight.pooled_features(predictor.model, insight._normalized(
            train.images[i:i + 500].float() / 255, predictor.mean, predictor.std)) for i in range(0, len(train), 500)])
    sq = (feats * feats).sum(1)
    y = test.labels[:n_eval]

    def l2_search(qq):
        d = sq[None, :] - 2 * qq @ feats.T
        return torch.topk(-d, 8, dim=1)[1]

    def cos_search(qq):
        return index.search(qq, 8)[1]

    for name, fn in (("cosine", cos_search), ("L2", l2_search)):
        idx = fn(q)
        lab = train.labels[idx]
        top1 = (lab[:, 0] == y).float().mean().item() * 100
        major = (torch.mode(lab, 1).values == y).float().mean().item() * 100
        ms = timed(lambda fn=fn: fn(q[:1]), a.runs)
        print(f"   {name:6s}: top-1 label agreement {top1:.2f}%, majority of 8 {major:.2f}% ({n_eval} test digits); "
              f"search p50 {pct(ms, 50):.2f} ms, p90 {pct(ms, 90):.2f} ms")

    # 5 ----------------------------------------------------------------------------------------------
    print("\n5. mistakes pass over the 10,000 test images")
    t0 = time.perf_counter()
    mistakes = find_mistakes(predictor.model, test.images, test.labels, predictor.mean, predictor.std)
    secs = time.perf_counter() - t0
    cm = np.asarray(stored_confusion(load_checkpoint(ckpt_path)))
    print(f"   {secs:.2f} s; {len(mistakes)} mistakes; the checkpoint's stored confusion matrix has "
          f"{int(cm.sum() - np.trace(cm))} off the diagonal")

    if a.app:
        app_part(a)


def app_part(a) -> None:
    import tempfile
    # A private cache folder: another app on this machine closing (and cleaning its cache) must not
    # delete the files this one serves. Set before Gradio is imported.
    os.environ.setdefault("GRADIO_TEMP_DIR", tempfile.mkdtemp(prefix="explain-bench-"))
    from gradio_client import Client, handle_file
    from PIL import Image

    from tests.drawing import stroke_digit

    spec = importlib.util.spec_from_file_location("demo_under_test", a.demo)
    demo = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = demo   # Gradio inspects the module of its component subclasses
    spec.loader.exec_module(demo)
    print(f"\n6. through gradio_client ({a.demo}); torch {torch.get_num_threads()} threads in the app, "
          f"load average {os.getloadavg()[0]:.1f}")
    port = free_port()
    app = demo.build_app(data_dir=a.data_dir, download=False)
    demo.launch(app, port=port, prevent_thread_lock=True, quiet=True)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        names = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
        if "/explain" not in names:
            print(f"   this app has no /explain endpoint ({sorted(names)}); skipped")
            return
        png = Path(tempfile.mkdtemp()) / "seven.png"
        Image.fromarray(stroke_digit("7", canvas=320, box=(60, 60, 260, 260), width=22)).save(png)
        arg = {"background": None, "layers": [], "composite": handle_file(str(png))}
        # The first /explain starts the one-time feature pass in the background; time the steady state.
        t0 = time.perf_counter()
        while "data-count='0'" in client.predict(arg, api_name="/explain")[2] and time.perf_counter() - t0 < 300:
            time.sleep(0.5)
        print(f"   look-alikes ready {time.perf_counter() - t0:.1f} s after the first /explain "
              "(background feature pass)")
        for _ in range(3):
            client.predict(arg, api_name="/classify")
            client.predict(arg, api_name="/explain")
        print("   " + fmt("/classify alone", timed(lambda: client.predict(arg, api_name="/classify"), a.calls)))
        print("   " + fmt("/explain alone", timed(lambda: client.predict(arg, api_name="/explain"), a.calls)))
        stop = threading.Event()

        def hammer():
            c = Client(f"http://127.0.0.1:{port}/", verbose=False)
            while not stop.is_set():
                c.predict(arg, api_name="/explain")

        t = threading.Thread(target=hammer, daemon=True)
        t.start()
        time.sleep(1)
        print("   " + fmt("/classify while another client calls /explain in a loop",
                          timed(lambda: client.predict(arg, api_name="/classify"), a.calls)))
        stop.set()
        t.join(10)
        t0 = time.perf_counter()
        client.predict(api_name="/mistakes")
        print("   /mistakes (first call, includes the mistakes pass if not done yet): "
              f"{time.perf_counter() - t0:.2f} s")
        print("   " + fmt("/mistakes (cached)", timed(lambda: client.predict(api_name="/mistakes"), 10)))
    finally:
        app.close()


if __name__ == "__main__":
    main()
