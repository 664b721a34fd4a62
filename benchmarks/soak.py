"""Soak and load against the app as its own process (python demo.py), over loopback only.

soak: 8 clients for --minutes (default 5), each alternating /classify (a PNG, as gradio_client scripts
      send it) and a drawing as the page sends it (/classify_strokes, then /explain_strokes when it
      settles, "Show why" on), while training runs go on the same server.
      Prints errors, p50/p99 latency, server RSS after warm-up vs at the end, and Gradio's temp-dir size.
      Targets: 0 errors, RSS growth <= 50 MB after warm-up, temp dir <= 20 MB.
crowd: --users people drawing one digit after another against --url for --seconds, as `load` draws it
      (the server-side live path the page used before it computed its own label): the background load
      of benchmarks/browser_latency.py. Prints the answers per second and the errors.
load: --users (default 50) simulated people at once, each drawing one digit the way the page does:
      10 live updates of the growing stroke ~100 ms apart (each waits for the previous answer, as
      trigger_mode="always_last" does), then the final drawing, whose label and explanation are asked
      for at once (two events, as the page fires `change` and `release`). Prints p50/p99 of the final
      label and of the explanation, and errors (target 0).

flood: the plain routes under a flood (issue 31): /queue_status and /mnist/weights probed one after the other
      for --seconds idle, then for --seconds while --clients (default 40) clients post drawings to
      /mnist/activations as fast as they are answered (from a child process, so the probe's own client is
      not slowed by theirs). Prints p50/p90 of each probed route idle vs under the flood, the flood's
      answers per second and its counts by status (503s: refused by the route's bound, 500s: target 0).

    python benchmarks/soak.py soak --minutes 5 --data-dir ../shared/mnist
    python benchmarks/soak.py load --users 50
    python benchmarks/soak.py flood --clients 40 --seconds 8
"""
from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from gradio_client import Client, handle_file  # noqa: E402
from PIL import Image  # noqa: E402

from benchmarks.common import pct  # noqa: E402
from tests.drawing import stroke_digit  # noqa: E402
from tests.server import Server, request  # noqa: E402
from tests.test_strokes import SEVEN, payload  # noqa: E402


def digit_strokes(kind: str, rng: np.random.Generator) -> list[list[list[float]]]:
    """A hand-drawn-looking digit as the canvas sends it (320-unit square), jittered per user."""
    j = lambda v: float(v + rng.normal(0, 4))  # noqa: E731
    if kind == "1":
        return [[[j(160), j(40 + 12 * i)] for i in range(21)]]
    if kind == "7":
        return [[[j(60 + 10 * i), j(50)] for i in range(21)], [[j(260 - 6 * i), j(50 + 11.5 * i)] for i in range(21)]]
    return [[[j(160 + 70 * math.sin(2 * math.pi * i / 40)), j(160 - 110 * math.cos(2 * math.pi * i / 40))]
             for i in range(41)]]


def as_value(strokes) -> str:
    return json.dumps({"width": 320, "height": 320, "brush": 22, "strokes": strokes})


def prefixes(strokes, n: int):
    """n growing prefixes of the drawing (the live updates), the last one the whole drawing."""
    flat = [(si, pi) for si, s in enumerate(strokes) for pi in range(len(s))]
    for k in range(1, n + 1):
        upto = max(2, round(len(flat) * k / n))
        out = []
        for si, pi in flat[:upto]:
            if si == len(out):
                out.append([])
            out[si].append(strokes[si][pi])
        yield out


def soak(a) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="mnist-soak-"))
    runs = tmp / "runs"
    runs.mkdir()
    server = Server(tmp, "--runs-dir", str(runs), *(["--data-dir", a.data_dir] if a.data_dir else []))
    images = []
    for i, kind in enumerate("0171" * 5):             # 20 distinct drawings: people never draw the same twice
        arr = stroke_digit(kind, box=(60 + 3 * i, 60, 300 - i, 300 + i % 7))
        Image.fromarray(arr).save(tmp / f"d{i}.png")
        images.append((kind, tmp / f"d{i}.png"))
    stop = threading.Event()
    lat, errors, trains = [], [], []

    def trainer():
        c = Client(server.url + "/", verbose=False)
        while not stop.is_set():
            job = c.submit(15, 0.02, 0.9, 64, 6, 0.1, 7, 0.0, 1, 60000, "cpu", api_name="/train")
            while not job.done() and not stop.is_set():
                time.sleep(0.5)
            if stop.is_set():
                c.predict(api_name="/stop")
            out = job.outputs()
            trains.append(out[-1][0].split("data-state='")[1].split("'")[0] if out else "none")

    def client(i):
        rng = np.random.default_rng(i)
        c = Client(server.url + "/", verbose=False)
        n = 0
        while not stop.is_set():
            kind, path = images[(i + n) % len(images)]
            t = time.perf_counter()
            try:
                if n % 2:
                    label = c.predict({"background": None, "layers": [], "composite": handle_file(str(path)),
                                       "id": None}, api_name="/classify")[0]
                else:
                    kind = "017"[(i + n) % 3]
                    value = as_value(digit_strokes(kind, rng))
                    label = c.predict(value, api_name="/classify_strokes")[0]
                    if not c.predict(value, True, api_name="/explain_strokes")[1].startswith("Evidence"):
                        errors.append("no explanation")
                lat.append(time.perf_counter() - t)
                if label.get("label") not in (kind, kind + "?"):
                    errors.append(f"wrong label {label.get('label')} for {kind}")
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {str(exc)[:100]}")
            n += 1

    try:
        tr = None if a.no_training else threading.Thread(target=trainer, daemon=True)
        if tr:
            tr.start()
        with ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(client, i) for i in range(8)]
            time.sleep(a.warmup)
            rss_warm, n_warm = server.rss_mb(), len(lat)
            t_end = time.time() + a.minutes * 60
            series = [(0.0, rss_warm)]                  # (seconds after warm-up, RSS MB) every 5 s
            t_warm = time.time()
            while time.time() < t_end:
                time.sleep(5)
                series.append((time.time() - t_warm, server.rss_mb()))
            rss_end = series[-1][1]
            peak = max(r for _, r in series)
            stop.set()
            for f in futures:
                f.result()
        if tr:
            tr.join(60)
        temp_mb = sum(p.stat().st_size for p in server.temp_files()) / 1e6
        measured = lat[n_warm:]
        training = "no training" if a.no_training else \
            f"training alongside (runs ended as: {', '.join(trains) or 'still running'})"
        print(f"soak: 8 clients x {a.minutes:g} min (+{a.warmup:g} s warm-up), {training}")
        print(f"requests {len(measured):,}  errors {len(errors)}  p50 {1000 * pct(measured, 50):.0f} ms  "
              f"p99 {1000 * pct(measured, 99):.0f} ms")
        print(f"server RSS after warm-up {rss_warm:.0f} MB, at the end {rss_end:.0f} MB "
              f"(growth {rss_end - rss_warm:+.0f} MB, peak {peak:.0f} MB); temp dir {temp_mb:.2f} MB in "
              f"{len(server.temp_files())} files")
        half = [r for t, r in series if t >= series[-1][0] / 2]
        print(f"second half: RSS {half[0]:.0f} -> {half[-1]:.0f} MB (growth {half[-1] - half[0]:+.0f} MB, "
              f"range {min(half):.0f}-{max(half):.0f} MB)")
        print("RSS every minute (MB):", " ".join(f"{r:.0f}" for _, r in series[::12]))
        if errors:
            print("first errors:", errors[:5])
    finally:
        stop.set()
        server.stop()


def load(a) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="mnist-load-"))
    server = Server(tmp, "--no-train")
    clients = [Client(server.url + "/", verbose=False) for _ in range(a.users)]
    barrier = threading.Barrier(a.users)
    finals, live, explained, errors = [], [], [], []

    def user(i):
        rng = np.random.default_rng(100 + i)
        kind = "017"[i % 3]
        strokes = digit_strokes(kind, rng)
        barrier.wait()
        try:
            steps = list(prefixes(strokes, a.updates + 1))
            for part in steps[:-1]:                       # live updates while "drawing"
                t = time.perf_counter()
                clients[i].predict(as_value(part), api_name="/classify_strokes")
                dt = time.perf_counter() - t
                live.append(dt)
                time.sleep(max(0.0, 0.1 - dt))
            t = time.perf_counter()
            why = clients[i].submit(as_value(steps[-1]), True, api_name="/explain_strokes")   # `release`
            label = clients[i].predict(as_value(steps[-1]), api_name="/classify_strokes")[0]  # `change`
            finals.append(time.perf_counter() - t)
            if not why.result()[1].startswith("Evidence"):
                errors.append(f"user {i}: no explanation")
            explained.append(time.perf_counter() - t)
            if label.get("label") not in (kind, kind + "?"):
                errors.append(f"user {i}: {label.get('label')} for {kind}")
        except Exception as exc:
            errors.append(f"user {i}: {type(exc).__name__}: {str(exc)[:100]}")

    try:
        with ThreadPoolExecutor(a.users) as pool:
            list(pool.map(user, range(a.users)))
        print(f"load: {a.users} users at once, {a.updates} live updates + the final drawing each")
        print(f"final label p50 {1000 * pct(finals, 50):.0f} ms, p99 {1000 * pct(finals, 99):.0f} ms; "
              f"its explanation p50 {1000 * pct(explained, 50):.0f} ms, p99 {1000 * pct(explained, 99):.0f} ms; "
              f"live updates p50 {1000 * pct(live, 50):.0f} ms, p99 {1000 * pct(live, 99):.0f} ms; "
              f"errors {len(errors)}")
        if errors:
            print("errors:", errors[:5])
    finally:
        server.stop()


def crowd(a) -> None:
    clients = [Client(a.url, verbose=False) for _ in range(a.users)]
    stop = time.time() + a.seconds
    answers, errors = [0], []

    def user(i):
        rng = np.random.default_rng(1000 + i)
        while time.time() < stop:
            steps = list(prefixes(digit_strokes("017"[rng.integers(3)], rng), a.updates + 1))
            try:
                for part in steps[:-1]:
                    t = time.perf_counter()
                    clients[i].predict(as_value(part), api_name="/classify_strokes")
                    answers[0] += 1
                    time.sleep(max(0.0, 0.1 - (time.perf_counter() - t)))
                why = clients[i].submit(as_value(steps[-1]), True, api_name="/explain_strokes")
                clients[i].predict(as_value(steps[-1]), api_name="/classify_strokes")
                why.result()
                answers[0] += 2
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {str(exc)[:80]}")

    t0 = time.time()
    with ThreadPoolExecutor(a.users) as pool:
        list(pool.map(user, range(a.users)))
    print(f"crowd: {a.users} users, {answers[0] / (time.time() - t0):.0f} answers/s, {len(errors)} errors"
          + (f" (first: {errors[0]})" if errors else ""), flush=True)


PROBED = ("/queue_status", "/mnist/weights?key=shipped")


def probe(url: str, seconds: float) -> dict[str, list[float]]:
    """Each probed route asked in turn (a new connection each time, as a monitor or a page would) for
    `seconds`: milliseconds per answer; any answer but 200 is an error."""
    out: dict[str, list[float]] = {p: [] for p in PROBED}
    end = time.time() + seconds
    while time.time() < end:
        for path in PROBED:
            t = time.perf_counter()
            status, _ = request(url + path, timeout=30)
            out[path].append(1000 * (time.perf_counter() - t))
            if status != 200:
                raise SystemExit(f"{path} answered {status}")
        time.sleep(0.02)
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


FLOODS = {  # name: (path, clients wait Retry-After after a 503, what it shows)
    "activations": ("/mnist/activations", False, "clients that retry at once after a 503"),
    "activations-polite": ("/mnist/activations", True, "clients that wait the Retry-After a 503 names"),
    "404": ("/mnist/nothing", False, "reference: the same clients on a route that does no work (404)"),
}


def flood_clients(a) -> None:
    """The flood itself (run as a child process by `flood`): --clients threads, each on its own kept-alive
    connection, asking --path (POSTing a drawing to /mnist/activations, as the page does) for --seconds;
    with --polite a client waits the Retry-After of a 503. Prints the counts by status as JSON."""
    host, port = a.url.split("//")[1].rstrip("/").split(":")
    body = json.dumps({"strokes": payload(SEVEN), "key": "shipped"}).encode()
    headers = {"Content-Type": "application/json", "Accept-Encoding": "gzip, deflate, br"}   # as a browser
    post = a.path.endswith("/activations")
    counts: dict[str, int] = {}
    lock = threading.Lock()
    end = time.time() + a.seconds

    def client(_):
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        while time.time() < end:
            wait = 0.0
            try:
                conn.request("POST" if post else "GET", a.path, body if post else None, headers)
                r = conn.getresponse()
                r.read()
                key = str(r.status)
                if r.status == 503 and a.polite:
                    wait = float(r.getheader("Retry-After", "1"))
                if r.getheader("Connection", "").lower() == "close":
                    conn.close()
            except (OSError, http.client.HTTPException) as exc:
                key = type(exc).__name__
                conn.close()
            with lock:
                counts[key] = counts.get(key, 0) + 1
            time.sleep(min(wait, max(0.0, end - time.time())))

    with ThreadPoolExecutor(a.clients) as pool:
        list(pool.map(client, range(a.clients)))
    print(json.dumps(counts), flush=True)


def flood_phase(server: Server, name: str, a) -> tuple[dict, dict, float]:
    """One flood from a child process: (probe times under it, the flood's counts, server cores busy)."""
    path, polite, _ = FLOODS[name]
    child = subprocess.Popen([sys.executable, __file__, "flood-clients", "--url", server.url, "--path", path,
                              "--clients", str(a.clients), "--seconds", str(a.seconds), *(["--polite"] * polite)],
                             stdout=subprocess.PIPE, text=True)
    time.sleep(1.0)                                             # the flood under way before the probe
    cpu0, t0 = cpu_seconds(server.proc.pid), time.time()
    flooded = probe(server.url, a.seconds - 1.5)
    busy = (cpu_seconds(server.proc.pid) - cpu0) / (time.time() - t0)
    counts = json.loads(child.communicate(timeout=120)[0].strip().splitlines()[-1])
    return flooded, counts, busy


def route_flood(a) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="mnist-flood-"))
    (tmp / "runs").mkdir()
    server = Server(tmp, "--runs-dir", str(tmp / "runs"), *(["--data-dir", a.data_dir] if a.data_dir else []))
    try:
        url = server.url
        nested = request(url + "/mnist/activations", b"[" * 100_000, {"Content-Type": "application/json"})
        probe(url, 3)                                           # warm-up: the model and its weights body
        idle = probe(url, a.seconds)
        print(f"flood: {a.clients} clients for {a.seconds:g} s per flood, from a child process; /queue_status and "
              f"/mnist/weights probed one after the other (a new connection each, 20 ms apart), idle first")
        for path in PROBED:
            i = idle[path]
            print(f"  idle {path.split('?')[0]}: p50 {pct(i, 50):.1f} ms p90 {pct(i, 90):.1f} ms "
                  f"max {max(i):.0f} ms (n={len(i)})")
        for name in a.floods:
            flooded, counts, busy = flood_phase(server, name, a)
            print(f"{name} ({FLOODS[name][0]}, {FLOODS[name][2]}): {counts.get('200', 0) / a.seconds:.0f} answers/s, "
                  f"{sum(counts.values()) / a.seconds:.0f} requests/s, by status {dict(sorted(counts.items()))}; "
                  f"503s {counts.get('503', 0)}, 500s {counts.get('500', 0)}; server {busy:.2f} cores busy")
            for path in PROBED:
                i, f = idle[path], flooded[path]
                print(f"  {path.split('?')[0]}: p50 {pct(f, 50):.1f} ms p90 {pct(f, 90):.1f} ms max {max(f):.0f} ms "
                      f"(n={len(f)}); p90 {pct(f, 90) / pct(i, 90):.2f}x idle")
        print(f"nested body (100,000 x '['): {nested[0]} {nested[1][:100]!r}")
    finally:
        server.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("soak")
    s.add_argument("--minutes", type=float, default=5.0)
    s.add_argument("--warmup", type=float, default=120.0,
                   help="seconds before the RSS baseline is taken (long enough for the one-time caches: the "
                        "look-alike index and the training data are built in the background at first)")
    s.add_argument("--data-dir", default=None)
    s.add_argument("--no-training", action="store_true", help="no training run alongside (to tell its memory apart)")
    l = sub.add_parser("load")  # noqa: E741
    l.add_argument("--users", type=int, default=50)
    l.add_argument("--updates", type=int, default=10)
    c = sub.add_parser("crowd")
    c.add_argument("--url", required=True)
    c.add_argument("--users", type=int, default=50)
    c.add_argument("--updates", type=int, default=10)
    c.add_argument("--seconds", type=float, default=60)
    f = sub.add_parser("flood")
    f.add_argument("--clients", type=int, default=40)
    f.add_argument("--seconds", type=float, default=8.0)
    f.add_argument("--data-dir", default=None)
    f.add_argument("--floods", nargs="+", choices=list(FLOODS), default=list(FLOODS))
    fc = sub.add_parser("flood-clients")
    fc.add_argument("--url", required=True)
    fc.add_argument("--path", default="/mnist/activations")
    fc.add_argument("--polite", action="store_true")
    fc.add_argument("--clients", type=int, default=40)
    fc.add_argument("--seconds", type=float, default=8.0)
    a = p.parse_args()
    {"soak": soak, "load": load, "crowd": crowd, "flood": route_flood, "flood-clients": flood_clients}[a.cmd](a)


if __name__ == "__main__":
    main()
