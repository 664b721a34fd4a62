"""Runs in worker processes, through the app (gradio_client, as a second program uses it): a worker killed
mid-run (SIGKILL, what the kernel's out-of-memory killer sends) ends that run as failed with a one-line
reason, frees its slot for the next job, leaves no partial file in the runs folder, and drawing is answered
throughout; a run through the queue has the same per-epoch metrics as the Trainer for the same seed;
GET /queue_status."""
from __future__ import annotations

import json
import os
import signal
import threading
import time
import urllib.request

import pytest
import torch
from gradio_client import Client

import demo
from mnist_core.checkpoint import load_checkpoint
from mnist_core.config import make_config
from mnist_core.data import load_mnist
from mnist_core.train import Trainer
from mnist_web.backends import LocalBackend
from tests.server import launched
from tests.test_app import state_of, train_args
from tests.test_strokes import SEVEN, payload


@pytest.fixture(scope="module")
def app(tmp_path_factory, synthetic_root, shipped_checkpoint):
    """The app as demo.launch serves it (its own routes too), one worker process of one thread."""
    runs = tmp_path_factory.mktemp("runs")
    app = demo.build_app(shipped_checkpoint, runs, data_dir=str(synthetic_root), download=False,
                            train_backend=LocalBackend(1, 1))
    with launched(app) as url:
        yield {"url": url, "runs": runs, "trainer": app.services.training}


def wait_for(job, state, timeout=90):
    deadline = time.time() + timeout
    while time.time() < deadline:
        outs = job.outputs()
        if outs and state_of(outs[-1][0]) == state:
            return outs[-1][0]
        time.sleep(0.05)
    raise AssertionError(f"never {state}: {job.outputs()[-1][0] if job.outputs() else None}")


def queue_status(url):
    with urllib.request.urlopen(url + "queue_status", timeout=10) as r:
        return json.loads(r.read())


def test_a_killed_worker_fails_its_run_only(app):
    trainer, runs = app["trainer"], app["runs"]
    before = {p.name for p in runs.iterdir()}
    a, b, drawer = (Client(app["url"], verbose=False) for _ in range(3))
    first = a.submit(*train_args(epochs=50, batch_size=8), api_name="/train")   # minutes, if left alone
    wait_for(first, "running")
    second = b.submit(*train_args(epochs=1), api_name="/train")
    assert "data-position='1'" in wait_for(second, "queued")
    assert queue_status(app["url"]) == {**queue_status(app["url"]), "running": 1, "waiting": 1, "slots": 1}

    answers, stop = [], threading.Event()

    def draw():
        while not stop.is_set():
            t0 = time.perf_counter()
            label = drawer.predict(payload(SEVEN), api_name="/classify_strokes")[0]
            answers.append((label.get("label"), time.perf_counter() - t0))

    t = threading.Thread(target=draw)
    t.start()
    try:
        time.sleep(0.5)
        pids = trainer.running_pids()
        assert len(pids) == 1 and pids[0] != os.getpid()
        os.kill(pids[0], signal.SIGKILL)
        failed = first.result(timeout=60)[0]
        assert state_of(failed) == "failed" and "killed by SIGKILL" in failed and "\n" not in failed, failed
        done = second.result(timeout=120)[0]      # the slot was freed: the next job ran, in a new worker
        assert state_of(done) == "finished" and "Saved as" in done, done
    finally:
        stop.set()
        t.join(30)
        a.predict(api_name="/stop")
    assert len(answers) >= 5 and all(label == "7" for label, _ in answers), answers[:5]
    assert max(s for _, s in answers) < 10, max(s for _, s in answers)
    new = {p.name for p in runs.iterdir()} - before
    assert len(new) == 1 and all(n.endswith(".pt") and not n.startswith(".") for n in new), new   # no temp file
    assert load_checkpoint(runs / new.pop())["status"] == "complete"
    assert queue_status(app["url"])["running"] == 0


def saved_history(runs, status: str) -> list[dict]:
    name = status.split("Saved as ")[1].split(";")[0]
    return [{k: v for k, v in h.items() if k != "seconds"} for h in load_checkpoint(runs / name)["history"]]


def trainer_history(data_root, **values) -> list[dict]:
    """The same run with the Trainer in this process (the CLI's code path); tests run with 1 thread."""
    assert torch.get_num_threads() == 1
    train, test = load_mnist(str(data_root), download=False)
    cfg = make_config(nullable=(), **values)
    return [{k: v for k, v in r.as_dict().items() if k != "seconds"} for r in Trainer(cfg, train, test).run()]


QUEUED_RUN = dict(epochs=2, lr=0.02, momentum=0.9, batch_size=32, step_size=6, gamma=0.1, rotation=7.0,
                  dropout=0.0, seed=4, max_train_samples=1200, device="cpu")


def test_a_queued_run_has_the_trainers_metrics(app, synthetic_root):
    """CPU runs are deterministic for a seed and thread count: the worker (1 thread) and a Trainer here
    give the same per-epoch numbers, exactly."""
    c = Client(app["url"], verbose=False)
    status = c.predict(*train_args(epochs=2, seed=4), api_name="/train")[0]
    assert state_of(status) == "finished", status
    assert saved_history(app["runs"], status) == trainer_history(synthetic_root, **QUEUED_RUN)
