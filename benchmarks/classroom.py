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

--full-class (issue 31: whose runs are whose): --students (30) students, each with their own owner token
(X-Mnist-Owner), train --runs-each (2) runs one after another (1 epoch on 3,000 samples unless --samples
says otherwise), each run then picked (/show_run) and explained with (/choose_model, /explain_strokes)
unless --no-explain, while --drawers (10) people draw and --deleters (5) visitors with tokens of their own
press Delete (/delete_run) on runs listed in the runs folder, none of them theirs. The class comes from one
machine, so the app runs with --jobs-per-address 0. Reports: runs kept per student at the end (and how
many students have all theirs), runs deleted by someone else (target 0), runs lost to pruning, the
server's RSS (start, after each 10 runs, end; its worker processes beside it), /queue_status p50/p90
during the class vs idle (beside a 404 route that does no work, for the machine's own contention),
drawing latency, and the delete attempts' answers. --app-args passes more flags to demo.py: with
'--max-runs 40' the 60 runs overflow the global bound and the report shows what pruning took.

    nice -n 10 python benchmarks/classroom.py --full-class --data-dir ../shared/mnist
    nice -n 10 python benchmarks/classroom.py --full-class --data-dir ../shared/mnist --app-args "--max-runs 40"
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
from gradio_client import Client

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import pct  # noqa: E402
from mnist_web.owners import OWNER_HEADER  # noqa: E402
from tests.e2e.browser import free_port  # noqa: E402
from tests.server import Server, queue_stream, request  # noqa: E402
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


def student(url: str, cfg: dict, seed: int, samples: int, out: dict, headers: dict | None = None) -> None:
    """One Start, as the page sends it, followed to the end: its states over time, and (once saved) the
    run's key, the final status line and the run picker's choices."""
    values = {**RUN, "seed": seed, "samples": samples, "device": "cpu"}
    data = [values[k] for k in PARAMS] + [None, []]
    t0 = time.perf_counter()
    rec = {"seed": seed, "start": t0, "updates": []}
    last = None
    try:
        for _, _, last in queue_stream(url, "train", data, timeout=3600, config=cfg, headers=headers):
            state, attrs = state_of(last[0])
            now = time.perf_counter()
            if not rec["updates"] or rec["updates"][-1][1] != state or attrs.get("position") != \
                    rec["updates"][-1][2].get("position"):
                rec["updates"].append((now, state, attrs))
    except Exception as exc:   # reported as a lost student
        rec["error"] = f"{type(exc).__name__}: {exc}"
    rec["end"] = time.perf_counter()
    if last is not None:
        rec["status"] = last[0].split("<div class='status-text'>")[-1].split("</div>")[0]
        pick = last[8] if isinstance(last[8], dict) else {}
        rec["key"] = pick.get("value") if isinstance(pick.get("value"), str) else None
        rec["choices"] = [c[0] for c in pick.get("choices") or []]
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


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--students", type=int, default=30)
    p.add_argument("--spread", type=float, default=10.0, help="seconds within which all press Start")
    p.add_argument("--samples", type=int, default=None, help="training images per run (default 10,000; "
                   "with --full-class 3,000)")
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
    f = p.add_argument_group("--full-class (issue 31)")
    f.add_argument("--full-class", action="store_true",
                   help="students with owner tokens train --runs-each runs each; --deleters press Delete")
    f.add_argument("--runs-each", type=int, default=2, help="runs each student trains, one after another")
    f.add_argument("--deleters", type=int, default=5, help="visitors pressing Delete on others' runs")
    f.add_argument("--delete-interval", type=float, default=1.0, help="seconds between a deleter's attempts")
    f.add_argument("--no-explain", action="store_true", help="do not pick and explain each run after it")
    f.add_argument("--app-args", default="", help="more flags for demo.py (e.g. '--max-runs 40')")
    a = p.parse_args(argv)
    if a.samples is None:
        a.samples = 3_000 if a.full_class else 10_000
    return a


def start_server(a, tmp: Path, extra: list[str]) -> tuple[Server, subprocess.Popen | None]:
    """demo.py as a host starts it, for this class (and a local Ray head when --ray-workers)."""
    args = ["--runs-dir", str(tmp / "runs"), "--no-download", "--train-queue", str(a.students + 5), *extra]
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
    return Server(tmp, *args), ray_proc


def stop_server(server: Server, ray_proc: subprocess.Popen | None) -> None:
    server.stop()
    if ray_proc is not None:
        ray_proc.send_signal(signal.SIGTERM)
        try:
            ray_proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(ray_proc.pid, signal.SIGKILL)


def main() -> None:
    a = parse()
    if a.full_class:
        full_class(a)
    else:
        classic(a)


def classic(a) -> None:
    """Students press Start once each, anonymous (one session each), after a back-to-back baseline."""
    tmp = Path(tempfile.mkdtemp(prefix="classroom-"))
    server, ray_proc = start_server(a, tmp, [])
    try:
        url = server.url + "/"
        print(server.log().strip().splitlines()[-1] if server.log().strip() else "")
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
        stop_server(server, ray_proc)
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


def tree_rss_mb(pid: int) -> float:
    """Resident memory (MiB) of a process's descendants (the worker processes beside the server)."""
    total = 0.0
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids = (task / "children").read_text().split()
        except OSError:
            continue
        for kid in kids:
            with contextlib.suppress(OSError):          # ended meanwhile
                total += rss_of(int(kid)) + tree_rss_mb(int(kid))
    return total


def rss_of(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Class:
    """What a full class shares: the server, every run's record, the server's RSS over time, the answers
    the pick-and-explain calls and the Delete presses got."""

    def __init__(self, a, server: Server, cfg: dict) -> None:
        self.a, self.server, self.cfg = a, server, cfg
        self.url = server.url + "/"
        self.runs_dir = server.tmp / "runs"
        self.lock = threading.Lock()
        self.runs: list[dict] = []
        self.rss: list[tuple[str, float, float, float]] = []   # (when, server MB, workers MB, s since start)
        self.explained: list[float] = []
        self.errors: list[str] = []
        self.deletes: list[tuple[str, str]] = []            # (key, answer)
        self.t0 = time.perf_counter()

    def mark(self, label: str) -> None:
        pid = self.server.proc.pid
        self.rss.append((label, rss_of(pid), tree_rss_mb(pid), time.perf_counter() - self.t0))

    def ended(self, rec: dict) -> None:
        """A run is done (trained, and picked and explained unless --no-explain): RSS after each 10."""
        with self.lock:
            self.runs.append(rec)
            n = len(self.runs)
            if n == 1 or n % 10 == 0:
                self.mark(f"after {n} run" + "s" * (n > 1))

    def explain(self, client: Client, key: str) -> None:
        """Pick the run in "Results of a run" and draw against it with "Show why" on, as a student would."""
        t = time.perf_counter()
        try:
            client.predict(key, api_name="/show_run")
            client.predict(key, api_name="/choose_model")
            caption = client.predict(payload(SEVEN), True, api_name="/explain_strokes")[1]
            if not caption.startswith("Evidence"):
                self.errors.append(f"explain {key}: {caption[:80]}")
        except Exception as exc:
            self.errors.append(f"explain {key}: {type(exc).__name__}: {str(exc)[:100]}")
        self.explained.append(time.perf_counter() - t)


def full_student(c: Class, i: int, at: float) -> None:
    """A student with their own owner token: Start at `at`, then --runs-each runs one after another."""
    headers = {OWNER_HEADER: secrets.token_urlsafe(24)}
    client = None
    time.sleep(max(0.0, at - time.perf_counter()))
    for r in range(c.a.runs_each):
        out: dict = {}
        seed = 100 * (i + 1) + r
        student(c.url, c.cfg, seed, c.a.samples, out, headers)
        rec = {**out[seed], "student": i, "run": r}
        if rec.get("key") and not c.a.no_explain:
            client = client or Client(c.url, verbose=False, headers=headers)
            c.explain(client, rec["key"])
        c.ended(rec)


def deleter(c: Class, i: int, stop: threading.Event) -> None:
    """A visitor with a token of their own pressing Delete on runs listed in the runs folder (and now and
    then on the shipped model), none of them theirs."""
    rng = random.Random(1000 + i)
    client = Client(c.url, verbose=False, headers={OWNER_HEADER: secrets.token_urlsafe(24)})
    while not stop.wait(c.a.delete_interval * rng.uniform(0.5, 1.5)):
        keys = [f"runs/{p.name}" for p in c.runs_dir.glob("*.pt")]
        key = rng.choice(keys) if keys and rng.random() > 0.1 else "shipped"
        try:
            answer = client.predict(key, [], api_name="/delete_run")[0]
        except Exception as exc:
            answer = f"{type(exc).__name__}: {str(exc)[:100]}"
        c.deletes.append((key, answer))


PROBED = {"/queue_status": 200, "/mnist/nothing": 404}   # the second: a reference that does no work at all


def prober(url: str, stop: threading.Event, out: dict, every: float = 0.25) -> None:
    """GET /queue_status, then the reference route (a new connection each, as a page or a monitor asks),
    `every` seconds apart: milliseconds per answer (an unexpected status counts as infinitely slow)."""
    while not stop.is_set():
        for path, expected in PROBED.items():
            t = time.perf_counter()
            status, _ = request(url + path, timeout=30)
            out.setdefault(path, []).append(1000 * (time.perf_counter() - t) if status == expected else float("inf"))
        stop.wait(every)


def background(c: Class, stop: threading.Event, probe: list, lat: list) -> list[threading.Thread]:
    """The people drawing, the visitors pressing Delete and the /queue_status probe, started."""
    ts = [threading.Thread(target=drawer, args=(c.url, stop, lat, c.a.draw_interval)) for _ in range(c.a.drawers)]
    ts += [threading.Thread(target=deleter, args=(c, i, stop)) for i in range(c.a.deleters)]
    ts.append(threading.Thread(target=prober, args=(c.server.url, stop, probe)))
    for t in ts:
        t.start()
    return ts


def full_class(a) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="classroom-full-"))
    extra = ["--jobs-per-address", "0", *a.app_args.split()]
    server, ray_proc = start_server(a, tmp, extra)
    try:
        c = Class(a, server, httpx.get(server.url + "/config").json())
        c.mark("server started")
        idle_probe, stop = {}, threading.Event()
        t = threading.Thread(target=prober, args=(server.url, stop, idle_probe))
        t.start()
        time.sleep(8)
        stop.set()
        t.join()
        idle = drawing(c.url, a.drawers, 8, a.draw_interval)
        c.mark("before the class")
        probe, lat, stop = {}, [], threading.Event()
        bg = background(c, stop, probe, lat)
        rng = random.Random(0)
        t_begin = time.perf_counter()
        ts = [threading.Thread(target=full_student, args=(c, i, t_begin + off))
              for i, off in enumerate(sorted(rng.uniform(0, a.spread) for _ in range(a.students)))]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        wall = time.perf_counter() - t_begin
        stop.set()
        for t in bg:
            t.join()
        c.mark("end")
        present = {f"runs/{p.name}" for p in c.runs_dir.glob("*.pt")}
    finally:
        stop_server(server, ray_proc)
    report_full(c, present, wall, (idle_probe, probe), (idle, lat), " ".join(extra))
    if a.json:
        Path(a.json).write_text(json.dumps({"runs": c.runs, "rss": c.rss, "deletes": c.deletes, "probe_idle":
                                            idle_probe, "probe": probe, "draw_idle": idle, "draw": lat}))


def report_full(c: Class, present: set, wall: float, probes: tuple, draws: tuple, flags: str) -> None:
    a, runs = c.a, c.runs
    finals = Counter(r["updates"][-1][1] if r["updates"] else r.get("error", "lost") for r in runs)
    deleted = {k for k, ans in c.deletes if ans.startswith("Deleted")}
    keys = [r["key"] for r in runs if r.get("key")]
    gone = [k for k in keys if k not in present]
    kept = Counter(r["student"] for r in runs if r.get("key") in present)
    per_student = [kept.get(i, 0) for i in range(a.students)]
    notices = sum("removed" in r.get("status", "") for r in runs)
    last = [r for r in runs if r["run"] == a.runs_each - 1]
    yours = sum(sum(ch.startswith("Yours:") for ch in r.get("choices", [])) == a.runs_each for r in last)
    loads = [next((t for t, st, _ in r["updates"] if st == "loading"), None) for r in runs]
    took = [r["end"] - t for r, t in zip(runs, loads, strict=True) if t is not None]
    waits = [t - r["start"] for r, t in zip(runs, loads, strict=True) if t is not None]
    print(f"full class: {a.students} students x {a.runs_each} runs one after another (1 epoch, {a.samples:,} samples, "
          f"own owner token each), {a.drawers} people drawing, {a.deleters} visitors pressing Delete on others' "
          f"runs; pick + explain after each run: {'no' if a.no_explain else 'yes'}; app flags: {flags}")
    print(f"runs: {dict(finals)} of {len(runs)}; saved {len(keys)}; wall {wall:.1f} s; wait (Start -> loading) "
          f"p50 {pct(waits, 50):.1f} s max {max(waits):.1f} s; run (loading -> end) p50 {pct(took, 50):.2f} s")
    print(f"runs kept per student at the end: {per_student}; students with all {a.runs_each} of their runs: "
          f"{per_student.count(a.runs_each)}/{a.students}, with none: {per_student.count(0)}; "
          f"files in the runs folder: {len(present)}")
    print(f"runs deleted by someone else: {len(deleted & set(keys))}; lost to pruning: {len(set(gone) - deleted)}; "
          f"pages told of a pruned run: {notices}; students whose list after their last run showed "
          f"{a.runs_each} 'Yours:' runs: {yours}/{len(last)}")
    print("server RSS (MB; its worker processes beside it):")
    first = next((m for m in c.rss if m[0] == "after 1 run"), None)
    for label, mb, workers, t in c.rss:
        print(f"  {label:>16} at {t:6.0f} s: {mb:6.0f} MB   (workers {workers:5.0f} MB)")
    if first:
        print(f"  end - after the first run: {c.rss[-1][1] - first[1]:+.0f} MB")
    for path in PROBED:
        pi, pd = probes[0][path], probes[1][path]
        print(f"{path}{' (reference, 404)' * (path != '/queue_status')}: idle p50 {pct(pi, 50):.1f} ms p90 "
              f"{pct(pi, 90):.1f} ms (n={len(pi)}); during the class p50 {pct(pd, 50):.1f} ms p90 {pct(pd, 90):.1f} "
              f"ms max {max(pd):.0f} ms (n={len(pd)}); p90 {pct(pd, 90) / pct(pi, 90):.1f}x idle")
    di, dd = draws
    print(f"drawing /classify_strokes: idle p50 {pct(di, 50):.0f} ms p95 {pct(di, 95):.0f} ms (n={len(di)}); "
          f"during p50 {pct(dd, 50):.0f} ms p95 {pct(dd, 95):.0f} ms (n={len(dd)})")
    if c.explained:
        print(f"pick + explain (/show_run, /choose_model, /explain_strokes): p50 {pct(c.explained, 50):.1f} s, "
              f"max {max(c.explained):.1f} s (n={len(c.explained)})")
    answers = Counter(ans.replace(k.removeprefix("runs/"), "<run>") if k.startswith("runs/") else ans
                      for k, ans in c.deletes)
    print(f"delete attempts: {len(c.deletes)} ({sum(k == 'shipped' for k, _ in c.deletes)} on the shipped model); "
          f"answers: {dict(answers)}")
    if c.errors:
        print(f"errors ({len(c.errors)}): {c.errors[:5]}")


if __name__ == "__main__":
    main()
