"""Prediction latency: in-process, through the running app, at start-up, and while a run trains.

    python benchmarks/predict_latency.py [--data-dir ../shared/mnist] [--runs 300] [--calls 60]

1. preprocessing + forward of an 800x800 RGBA sketch, in process (target: p50 <= 2 ms)
2. /classify through gradio_client against the app, next to Gradio's own floor measured in the same
   run: a minimal app echoing text, echoing an 800x800 image, and taking an image to return "ok"
   (target: /classify p50 <= 1.3x the image floor)
3. start-up: seconds from `python demo.py` to the first successful /classify
4. /classify while the app trains (1 epoch on the full training set): p50/p99 vs idle (target: p50 <= 2x idle)
5. 20 clients calling /classify at once while the app trains: every answer checked, p50/p99
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import fmt, pct, timed  # noqa: E402
from tests.e2e.browser import free_port  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=os.environ.get("MNIST_DATA_DIR"))
    p.add_argument("--runs", type=int, default=300, help="in-process repetitions")
    p.add_argument("--calls", type=int, default=60, help="HTTP calls per endpoint")
    p.add_argument("--skip-training", action="store_true", help="skip parts 4 and 5 (they need MNIST)")
    a = p.parse_args()

    import gradio as gr
    import torch
    from gradio_client import Client, handle_file

    import demo
    from mnist_core.predict import Predictor
    from mnist_core.preprocess import prepare
    from mnist_core.strokes import DEFAULT_SIDE
    from tests.drawing import stroke_digit

    print(f"machine: {os.cpu_count()} CPUs, torch {torch.__version__} ({torch.get_num_threads()} threads), "
          f"gradio {gr.__version__}")
    sketch800 = stroke_digit("7", canvas=800, box=(150, 150, 650, 650), width=44)
    predictor = Predictor.from_file(demo.SHIPPED_CHECKPOINT)
    for _ in range(20):
        predictor.predict(sketch800)
    prep = timed(lambda: prepare(sketch800), a.runs)
    full = timed(lambda: predictor.predict(sketch800), a.runs)
    print("1. in process, 800x800 RGBA sketch")
    print("   " + fmt("preprocessing only", prep))
    print("   " + fmt("preprocessing + forward", full) + "   (target p50 <= 2 ms)")

    tmp = Path(tempfile.mkdtemp())
    Image.fromarray(sketch800).save(tmp / "s800.png")
    small = np.asarray(Image.fromarray(sketch800).resize((DEFAULT_SIDE, DEFAULT_SIDE), Image.BILINEAR))
    Image.fromarray(small).save(tmp / f"s{DEFAULT_SIDE}.png")

    with gr.Blocks() as floor:
        t_in, t_out = gr.Textbox(), gr.Textbox()
        i_in, i_out = gr.Image(type="numpy"), gr.Image(type="numpy")
        t_in.submit(lambda s: s, t_in, t_out, api_name="echo_text")
        i_in.change(lambda im: im, i_in, i_out, api_name="echo_image")
        i_in.upload(lambda im: "ok", i_in, t_out, api_name="image_in")
    fport, aport = free_port(), free_port()
    floor.launch(server_port=fport, prevent_thread_lock=True, quiet=True)
    runs = Path(tempfile.mkdtemp())
    app = demo.build_app(demo.SHIPPED_CHECKPOINT, runs, data_dir=a.data_dir, download=False)
    demo.launch(app, port=aport, prevent_thread_lock=True, quiet=True)
    fc, ac = Client(f"http://127.0.0.1:{fport}/", verbose=False), Client(f"http://127.0.0.1:{aport}/", verbose=False)

    def sk(path):
        return {"background": None, "layers": [], "composite": handle_file(str(path)), "id": None}

    png800, png_canvas = tmp / "s800.png", tmp / f"s{DEFAULT_SIDE}.png"
    calls = {
        "floor: text echo": lambda: fc.predict("7", api_name="/echo_text"),
        "floor: 800x800 image echo": lambda: fc.predict(handle_file(str(png800)), api_name="/echo_image"),
        "floor: 800x800 image in, text out": lambda: fc.predict(handle_file(str(png800)), api_name="/image_in"),
        "/classify 800x800 sketch": lambda: ac.predict(sk(png800), api_name="/classify"),
        f"/classify {DEFAULT_SIDE}x{DEFAULT_SIDE} sketch (the app's canvas)":
            lambda: ac.predict(sk(png_canvas), api_name="/classify"),
    }
    for fn in calls.values():  # warm-up
        for _ in range(3):
            fn()
    results = {name: [] for name in calls}
    for _ in range(a.calls):  # interleaved, so drift hits all alike
        for name, fn in calls.items():
            t0 = time.perf_counter()
            fn()
            results[name].append((time.perf_counter() - t0) * 1000)
    print("2. round trips through gradio_client (same run, interleaved)")
    for name, ms in results.items():
        print("   " + fmt(name, ms))
    fl = pct(results["floor: 800x800 image echo"], 50)
    fl_in = pct(results["floor: 800x800 image in, text out"], 50)
    c800 = pct(results["/classify 800x800 sketch"], 50)
    print(f"   /classify 800x800 p50 / image-echo floor p50 = {c800 / fl:.2f} (target <= 1.3); "
          f"/ image-in floor = {c800 / fl_in:.2f}")
    idle = results["/classify 800x800 sketch"]

    port = free_port()
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "demo.py", "--port", str(port)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            try:
                Client(f"http://127.0.0.1:{port}/", verbose=False).predict(sk(tmp / "s800.png"), api_name="/classify")
                break
            except Exception:
                if time.perf_counter() - t0 > 120:
                    raise
                time.sleep(0.1)
        print(f"3. start-up: {time.perf_counter() - t0:.1f} s from `python demo.py` to the first /classify answer")
    finally:
        proc.terminate()
        proc.wait()

    if not a.skip_training:
        job = ac.submit(1, 0.02, 0.9, 64, 6, 0.1, 7, 0.0, 1, 60000, "cpu", api_name="/train")
        while not job.outputs() or "data-state='running'" not in job.outputs()[-1][0]:
            time.sleep(0.1)
        busy = timed(lambda: ac.predict(sk(tmp / "s800.png"), api_name="/classify"), a.calls)
        print("4. /classify while the app trains (1 epoch, 60,000 images)")
        print("   " + fmt("idle", idle))
        print("   " + fmt("during training", busy) + f"   p50 ratio {pct(busy, 50) / pct(idle, 50):.2f} (target <= 2)")

        def client_calls(_):
            c = Client(f"http://127.0.0.1:{aport}/", verbose=False)
            out = []
            for _ in range(5):
                t = time.perf_counter()
                label, _html = c.predict(sk(tmp / "s800.png"), api_name="/classify")
                out.append(((time.perf_counter() - t) * 1000, label["label"]))
            return out

        with ThreadPoolExecutor(20) as pool:
            answers = [x for r in pool.map(client_calls, range(20)) for x in r]
        ms = [m for m, _ in answers]
        ok = sum(lbl == "7" for _, lbl in answers)
        print(f"5. 20 clients x 5 calls at once during training: {ok}/{len(answers)} answered correctly; "
              + fmt("latency", ms))
        job.result(timeout=600)
    app.close()
    floor.close()


if __name__ == "__main__":
    main()
