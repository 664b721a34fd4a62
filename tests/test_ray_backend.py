"""The Ray backend against a real local Ray cluster that this module starts (`ray start --head`, two worker
CPUs, its own temp dir), the app joining it by address as in production: three small real runs through
/train (two at once, the third waits, then runs; all saved; per-epoch metrics equal to the local
backend's), a Ray worker killed mid-run (that run failed, its place freed, the waiting job goes on), and
an unreachable address (one line, no server)."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, need

try:
    import ray
except ImportError:  # pragma: no cover
    ray = None
need(ray is not None, "ray is not installed (pip install -r requirements-ray.txt)")

from gradio_client import Client  # noqa: E402

import demo  # noqa: E402
from mnist_web.backends import BackendError  # noqa: E402
from mnist_web.ray_backend import RayBackend  # noqa: E402
from tests.e2e.browser import free_port  # noqa: E402
from tests.server import launched  # noqa: E402
from tests.test_app import state_of, train_args  # noqa: E402
from tests.test_train_workers import QUEUED_RUN, saved_history, trainer_history, wait_for  # noqa: E402

RAY = Path(sys.executable).with_name("ray")


def wait_port(port: int, proc: subprocess.Popen, log: Path, timeout: float = 90) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"ray start exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"the Ray head did not listen within {timeout} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def cluster(synthetic_root):
    """A Ray head with 2 CPUs in a subprocess (--block: ending it ends the cluster's processes). Its workers
    import this checkout (PYTHONPATH) and read MNIST from their own MNIST_DATA_DIR."""
    temp = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))   # short: Ray's socket paths must stay < 108 bytes
    port = free_port()
    log = temp / "head.log"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(":"),
           "MNIST_DATA_DIR": str(synthetic_root), "RAY_USAGE_STATS_ENABLED": "0", "OMP_NUM_THREADS": "1"}
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(RAY), "start", "--head", "--block", f"--port={port}", "--num-cpus=2",
                                 "--num-gpus=0", f"--temp-dir={temp}", "--include-dashboard=false",
                                 "--disable-usage-stats"], env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        wait_port(port, proc, log)
        backend = RayBackend.connect(f"127.0.0.1:{port}")
        deadline = time.time() + 60
        while backend.slots() < 2 and time.time() < deadline:
            time.sleep(0.5)
        assert backend.slots() == 2, ray.cluster_resources()
        yield {"address": f"127.0.0.1:{port}", "backend": backend, "proc": proc}
    finally:
        ray.shutdown()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


@pytest.fixture(scope="module")
def app(cluster, tmp_path_factory, synthetic_root, shipped_checkpoint):
    runs = tmp_path_factory.mktemp("ray-runs")
    nowhere = tmp_path_factory.mktemp("no-mnist-here")   # the app's own data folder is not the workers'
    blocks = demo.build_app(shipped_checkpoint, runs, data_dir=str(nowhere), download=False,
                            train_backend=cluster["backend"])
    with launched(blocks, keep_backend=True) as url:   # the cluster fixture owns the backend
        yield {"url": url, "runs": runs, "trainer": blocks.mnist_trainer}


def watch_running(trainer, stop: threading.Event, seen: list) -> None:
    while not stop.is_set():
        seen.append(trainer.status()["running"])
        time.sleep(0.05)


def test_three_runs_two_at_once_the_third_waits_all_saved_same_metrics(app, synthetic_root):
    trainer, runs = app["trainer"], app["runs"]
    clients = [Client(app["url"], verbose=False) for _ in range(3)]
    seen, stop = [], threading.Event()
    watcher = threading.Thread(target=watch_running, args=(trainer, stop, seen))
    watcher.start()
    try:
        jobs = []
        for i, c in enumerate(clients):
            jobs.append(c.submit(*train_args(epochs=2, seed=4 + i), api_name="/train"))
            if i < 2:
                wait_for(jobs[-1], "loading", 30)     # in this order
        third = wait_for(jobs[2], "queued", 30)
        assert "data-position='1'" in third, third
        finals = [j.result(timeout=240)[0] for j in jobs]
    finally:
        stop.set()
        watcher.join()
    assert all(state_of(f) == "finished" and "Saved as" in f for f in finals), finals
    assert max(seen) == 2                                   # two at once, never three on two CPUs
    states = [state_of(o[0]) for o in jobs[2].outputs()]
    assert states.index("queued") < states.index("running")   # the third waited, then ran
    assert len(list(runs.glob("*.pt"))) == 3
    # the Ray worker (1 CPU, 1 thread) gives the local backend's numbers exactly (test_train_workers.py:
    # the same Trainer code path, seed 4)
    assert saved_history(runs, finals[0]) == trainer_history(synthetic_root, **QUEUED_RUN)


def test_a_killed_ray_worker_fails_its_run_and_frees_its_place(app):
    trainer = app["trainer"]
    a, b, c = (Client(app["url"], verbose=False) for _ in range(3))
    long_a = a.submit(*train_args(epochs=50, batch_size=8, seed=1), api_name="/train")
    long_b = b.submit(*train_args(epochs=50, batch_size=8, seed=2), api_name="/train")
    wait_for(long_a, "running", 90)
    wait_for(long_b, "running", 90)
    waiting = c.submit(*train_args(epochs=1, seed=3), api_name="/train")
    assert "data-position='1'" in wait_for(waiting, "queued", 30)
    try:
        pids = trainer.running_pids()
        assert len(pids) == 2
        pid_a = next(j.worker_pid for j in list(trainer._running.values()) if j.cfg.seed == 1)
        os.kill(pid_a, signal.SIGKILL)
        failed = long_a.result(timeout=60)[0]
        assert state_of(failed) == "failed" and "Ray worker" in failed and "\n" not in failed, failed
        done = waiting.result(timeout=120)[0]   # its place went to the job that was waiting
        assert state_of(done) == "finished", done
        assert state_of(long_b.outputs()[-1][0]) == "running"   # the other run went on untouched
    finally:
        b.predict(api_name="/stop")
        a.predict(api_name="/stop")
    assert state_of(long_b.result(timeout=60)[0]) == "stopped"
    assert trainer.status()["running"] == 0


def test_an_unreachable_cluster_is_one_clear_line():
    address = f"127.0.0.1:{free_port()}"
    t0 = time.time()
    with pytest.raises(BackendError) as err:
        RayBackend.connect(address)
    assert time.time() - t0 < 10
    assert str(err.value).startswith(f"cannot reach the Ray cluster at {address}") and "\n" not in str(err.value)
    out = subprocess.run([sys.executable, str(ROOT / "demo.py"), "--ray", address, "--port", str(free_port())],
                         capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 1 and out.stdout == "", (out.returncode, out.stdout[-500:])
    assert out.stderr.strip().startswith("demo.py: cannot reach the Ray cluster") and \
        len(out.stderr.strip().splitlines()) == 1, out.stderr[-2000:]
