"""The shared training service: one run at a time, faults reported, nothing lost, no orphans."""
from __future__ import annotations

import threading
import time

import pytest

from mnist_core import training_service
from mnist_core.train import Trainer
from mnist_core.training_service import TrainingService

QUICK = dict(epochs=2, batch_size=32, max_train_samples=600, device="cpu")


def run_all(service, **values):
    return list(service.stream({**QUICK, **values}, owner="t"))


def start_long_run(service, owner):
    """Start a run that would take minutes and return its stream once it is really training."""
    gen = service.stream({**QUICK, "epochs": 50, "batch_size": 4}, owner=owner)
    for u in gen:
        if u.state == "running":
            return gen
    raise AssertionError("the run never started")


def test_finished_run_is_saved(tmp_path, synthetic_root):
    s = TrainingService(tmp_path, data_dir=str(synthetic_root), download=False)
    updates = run_all(s)
    assert updates[0].state == "loading" and updates[-1].state == "finished"
    assert len(updates[-1].history) == 2 and (tmp_path / updates[-1].checkpoint).is_file()
    assert not s.busy


def test_error_mid_epoch_reaches_status_and_releases_the_lock(tmp_path, synthetic_root, monkeypatch):
    class Exploding(Trainer):
        def run(self):
            for i, rec in enumerate(super().run()):
                yield rec
                raise RuntimeError("simulated failure in epoch 2")

    monkeypatch.setattr(training_service, "Trainer", Exploding)
    s = TrainingService(tmp_path, data_dir=str(synthetic_root), download=False)
    last = run_all(s)[-1]
    assert last.state == "failed" and "simulated failure" in last.message
    assert last.checkpoint is not None            # the finished epoch 1 is kept, labelled as such
    assert not s.busy
    monkeypatch.undo()
    assert run_all(s)[-1].state == "finished"     # the next run starts fine


def test_closing_the_stream_stops_the_worker(tmp_path, synthetic_root):
    """What happens when a browser tab closes: Gradio stops iterating and closes the generator."""
    s = TrainingService(tmp_path, data_dir=str(synthetic_root), download=False)
    gen = start_long_run(s, "tab")
    assert s.busy
    t0 = time.time()
    gen.close()
    assert time.time() - t0 < 3 and not s.busy
    assert not any(t.name == "mnist-training" for t in threading.enumerate())


def test_second_run_is_refused_while_one_trains(tmp_path, synthetic_root):
    s = TrainingService(tmp_path, data_dir=str(synthetic_root), download=False)
    gen = start_long_run(s, "a")
    second = run_all(s)
    assert [u.state for u in second] == ["refused"] and "another training run" in second[0].message
    assert not s.stop("someone else") and s.stop("a")
    assert list(gen)[-1].state == "stopped"


@pytest.mark.parametrize("values", [dict(epochs=0), dict(lr=-1), dict(batch_size=0), dict(max_train_samples=0),
                                    dict(epochs="many"), dict(momentum=None, gamma=-2)])
def test_bad_values_are_refused_before_anything_starts(tmp_path, synthetic_root, values):
    s = TrainingService(tmp_path, data_dir=str(synthetic_root), download=False)
    updates = run_all(s, **values)
    assert [u.state for u in updates] == ["refused"] and updates[0].message.startswith("Not started")
    assert list(tmp_path.iterdir()) == []
