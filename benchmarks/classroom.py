"""A classroom on one server: N students press Start within a few seconds while people draw.

The app runs as its own process (demo.py, as a host starts it), with its embedded worker processes
(--slots / --threads) or joined to a local Ray cluster that this script starts (--ray-workers N: a head
with N CPUs). Each student is a separate session (Gradio's own protocol, as the page) starting 1 epoch
on --samples training images with their own seed, at a random moment within --spread seconds; 10
simulated people (--drawers) call /classify_strokes meanwhile, as the page's server fallback does (one
request at a time each, --draw-interval seconds apart: 0.5 s, about the pace of someone drawing digit
after digit; the page computes its live label itself once the model's weights are loaded).

Reports: finished / refused; time from Start to the first status on the page (queued or loading); each
student's wait (Start -> loading) and run (loading -> end); total wall time vs the same runs back to back
(N x the median Start -> end of --baseline runs one after another on the same server, the same people
drawing meanwhile) and vs the sum of the runs as they ran; the ETA error of the student next in line
(the ETA shown when they became first in line vs the real wait from there); drawing latency during the
classroom vs idle.

    nice -n 10 python benchmarks/classroom.py --data-dir ../shared/mnist                 # 30 students, 1 slot
    nice -n 10 python benchmarks/classroom.py --students 8 --spread 0 --slots 2 --threads 1
    nice -n 10 python benchmarks/classroom.py --ray-workers 2
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import pct  # noqa: E402
from tests.e2e.browser import free_port  # noqa: E402
from tests.server import Server, queue_stream  # noqa: E402
from tests.test_strokes import SEVEN, payload  # noqa: E402

RUN = dict(epochs=1, lr=0.02, momentum=0.9, batch_size=64, step_size=6, gamma=0.1, rotation=7.0, dropout=0.0)
PARAMS = ("epochs", "lr", "momentum", "batch_size", "step_size", "gamma", "rotation", "dropout", "seed", "samples",
          "device")


def state_of(status: str) -> tuple[str, dict]:
    state = status.split("data-state='")[1].split("'")[0]
    attrs = {}
    for key in ("position", "eta"):
        if f"data-{key}='" in status:
            attrs[key] = float(status.split(f"data-{key}='")[1].split("'")[0])
    return state, attrs


def student(url: str, cfg: dict, seed: int, samples: int, out: dict) -> None:
    values = {**RUN, "seed": seed, "samples": samples, "device": "cpu"}
    data = [values[k] for k in PARAMS] + [None, []]
    t0 = time.perf_counter()
    rec = {"seed": seed, "start": t0, "updates": []}
    try:
        for _, _, values in queue_stream(url, "train", data, timeout=3600, config=cfg):
            state, attrs = state_of(values[0])
            now = time.perf_counter()
            if not rec["updates"] or rec["updates"][-1][1] != state or attrs.get("position") != \
                    rec["updates"][-1][2].get("position"):
                rec["updates"].append((now, state, attrs))
    except Exception as exc:   # reported as a lost student
        rec["error"] = f"{type(exc).__name__}: {exc}"
    rec["end"] = time.perf_counter()
    out[seed] = rec


def drawer(url: str, stop: threading.Event, lat: list, interval: float) -> None:
    from gradio_client import Client

    c = Client(url, verbose=False)
    body = payload(SEVEN)
    while not stop.is_set():
        t0 = time.perf_counter()
        c.predict(body, api_name="/classify_strokes")
        lat.append((time.perf_counter() - t0) * 1000)
        time.sleep(interval)


def drawing(url: str, n: int, seconds: float, interval: float) -> list[float]:
    lat, stop = [], threading.Event()
    ts = [threading.Thread(target=drawer, args=(url, stop, lat, interval)) for _ in range(n)]
    for t in ts:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in ts:
        t.join()
    return lat


def start_ray(cpus: int, data_dir: str) -> tuple[subprocess.Popen, str]:
    temp = tempfile.mkdtemp(prefix="ray-bench-", dir="/tmp")
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MNIST_DATA_DIR": data_dir, "RAY_USAGE_STATS_ENABLED": "0"}
    log = open(Path(temp) / "head.log", "wb")  # noqa: SIM115 - the head's whole life
    proc = subprocess.Popen([str(Path(sys.executable).with_name("ray")), "start", "--head", "--block",
                             f"--port={port}", f"--num-cpus={cpus}", "--num-gpus=0", f"--temp-dir={temp}",
                             "--include-dashboard=false", "--disable-usage-stats"], env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                time.sleep(3)   # the raylet registers after the GCS listens
                return proc, f"127.0.0.1:{port}"
        except OSError:
            time.sleep(0.5)
    raise SystemExit("the Ray head did not start")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--students", type=int, default=30)
    p.add_argument("--spread", type=float, default=10.0, help="seconds within which all press Start")
    p.add_argument("--samples", type=int, default=10_000)
    p.add_argument("--drawers", type=int, default=10)
    p.add_argument("--draw-interval", type=float, default=0.5,
                   help="seconds each drawer waits between answers (a person drawing, lifting the pen)")
    p.add_argument("--slots", type=int, default=None, help="--train-slots of the app (default: the app's)")
    p.add_argument("--threads", type=int, default=None, help="--train-threads of the app")
    p.add_argument("--ray-workers", type=int, default=0, help="start a local Ray head with this many CPUs")
    p.add_argument("--data-dir", default=os.environ.get("MNIST_DATA_DIR"))
    p.add_argument("--json", default=None, help="also write the raw records here")
    p.add_argument("--baseline", type=int, default=4,
                   help="runs one after another (after a warm-up run), the people drawing, for the baseline")
    a = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="classroom-"))
    args = ["--runs-dir", str(tmp / "runs"), "--no-download", "--train-queue", str(a.students + 5)]
    if a.data_dir:
        args += ["--data-dir", a.data_dir]
    if a.slots:
        args += ["--train-slots", str(a.slots)]
    if a.threads:
        args += ["--train-threads", str(a.threads)]
    ray_proc = None
    if a.ray_workers:
        ray_proc, address = start_ray(a.ray_workers, a.data_dir or "")
        args += ["--ray", address]
    server = Server(tmp, *args)
    try:
        url = server.url + "/"
        print(server.log().strip().splitlines()[-1] if server.log().strip() else "")
        import httpx

        cfg = httpx.get(server.url + "/config").json()   # what the page has before anyone presses Start
        idle = drawing(url, a.drawers, 8, a.draw_interval)
        lat, stop = [], threading.Event()
        ds = [threading.Thread(target=drawer, args=(url, stop, lat, a.draw_interval)) for _ in range(a.drawers)]
        for t in ds:
            t.start()
        # the back-to-back baseline, while the same people draw: one run to warm the worker, then
        # --baseline runs one after another (Start -> end each, as a student sees it)
        solo = {}
        for seed in range(10_000, 10_001 + a.baseline):
            student(url, cfg, seed, a.samples, solo)
        lone = [solo[k] for k in sorted(solo)][1:]
        alone = statistics.median(r["end"] - r["start"] for r in lone if not r.get("error"))
        del lat[:]   # the drawing latency "during" is the classroom's
        out: dict = {}
        rng = random.Random(0)
        offsets = sorted(rng.uniform(0, a.spread) for _ in range(a.students))
        t_begin = time.perf_counter()
        ts = []
        for i, off in enumerate(offsets):
            time.sleep(max(0.0, t_begin + off - time.perf_counter()))
            ts.append(threading.Thread(target=student, args=(url, cfg, i + 1, a.samples, out)))
            ts[-1].start()
        for t in ts:
            t.join()
        t_end = time.perf_counter()
        stop.set()
        for t in ds:
            t.join()
    finally:
        server.stop()
        if ray_proc is not None:
            ray_proc.send_signal(signal.SIGTERM)
            try:
                ray_proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(ray_proc.pid, signal.SIGKILL)
    report(a, out, alone, t_begin, t_end, idle, lat)
    if a.json:
        Path(a.json).write_text(json.dumps({"records": out, "alone": alone, "idle": idle, "during": lat}))


def report(a, out: dict, alone: float, t_begin: float, t_end: float, idle: list, lat: list) -> None:
    recs = [out[k] for k in sorted(out)]
    finals = [r["updates"][-1][1] if r["updates"] else r.get("error", "lost") for r in recs]
    first = [(r["updates"][0][0] - r["start"]) * 1000 for r in recs if r["updates"]]
    queued = sum(1 for r in recs if r["updates"] and r["updates"][0][1] == "queued")
    waits, runs, eta_err, eta_abs = [], [], [], []
    for r in recs:
        t_load = next((t for t, st, _ in r["updates"] if st == "loading"), None)
        if t_load is None:
            continue
        waits.append(t_load - r["start"])
        runs.append(r["end"] - t_load)
        first_in_line = next(((t, at["eta"]) for t, st, at in r["updates"]
                              if st == "queued" and at.get("position") == 1 and "eta" in at), None)
        if first_in_line is not None:
            real = t_load - first_in_line[0]
            if real > 0.5:
                eta_err.append(abs(first_in_line[1] - real) / real)
                eta_abs.append(abs(first_in_line[1] - real))
    print(f"students: {a.students}, pressing Start within {a.spread:g} s; 1 epoch on {a.samples:,} samples each; "
          f"{a.drawers} people drawing")
    print(f"finished {finals.count('finished')}/{len(recs)}, refused {finals.count('refused')}, "
          f"other {[f for f in finals if f not in ('finished', 'refused')]}; {queued} saw 'queued' first")
    print(f"Start -> first status on the page: p50 {pct(first, 50):.0f} ms, max {max(first):.0f} ms")
    print(f"wait (Start -> loading): p50 {pct(waits, 50):.1f} s, max {max(waits):.1f} s")
    print(f"run (loading -> end): p50 {pct(runs, 50):.2f} s, min {min(runs):.2f} s, max {max(runs):.2f} s")
    total = t_end - t_begin
    print(f"total wall {total:.1f} s; back to back ({a.students} x one run alone, {alone:.2f} s): "
          f"{a.students * alone:.1f} s; sum of the runs as they ran: {sum(runs):.1f} s")
    if eta_err:
        print(f"ETA error of the student next in line: median {100 * pct(eta_err, 50):.0f}%, "
              f"p90 {100 * pct(eta_err, 90):.0f}%, max {100 * max(eta_err):.0f}% (n={len(eta_err)}); "
              f"off by p50 {pct(eta_abs, 50):.1f} s, p90 {pct(eta_abs, 90):.1f} s")
    print(f"drawing /classify_strokes: idle p50 {pct(idle, 50):.0f} ms p95 {pct(idle, 95):.0f} ms (n={len(idle)}); "
          f"during p50 {pct(lat, 50):.0f} ms p95 {pct(lat, 95):.0f} ms (n={len(lat)}); "
          f"ratio p50 {pct(lat, 50) / pct(idle, 50):.2f}x")


if __name__ == "__main__":
    main()
