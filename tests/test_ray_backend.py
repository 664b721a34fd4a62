"""The Ray backend against a real local Ray cluster that this module starts (`ray start --head`, two worker
CPUs, its own temp dir), the app joining it by address as in production: three small real runs through
/train (two at once, the third waits, then runs; all saved; per-epoch metrics equal to the local
backend's), a Ray worker killed mid-run (that run failed, its place freed, the waiting job goes on), and
an unreachable address (one line, no server). The cluster's size: read by the backend's poller only; the
read made to fail (once, then for several polls) keeps every waiting job queued and GET /queue_status
answering from the last read without asking the cluster; a fake GPU in the size read caps GPU jobs at
one while a CPU job behind the waiting GPU job runs. The poller and the places per kind, without a cluster."""
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
from mnist_web.ray_backend import RayBackend, ResourcePoller  # noqa: E402
from mnist_web.training_service import TrainingService  # noqa: E402
from tests.e2e.browser import free_port  # noqa: E402
from tests.server import launched  # noqa: E402
from tests.test_app import state_of, train_args  # noqa: E402
from tests.test_train_queue import first_state  # noqa: E402
from tests.test_train_workers import QUEUED_RUN, queue_status, saved_history, trainer_history, wait_for  # noqa: E402

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
        if "backend" in locals():
            backend.close()
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
    app = demo.build_app(shipped_checkpoint, runs, data_dir=str(nowhere), download=False,
                            train_backend=cluster["backend"])
    with launched(app, keep_backend=True) as url:   # the cluster fixture owns the backend
        yield {"url": url, "runs": runs, "trainer": app.services.training}


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


# ---------------------------------------------------------------- the cluster's size, read by one poller
POLLER = "mnist-ray-resources"


class Sized(RayBackend):
    """A RayBackend whose size read answers `size` (no cluster): the places per kind."""

    def __init__(self, size: dict, **kw):
        self.size = size
        super().__init__(**kw)

    def _resources(self):
        return self.size


def test_the_poller_keeps_the_last_size_through_failed_reads():
    answers = [{"CPU": 4}, ConnectionError("GCS down"), ConnectionError("GCS down"), {"CPU": 6, "GPU": 1}]

    def read():
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    p = ResourcePoller(read, every=3600).start()     # one read at start; the thread waits an hour
    try:
        assert p.value() == {"CPU": 4.0} and p.reads == 1
        assert not p.poll() and not p.poll()
        assert p.value() == {"CPU": 4.0} and p.failures == 2 and "GCS down" in p.error
        assert p.poll() and p.value() == {"CPU": 6.0, "GPU": 1.0} and p.error is None
    finally:
        p.close()
    assert not p._thread.is_alive()


def test_the_poller_reads_in_its_own_thread_until_closed():
    threads = []
    p = ResourcePoller(lambda: threads.append(threading.current_thread().name) or {"CPU": 1}, every=0.05).start()
    time.sleep(0.5)
    p.close()
    n = len(threads)
    time.sleep(0.2)
    assert len(threads) == n and n >= 4 and set(threads[1:]) == {POLLER}   # the first read: at start


def test_places_per_kind_from_the_size_read():
    b = Sized({"CPU": 8, "GPU": 2}, cpus_per_job=2, poll_seconds=3600)
    try:   # a GPU job takes a GPU and one CPU: the CPU places are what is left after them
        assert b.capacity() == {"cpu": 3, "cuda": 2} and b.slots() == 5
        assert [b.kind_of(d) for d in ("auto", "cuda", "cpu")] == ["cuda", "cuda", "cpu"]
        assert b.describe().startswith("a Ray cluster of 8 CPUs and 2 GPUs, 2 CPUs per run")
        b.size = {"CPU": 3}
        b.poller.poll()
        assert b.capacity() == {"cpu": 1, "cuda": 0}
        assert [b.kind_of(d) for d in ("auto", "cuda")] == ["cpu", "cpu"]   # cuda: a CPU place, told "no GPU"
        b.size = None                                                         # a read that fails: kept
        assert not b.poller.poll() and b.capacity() == {"cpu": 1, "cuda": 0}
        assert "the cluster is not answering" in b.describe()
    finally:
        b.close()
    never = Sized(None, poll_seconds=3600)   # never read: no place yet, jobs wait
    try:
        assert never.capacity() == {"cpu": 0, "cuda": 0} and "not known yet" in never.describe()
    finally:
        never.close()


def queued_at(job) -> int:
    """The position the client's last update shows; fails unless that update is "queued"."""
    html = job.outputs()[-1][0]
    assert state_of(html) == "queued", html
    return int(html.split("data-position='")[1].split("'")[0])


def test_a_failed_size_read_keeps_every_waiting_job_and_queue_status_answers_from_the_last_read(
        app, cluster, monkeypatch):
    trainer, poller = app["trainer"], cluster["backend"].poller
    a, b, c, d = (Client(app["url"], verbose=False) for _ in range(4))
    long_a = a.submit(*train_args(epochs=50, batch_size=8, seed=1), api_name="/train")
    long_b = b.submit(*train_args(epochs=50, batch_size=8, seed=2), api_name="/train")
    wait_for(long_a, "running", 90)
    wait_for(long_b, "running", 90)
    wc = c.submit(*train_args(epochs=1, seed=3), api_name="/train")
    wait_for(wc, "queued", 30)
    wd = d.submit(*train_args(epochs=1, seed=5), api_name="/train")
    wait_for(wd, "queued", 30)
    calls, fail, real = [], {"left": 1}, ray.cluster_resources

    def flaky():
        calls.append(threading.current_thread().name)
        if fail["left"]:
            fail["left"] -= 1
            raise ConnectionError("the GCS did not answer")
        return real()

    def failures_reach(n: int, timeout: float = 30) -> None:
        deadline = time.time() + timeout
        while poller.failures < n and time.time() < deadline:
            time.sleep(0.05)
        assert poller.failures >= n, poller.failures

    try:
        f0 = poller.failures
        monkeypatch.setattr(ray, "cluster_resources", flaky)
        failures_reach(f0 + 1)                       # once
        for _ in range(10):
            st = queue_status(app["url"])
            assert (st["slots"], st["running"], st["waiting"]) == (2, 2, 2), st
        assert [queued_at(wc), queued_at(wd)] == [1, 2]
        fail["left"] = -1                            # then for good: several polls
        failures_reach(f0 + 4)
        for _ in range(20):
            st = queue_status(app["url"])
            assert (st["slots"], st["waiting"]) == (2, 2) and "not answering" in st["where"], st
        time.sleep(1.0)                              # the waiting pages' heartbeats go on
        assert [queued_at(wc), queued_at(wd)] == [1, 2] and trainer.status()["waiting"] == 2
        a.predict(api_name="/stop")                  # a place frees during the blip: the first in line takes it
        assert state_of(long_a.result(timeout=60)[0]) == "stopped"
        wait_for(wc, "running", 90)
        deadline = time.time() + 10
        while queued_at(wd) != 1 and time.time() < deadline:   # moved up, still waiting
            time.sleep(0.05)
        assert queued_at(wd) == 1
        done = wc.result(timeout=120)[0]             # run from the last read: no cluster read on its way
        assert state_of(done) == "finished", done
        wait_for(wd, "running", 90)                  # wc's place, in turn
        assert calls and set(calls) == {POLLER}, set(calls)   # nobody but the poller asked the cluster
        assert poller.failures >= f0 + 4 and poller.reads > 0
    finally:
        monkeypatch.setattr(ray, "cluster_resources", real)
        b.predict(api_name="/stop")
        d.predict(api_name="/stop")
        a.predict(api_name="/stop")
    assert state_of(long_b.result(timeout=60)[0]) == "stopped"
    wd.result(timeout=120)
    assert trainer.status()["running"] == 0 and trainer.status()["waiting"] == 0


class OneFakeGpu(RayBackend):
    """The real cluster (2 CPUs) as if it had one GPU: a GPU job's task waits in Ray for a GPU that never
    comes, i.e. it holds its GPU place until stopped, as a long GPU run would."""

    def _resources(self):
        return {**ray.cluster_resources(), "GPU": 1.0}


def test_gpu_jobs_are_capped_at_the_gpus_while_a_cpu_job_behind_them_runs(cluster, tmp_path, synthetic_root):
    backend = OneFakeGpu(poll_seconds=0.5)
    s = TrainingService(tmp_path, data_dir=str(synthetic_root), download=False, backend=backend)
    gpu = dict(QUEUED_RUN, epochs=1, device="cuda")
    try:
        assert backend.capacity() == {"cpu": 1, "cuda": 1}
        g1 = s.stream({**gpu, "seed": 1}, owner="g1")
        assert next(g1).state == "loading"                     # sent to Ray: its GPU place is taken
        g2 = s.stream({**gpu, "device": "auto", "seed": 2}, owner="g2")
        assert next(g2).position == 1                           # the second GPU job waits for the GPU
        c3 = s.stream({**gpu, "device": "cpu", "seed": 3}, owner="c3")
        out = list(c3)                                          # behind it, the CPU job runs on the cluster
        assert out[-1].state == "finished" and "Saved as" in out[-1].message, out[-1].message
        [running] = s.scheduler.running.values()
        assert running.cfg.seed == 1 and running.kind == "cuda"
        assert [j.cfg.seed for j in s.scheduler.waiting] == [2]
        g1.close()                                              # the GPU frees: the GPU job waiting takes it
        assert first_state(g2, "loading").state == "loading"
        [running] = s.scheduler.running.values()
        assert running.cfg.seed == 2 and running.cfg.device == "cuda"   # "auto" runs where it was counted
        g2.close()
        assert not s.busy
    finally:
        s.close()
    assert not backend.poller._thread.is_alive()
