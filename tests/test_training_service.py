"""The shared training service with real jobs in worker processes: runs saved, faults reported, nothing
lost, no orphans, a second job of a session refused while others queue. (Queue semantics with a fake
run: test_train_queue.py; a killed worker: test_train_workers.py.)"""
from __future__ import annotations

import datetime
import os
import threading
import time

import pytest
import torch

from mnist_core.checkpoint import load_checkpoint, save_checkpoint
from mnist_core.config import TrainingBudget
from mnist_web import train_runner, training_service
from mnist_web.backends import LocalBackend, ThreadBackend
from mnist_web.owners import record_of
from mnist_web.training_service import TrainingService

QUICK = dict(epochs=2, batch_size=32, max_train_samples=1200, device="cpu")   # 1,200: the synthetic set


def run_all(service, **values):
    return list(service.stream({**QUICK, **values}, owner="t"))


def start_long_run(service, owner):
    """Start a run that would take minutes and return its stream once it is really training."""
    gen = service.stream({**QUICK, "epochs": 50, "batch_size": 4}, owner=owner)
    for u in gen:
        if u.state == "running":
            return gen
    gen.close()
    raise AssertionError("the run never started")


@pytest.fixture(scope="module")
def backend():
    """One worker process for the module's services (spawned once: torch imported, data read once)."""
    b = LocalBackend(1, 1)
    yield b
    b.close()


@pytest.fixture
def service(tmp_path, synthetic_root, backend):
    """A service whose run, whatever a test does or fails at, is stopped and joined afterwards."""
    s = TrainingService(tmp_path, data_dir=str(synthetic_root), download=False, backend=backend)
    yield s
    s.stop()
    deadline = time.time() + 60
    while s.busy and time.time() < deadline:
        time.sleep(0.05)


def test_finished_run_is_saved(tmp_path, synthetic_root, backend):
    s = TrainingService(tmp_path, data_dir=str(synthetic_root), download=False, backend=backend)
    updates = run_all(s)
    assert updates[0].state == "loading" and updates[-1].state == "finished"
    assert len(updates[-1].history) == 2 and (tmp_path / updates[-1].checkpoint).is_file()
    assert not s.busy


def test_error_mid_epoch_reaches_status_and_frees_the_slot(tmp_path, synthetic_root):
    class Exploding(ThreadBackend):
        """The job's events as they come, then a crash in epoch 2 (as run_job reports one)."""
        explode = True

        def run(self, spec, stop):
            for event in super().run(spec, stop):
                if event[0] == "epoch" and self.explode:
                    yield event
                    yield ("error", "RuntimeError: simulated failure in epoch 2")
                    return
                yield event

    backend = Exploding()
    s = TrainingService(tmp_path, data_dir=str(synthetic_root), download=False, backend=backend)
    last = run_all(s)[-1]
    assert last.state == "failed" and "simulated failure" in last.message and "\n" not in last.message
    assert last.checkpoint is not None            # the finished epoch 1 is kept, labelled as such
    ck = load_checkpoint(tmp_path / last.checkpoint)
    assert ck["status"] == "stopped" and ck["epochs_completed"] == 1
    assert not s.busy
    backend.explode = False
    assert run_all(s)[-1].state == "finished"     # the next run starts fine


def test_closing_the_stream_stops_the_worker(service):
    """What happens when a browser tab closes: Gradio stops iterating and closes the generator."""
    gen = start_long_run(service, "tab")
    try:
        assert service.busy
        t0 = time.time()
        gen.close()
        # within a batch or two (~10 ms each); generous for a loaded 2-core machine
        assert time.time() - t0 < 30 and not service.busy
        assert not any(t.name.startswith("mnist-train-job") for t in threading.enumerate())
        assert service.running_pids() == []
    finally:
        gen.close()


def test_a_session_gets_one_job_others_queue_behind_it(service):
    gen = start_long_run(service, "a")
    try:
        second = list(service.stream(QUICK, owner="a"))
        assert [u.state for u in second] == ["refused"] and "already has a run training" in second[0].message
        other = service.stream({**QUICK, "epochs": 1}, owner="b")
        queued = next(other)
        assert queued.state == "queued" and queued.position == 1 and "next in line" in queued.message
        assert not service.stop("someone else") and service.stop("a")
        assert list(gen)[-1].state == "stopped"
        assert list(other)[-1].state == "finished"     # the next in line ran once the slot was free
    finally:
        gen.close()


def test_stopped_run_is_saved_after_one_epoch(service, tmp_path):
    gen = service.stream({**QUICK, "epochs": 50}, owner="t")
    try:
        for u in gen:
            if len(u.history) >= 1:
                service.stop("t")
                break
        last = list(gen)[-1]
    finally:
        gen.close()
    assert last.state == "stopped" and last.message.startswith("Stopped after ") and "of 50 epochs" in last.message
    ck = load_checkpoint(tmp_path / last.checkpoint)
    assert ck["status"] == "stopped" and ck["epochs_completed"] == len(ck["history"]) >= 1
    assert ck["history"] == last.history[:len(ck["history"])]


def test_stop_before_the_first_epoch_saves_nothing(service, tmp_path):
    gen = start_long_run(service, "t")
    try:
        service.stop("t")
        last = list(gen)[-1]
    finally:
        gen.close()
    assert last.state == "stopped" and "nothing was saved" in last.message and last.checkpoint is None
    assert list(tmp_path.iterdir()) == []


def test_same_name_runs_do_not_overwrite_each_other(service, tmp_path, monkeypatch):
    class Frozen(datetime.datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime.datetime(2026, 1, 2, 3, 4, 5)

    monkeypatch.setattr(train_runner._dt, "datetime", Frozen)
    names = [run_all(service, epochs=1)[-1].checkpoint for _ in range(3)]
    assert len(set(names)) == 3 and all(n.startswith("run-20260102-030405-") for n in names)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)
    assert names[1] == names[0][:-3] + "-2.pt"


def test_small_runs_are_not_saved(service, tmp_path):
    last = run_all(service, epochs=1, max_train_samples=999)[-1]
    assert last.state == "finished" and last.checkpoint is None
    assert "Not saved: runs on fewer than 1,000 training samples" in last.message
    assert list(tmp_path.iterdir()) == []
    assert run_all(service, epochs=1, max_train_samples=1000)[-1].checkpoint is not None


def test_runs_folder_keeps_each_owners_newest(tmp_path, synthetic_root, backend, shipped_checkpoint):
    """Per-owner pruning (mnist_core/pruning.py): the saving owner's oldest go, nobody else's."""
    s = TrainingService(tmp_path, data_dir=str(synthetic_root), download=False, budget=TrainingBudget(keep_runs=2),
                        backend=backend)
    ckpt = load_checkpoint(shipped_checkpoint)
    for i in range(3):
        save_checkpoint({**ckpt, "owner": record_of("t")}, tmp_path / f"old-{i}.pt")
        os.utime(tmp_path / f"old-{i}.pt", ns=(10**18 + i,) * 2)
    (tmp_path / "host.pt").write_bytes(b"x")             # a run saved before owners: the host's
    os.utime(tmp_path / "host.pt", ns=(10**18,) * 2)
    last = run_all(s, epochs=1)[-1]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["host.pt", "old-2.pt", last.checkpoint])
    assert "Removed the oldest 2 runs to keep the 2 newest of yours" in last.message
    assert load_checkpoint(tmp_path / last.checkpoint)["owner"] == record_of("t")


def test_over_budget_runs_are_refused_up_front(tmp_path, synthetic_root, backend):
    s = TrainingService(tmp_path, data_dir=str(synthetic_root), download=False,
                        budget=TrainingBudget(max_steps=50), backend=backend)
    updates = run_all(s, epochs=2, batch_size=32)          # 2 x 38 steps
    assert [u.state for u in updates] == ["refused"]
    assert "needs 76 optimizer steps" in updates[0].message and "limit on this server is 50" in updates[0].message
    assert not s.busy and list(tmp_path.iterdir()) == []
    assert TrainingService(tmp_path, backend=backend).check({"device": "cpu"}).epochs == 15   # the recipe fits


def test_stream_carries_windowed_curves_eta_and_final_metrics(service):
    updates = run_all(service, epochs=2, batch_size=4)    # 300 batches per epoch: a point every 30
    running = [u for u in updates if u.state == "running"]
    assert running and all(u.epochs == 2 for u in updates)
    for u in updates:
        xs = [p[0] for p in u.train_points]
        assert xs == sorted(xs) and all(0 < x <= len(u.history) + 1 for x in xs)
        assert len(u.test_points) == len(u.history)
    last = updates[-1]
    assert last.state == "finished" and last.progress == 1.0
    assert len(last.train_points) == 2 * 10 and [p[0] for p in last.train_points[:3]] == [0.1, 0.2, 0.3]
    assert [p[0] for p in last.test_points] == [1.0, 2.0]
    assert [p[2] for p in last.test_points] == [h["test_accuracy"] for h in last.history]
    # the window means average back to the epoch's mean (equal windows of 30 batches)
    mean_loss = sum(p[1] for p in last.train_points[:10]) / 10
    assert mean_loss == pytest.approx(last.history[0]["train_loss"], rel=1e-6)
    mid = [u for u in running if 0 < u.batch < u.batches]
    assert mid and all(u.eta_seconds is not None and u.eta_seconds >= 0 and u.images_per_s > 0 for u in mid)
    assert all(0 <= u.progress <= 1 for u in updates)
    assert sum(sum(r) for r in last.test_metrics["confusion_matrix"]) == 300
    assert "after 2 epochs" in last.message and "after 1 epoch." in run_all(service, epochs=1)[-1].message


@pytest.mark.parametrize("values", [dict(epochs=0), dict(lr=-1), dict(batch_size=0), dict(max_train_samples=0),
                                    dict(epochs="many"), dict(momentum=None, gamma=-2), dict(epochs=2.5),
                                    dict(epochs=True), dict(max_train_samples=None), dict(seed=None),
                                    dict(epochs=50, max_train_samples=None, batch_size=1)])
def test_bad_values_are_refused_before_anything_starts(tmp_path, synthetic_root, values, backend):
    s = TrainingService(tmp_path, data_dir=str(synthetic_root), download=False, backend=backend)
    updates = run_all(s, **values)
    assert [u.state for u in updates] == ["refused"] and updates[0].message.startswith("Not started")
    assert list(tmp_path.iterdir()) == []


def test_the_worker_trains_with_its_threads_even_after_inference_set_one(tmp_path, synthetic_root):
    """Requests predict with 1 intra-op thread; a run trains with the backend's threads per run, in its
    own process (not the server's), whatever the server process has set."""
    from mnist_core.predict import INFERENCE_THREADS, use_inference_threads

    use_inference_threads()
    b = LocalBackend(1, INFERENCE_THREADS + 1)
    try:
        spec = {"config": training_service.make_config(nullable=(), **{**QUICK, "epochs": 1}).to_dict(),
                "data_dir": str(synthetic_root), "download": False}
        events = list(b.run(spec, threading.Event()))
    finally:
        b.close()
    loaded = next(e for e in events if e[0] == "loaded")
    assert loaded[2] == INFERENCE_THREADS + 1 and loaded[3] != os.getpid()
    assert events[-1] == ("end", False) and torch.get_num_threads() == INFERENCE_THREADS
