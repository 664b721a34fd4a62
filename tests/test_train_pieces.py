"""Training's pieces on their own (issue 30): a job's events as typed records that survive the trip
through a pipe or Ray (pickle), the scheduler's queue without threads or backends, the runner's verdict.
(The whole service: test_training_service.py, test_train_queue.py.)"""
from __future__ import annotations

import multiprocessing as mp
import pickle

import pytest

from mnist_core.config import ConfigError, make_config
from mnist_core.jobs import EVENTS, Batch, End, Epoch, Error, Loaded, Look, as_event, is_last
from mnist_web.train_runner import Outcome, verdict
from mnist_web.train_scheduler import Scheduler

EXAMPLES = [Loaded(1200, 2, 4242), Batch(10, 38, 0.61, 80.5), Look({"epoch": 1, "guesses": [3] * 20}),
            Epoch({"epoch": 1, "test_accuracy": 97.5}, b"\x80checkpoint"), End(True), Error("DataError: no MNIST")]


@pytest.mark.parametrize("event", EXAMPLES, ids=lambda e: e.kind)
def test_every_event_round_trips_through_pickle(event):
    for protocol in range(2, pickle.HIGHEST_PROTOCOL + 1):
        back = pickle.loads(pickle.dumps(event, protocol))
        assert type(back) is type(event) and back == event and back.kind == event.kind


def test_events_cross_a_real_pipe_and_rays_pickler():
    a, b = mp.Pipe()
    try:
        for event in EXAMPLES:
            a.send(event)
            assert type(got := b.recv()) is type(event) and got == event
    finally:
        a.close()
        b.close()
    ray_pickle = pytest.importorskip("ray.cloudpickle")
    assert [type(e) for e in ray_pickle.loads(ray_pickle.dumps(EXAMPLES))] == [type(e) for e in EXAMPLES]


def test_an_event_is_its_kind_and_named_fields():
    loaded = Loaded(1200, 2, 4242)
    assert loaded == ("loaded", 1200, 2, 4242) and loaded[0] == "loaded" and loaded.pid == 4242
    assert Batch(done=5, total=10, loss=0.5, accuracy=90.0).done == 5
    assert Epoch({"epoch": 2}, None).record == {"epoch": 2} and End(False).stopped is False
    assert sorted(EVENTS) == ["batch", "end", "epoch", "error", "loaded", "look"]
    assert [is_last(e) for e in EXAMPLES] == [False, False, False, False, True, True]
    assert as_event(("error", "boom")) == Error("boom") and isinstance(as_event(("end", False)), End)
    assert as_event(loaded) is loaded
    with pytest.raises(ValueError):
        as_event(("finished", 1))
    with pytest.raises(TypeError):
        as_event(("batch", (1, 2, 0.5, 50.0)))   # fields in the wrong shape


CFG = make_config(nullable=(), epochs=1, max_train_samples=1000, device="cpu")


def test_the_scheduler_queues_first_come_first_served_one_per_owner():
    s = Scheduler(max_waiting=2)
    a, b, c = (s.admit(CFG, owner, 10.0, slots=1) for owner in ("a", "b", "c"))
    with pytest.raises(ConfigError, match="already has a run waiting"):
        s.admit(CFG, "b", 10.0, slots=1)
    assert s.start_ready(slots=1) == [a] and a.state == "running" and a.moved.is_set()
    with pytest.raises(ConfigError, match="already has a run training"):
        s.admit(CFG, "a", 10.0, slots=1)
    with pytest.raises(ConfigError, match=r"queue is full \(2 runs waiting\)"):
        s.admit(CFG, "d", 10.0, slots=1)
    assert s.counts() == (1, 2) and [s.wait_of(j, 1)[0] for j in (b, c)] == [1, 2]
    assert s.wait_of(c, 1)[1] > s.wait_of(b, 1)[1] > 0
    s.cancel(b)                                         # a waiting job leaves: the one behind moves up
    assert b.state == "done" and b.done.is_set() and c.moved.is_set() and s.wait_of(c, 1)[0] == 1
    assert s.jobs("b") == [] and s.start_ready(slots=1) == []   # the slot is still taken
    s.finish(a, finished=True)
    assert s.jobs("a") == [] and s.start_ready(slots=1) == [c] and s.counts() == (1, 0)
    assert s.wait_of(c, 1) == (0, 0.0)                  # not waiting any more


def test_the_scheduler_has_no_estimate_without_slots():
    s = Scheduler(max_waiting=5)
    job = s.admit(CFG, "", 10.0, slots=0)
    assert s.start_ready(slots=0) == [] and s.wait_of(job, 0) == (1, None)


def test_the_verdict_of_a_run():
    assert verdict(Outcome("finished", epochs_done=3, last_test_accuracy=98.765), 3) == \
        ("finished", "Finished: test accuracy 98.77% after 3 epochs.")
    assert verdict(Outcome("finished", epochs_done=1), 3) == ("stopped", "Stopped after 1 of 3 epochs.")
    assert verdict(Outcome("failed", "its worker process was killed by SIGKILL."), 3) == \
        ("failed", "Failed: its worker process was killed by SIGKILL.")
