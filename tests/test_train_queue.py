"""The training queue: its arithmetic (pure functions) and its semantics with a fast fake run (a backend
that emits the events of a real job, on a timer): order, one job per session, Stop and a closed tab
while waiting, the bound, positions and ETA moving, and many sessions pressing Start at once; places of
two kinds (CPU and GPU, as on a Ray cluster): first come first served within each kind, GPU jobs capped
at the GPUs while CPU jobs go past a waiting GPU job, and a backend that cannot tell its places keeping
every waiting job."""
from __future__ import annotations

import threading
import time

import pytest

from mnist_core.config import make_config
from mnist_core.jobs import Batch, End, Epoch, Loaded
from mnist_web.backends import OnePool
from mnist_web.train_queue import Pace, RunClock, remaining_seconds, start_in
from mnist_web.train_scheduler import Scheduler
from mnist_web.train_views import ordinal, queued_message, status_html
from mnist_web.training_service import TrainingService

VALUES = dict(epochs=1, batch_size=64, max_train_samples=500, device="cpu")


class FakeBackend(OnePool):
    """A job = `steps` batches of `step` seconds each, then one epoch; or, with hold=True, until released.
    Records the order in which jobs started (by seed) and how many ran at once. One pool of `slots`."""

    name = "fake"

    def __init__(self, slots=1, steps=5, step=0.02):
        self._slots, self.steps, self.step = slots, steps, step
        self.started: list[int] = []
        self.devices: dict[int, str] = {}   # seed -> the device its spec asked for
        self.release = threading.Event()
        self.hold = False
        self.now = self.most = 0
        self._lock = threading.Lock()

    def describe(self):
        return f"{self._slots} fake slots"

    def run(self, spec, stop):
        seed = spec["config"]["seed"]
        with self._lock:
            self.started.append(seed)
            self.devices[seed] = spec["config"]["device"]
            self.now += 1
            self.most = max(self.most, self.now)
        try:
            yield Loaded(500, 1, 0)
            i = 0
            while i < self.steps or (self.hold and not self.release.is_set()):
                if stop.is_set():
                    yield End(True)
                    return
                time.sleep(self.step)
                i += 1
                yield Batch(min(i, self.steps), self.steps, 1.0, 50.0)
            yield Epoch({"epoch": 1, "epochs": 1, "lr": 0.01, "train_loss": 1.0, "train_accuracy": 50.0,
                         "test_loss": 1.0, "test_accuracy": 50.0 + seed, "seconds": 0.1}, None)
            yield End(False)
        finally:
            with self._lock:
                self.now -= 1

    def close(self):
        pass


class PlacedBackend(FakeBackend):
    """CPU and GPU places as a Ray cluster has them ("auto" takes a GPU place when there is one); while
    `down`, capacity() raises (a backend that cannot tell)."""

    def __init__(self, cpu: int, cuda: int, **kw):
        super().__init__(slots=cpu + cuda, **kw)
        self.places, self.down = {"cpu": cpu, "cuda": cuda}, False

    def capacity(self):
        if self.down:
            raise ConnectionError("the cluster did not answer")
        return dict(self.places)

    def kind_of(self, device):
        return "cuda" if device in ("cuda", "auto") and self.places["cuda"] else "cpu"


def make(tmp_path, **kw):
    backend = FakeBackend(**{k: kw.pop(k) for k in ("slots", "steps", "step") if k in kw})
    return TrainingService(tmp_path, backend=backend, **kw), backend


def first_state(gen, state, limit=200):
    for u in gen:
        if u.state == state:
            return u
        limit -= 1
        assert limit, f"never {state}"
    raise AssertionError(f"the stream ended before {state}")


def test_ordinal_and_words():
    assert [ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 101, 111)] == \
        ["1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "101st", "111th"]
    assert queued_message(1, 65, 1, 3).startswith("Queued: next in line, starts in about 1 min 05 s (1 running")
    assert "3rd in line" in queued_message(3, 5, 2, 4)
    assert "when the cluster has room" in queued_message(2, None, 0, 2)


def test_start_in_simulates_the_slots():
    assert start_in([], [], 1) == 0.0                      # a free slot: now
    assert start_in([10.0], [], 1) == 10.0                 # after the running one
    assert start_in([10.0], [5.0, 5.0], 1) == 20.0         # ... and the two ahead
    assert start_in([10.0, 4.0], [5.0], 2) == 9.0          # two slots: 4 + 5 frees before 10
    assert start_in([10.0], [], 2) == 0.0                  # one slot still free
    assert start_in([3.0, 1.0, 2.0], [], 2) == 2.0         # a cluster that shrank: more running than slots
    assert start_in([1.0], [1.0], 0) is None               # no capacity: unknown


def test_remaining_and_pace():
    assert remaining_seconds(10.0, 2.0) == 8.0                           # no pace of its own yet
    assert remaining_seconds(10.0, 20.0) == 0.5                          # late: still not done
    assert remaining_seconds(10.0, 4.0, own=3.0) == 3.0                  # its own clock, once it can tell
    assert remaining_seconds(10.0, 4.0, own=0.0) == 0.05
    p = Pace()
    assert p.expected(10.0) == 10.0
    p.add(1.0, 20.0, 10.0)
    p.add(3.0, 10.0, 10.0)
    assert p.factor == 1.5 and p.startup == 2.0 and p.expected(10.0) == 17.0


def test_status_html_of_a_queued_job():
    html = status_html("queued", "Queued: 2nd in line", eta=12.34, position=2)
    assert "data-state='queued'" in html and "data-position='2'" in html and "data-eta='12.3'" in html
    assert "data-position" not in status_html("running", "Epoch 1", 1, 10, 5.0)


def test_jobs_run_first_come_first_served(tmp_path):
    s, b = make(tmp_path, slots=1)
    finals = {}

    def go(seed):
        finals[seed] = list(s.stream({**VALUES, "seed": seed}, owner=f"s{seed}"))

    threads = []
    for seed in range(5):
        threads.append(threading.Thread(target=go, args=(seed,)))
        threads[-1].start()
        time.sleep(0.03)   # pressed in this order
    for t in threads:
        t.join(30)
    assert b.started == [0, 1, 2, 3, 4] and b.most == 1
    assert all(finals[k][-1].state == "finished" for k in finals)
    assert [u.state for u in finals[0]][0] == "loading"
    assert [u.state for u in finals[4]][0] == "queued" and finals[4][0].position >= 1
    assert not s.busy


def test_one_job_per_session_waiting_or_running(tmp_path):
    s, b = make(tmp_path, slots=1)
    b.hold = True
    a = s.stream({**VALUES, "seed": 1}, owner="alice")
    first_state(a, "running")
    again = list(s.stream({**VALUES, "seed": 2}, owner="alice"))
    assert [u.state for u in again] == ["refused"] and "already has a run training" in again[0].message
    bob = s.stream({**VALUES, "seed": 3}, owner="bob")
    assert next(bob).state == "queued"
    bob_again = list(s.stream({**VALUES, "seed": 4}, owner="bob"))
    assert "already has a run waiting in the queue" in bob_again[0].message
    b.release.set()
    assert list(a)[-1].state == "finished" and list(bob)[-1].state == "finished"
    assert list(s.stream({**VALUES, "seed": 5}, owner="alice"))[-1].state == "finished"   # done: may start again
    assert b.started == [1, 3, 5]


def test_stop_takes_a_waiting_job_out_and_the_others_move_up(tmp_path):
    s, b = make(tmp_path, slots=1)
    b.hold = True
    a = s.stream({**VALUES, "seed": 1}, owner="a")
    first_state(a, "running")
    w2, w3 = s.stream({**VALUES, "seed": 2}, owner="b"), s.stream({**VALUES, "seed": 3}, owner="c")
    assert next(w2).position == 1 and next(w3).position == 2
    assert s.stop("b") and not s.stop("nobody")
    out = list(w2)
    assert out[-1].state == "stopped" and "Taken out of the queue" in out[-1].message
    assert first_state(w3, "queued").position == 1           # moved up at once
    b.release.set()
    assert list(a)[-1].state == "finished" and list(w3)[-1].state == "finished"
    assert b.started == [1, 3]                                # the stopped one never ran


def test_a_closed_tab_leaves_the_queue(tmp_path):
    s, b = make(tmp_path, slots=1)
    b.hold = True
    a = s.stream({**VALUES, "seed": 1}, owner="a")
    first_state(a, "running")
    gone = s.stream({**VALUES, "seed": 2}, owner="tab")
    assert next(gone).state == "queued"
    gone.close()                        # what Gradio does when the page goes away
    assert s.status()["waiting"] == 0
    b.release.set()
    list(a)
    assert b.started == [1] and not s.busy
    # a closed tab also stops its running job
    b.release.clear()
    run = s.stream({**VALUES, "seed": 3}, owner="tab")
    first_state(run, "running")
    run.close()
    assert not s.busy and b.now == 0


def test_the_queue_is_bounded(tmp_path):
    s, b = make(tmp_path, slots=1, max_waiting=2)
    b.hold = True
    a = s.stream({**VALUES, "seed": 1}, owner="a")
    first_state(a, "running")
    waiting = [s.stream({**VALUES, "seed": k}, owner=f"w{k}") for k in (2, 3)]
    assert [next(w).state for w in waiting] == ["queued", "queued"]
    full = list(s.stream({**VALUES, "seed": 4}, owner="late"))
    assert [u.state for u in full] == ["refused"] and "the training queue is full (2 runs waiting)" in full[0].message
    assert s.status() == {**s.status(), "running": 1, "waiting": 2}
    waiting[0].close()
    late = s.stream({**VALUES, "seed": 5}, owner="late")
    assert next(late).state == "queued"                       # room again
    b.release.set()
    assert list(a)[-1].state == "finished" and list(waiting[1])[-1].state == "finished"
    assert list(late)[-1].state == "finished" and b.started == [1, 3, 5]


def test_positions_and_eta_move_with_the_queue(tmp_path):
    s, b = make(tmp_path, slots=1, steps=20, step=0.05)      # 1 s runs
    list(s.stream({**VALUES, "seed": 0}, owner="warmup"))     # one finished run: a measured pace
    gens = [s.stream({**VALUES, "seed": k}, owner=f"s{k}") for k in (1, 2, 3)]
    last = gens[-1]
    seen = []
    for g in gens[:-1]:
        threading.Thread(target=list, args=(g,), daemon=True).start()
    for u in last:
        if u.state == "queued":
            seen.append((time.monotonic(), u.position, u.eta_seconds))
        elif u.state in ("loading", "running"):
            start = time.monotonic()
            break
    list(last)
    positions = [p for _, p, _ in seen]
    assert positions[0] == 2 and positions == sorted(positions, reverse=True) and 1 in positions
    # the ETA counts down as the queue moves: each shown start time stays close to the real one
    assert all(eta is not None and eta >= 0 for _, _, eta in seen)
    first_t, _, first_eta = seen[0]
    assert first_eta > 0.5 and seen[-1][2] < first_eta
    assert abs((first_t + first_eta) - start) < 1.5, (first_eta, start - first_t)   # the fake runs take 1 s each


def test_many_sessions_pressing_start_at_once_lose_and_duplicate_nothing(tmp_path):
    n = 30
    s, b = make(tmp_path, slots=2, steps=2, step=0.005, max_waiting=n)
    gate = threading.Barrier(n)
    finals, errors = {}, []

    def go(k):
        try:
            gate.wait()
            finals[k] = list(s.stream({**VALUES, "seed": k}, owner=f"s{k}"))[-1]
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=go, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert sorted(finals) == list(range(n)) and all(u.state == "finished" for u in finals.values())
    assert sorted(b.started) == list(range(n)) and b.most == 2     # each exactly once, never more than 2 at once
    assert [finals[k].test_points[-1][2] for k in range(n)] == [50.0 + k for k in range(n)]   # each its own
    assert not s.busy and s.status()["running"] == 0


@pytest.mark.parametrize("values", [dict(epochs=0), dict(epochs=50, max_train_samples=60_000, batch_size=1)])
def test_bad_or_over_budget_values_never_enter_the_queue(tmp_path, values):
    s, b = make(tmp_path)
    out = list(s.stream({**VALUES, **values, "seed": 1}, owner="x"))
    assert [u.state for u in out] == ["refused"] and out[0].message.startswith("Not started")
    assert b.started == [] and not s.busy


def test_a_running_jobs_clock_times_its_batches_and_its_evaluation_apart():
    """A 2-epoch run of 100 batches an epoch at 0.05 s a batch, and 1 s to evaluate the test set: the
    time left counts the batches by their own pace and each evaluation for what it takes."""
    c = RunClock(epochs=2)
    c.on_loaded(0.0)
    c.on_batch(10, 100, 0.5)
    assert c.left(0.5, eval_seconds=1.0) is None                        # 10 batches: too early to tell
    c.on_batch(40, 100, 2.0)
    assert c.left(2.0, 1.0) == pytest.approx(60 * 0.05 + 1.0 + (100 * 0.05 + 1.0))   # 3 + 1, then 6
    assert c.left(2.3, 1.0) == pytest.approx(c.left(2.0, 1.0) - 0.3)   # the clock runs between reports
    c.on_batch(100, 100, 5.0)                                           # last batch: evaluating now
    assert c.left(5.4, 1.0) == pytest.approx(0.6 + 6.0)
    assert c.on_epoch(6.2) == pytest.approx(1.2)                        # that evaluation took 1.2 s
    c.on_batch(50, 100, 8.7)                                            # epoch 2: the same pace
    assert c.left(8.7, 1.2) == pytest.approx(50 * 0.05 + 1.2)
    c.on_batch(100, 100, 11.2)
    assert c.left(20.0, 1.2) == 0.0                                     # late evaluation: nothing left to expect


def cfg_on(device: str):
    return make_config(nullable=(), epochs=1, max_train_samples=1000, device=device)


def test_the_scheduler_starts_each_kind_first_come_first_served_within_its_places():
    s = Scheduler(max_waiting=10)
    places = {"cpu": 2, "cuda": 1}
    g1, g2, c1, g3, c2, c3 = (s.admit(cfg_on(d), o, 10.0, slots=3) for d, o in
                              [("cuda", "g1"), ("cuda", "g2"), ("cpu", "c1"), ("cuda", "g3"), ("cpu", "c2"),
                               ("cpu", "c3")])
    kind = str   # the device is the kind, as on a cluster
    assert s.start_ready(places, kind) == [g1, c1, c2]      # a waiting GPU job does not hold up the CPU ones
    assert (g1.kind, c1.kind, c2.kind) == ("cuda", "cpu", "cpu") and s.counts() == (3, 3)
    assert [s.wait_of(j, places, kind)[0] for j in (g2, g3, c3)] == [1, 2, 1]   # positions in their own line
    assert s.start_ready(places, kind) == []                  # every place taken
    s.finish(c1, finished=True)
    assert s.start_ready(places, kind) == [c3]                # a CPU place: the CPU job, never a GPU one
    s.finish(g1, finished=True)
    assert s.start_ready(places, kind) == [g2] and s.wait_of(g3, places, kind)[0] == 1
    assert s.start_ready({"cpu": 5, "cuda": 0}, kind) == []   # the GPU left: GPU jobs wait, none runs twice
    assert s.wait_of(g3, {"cpu": 5, "cuda": 0}, kind) == (1, None)   # no GPU place: no estimate
    assert s.start_ready({"cpu": 1, "cuda": 1}, kind) == []   # shrank below the running ones: nothing starts


def test_gpu_jobs_start_only_as_many_as_there_are_gpus_and_cpu_jobs_go_past_them(tmp_path):
    b = PlacedBackend(cpu=1, cuda=1)
    b.hold = True
    s = TrainingService(tmp_path, backend=b)
    g1 = s.stream({**VALUES, "device": "cuda", "seed": 1}, owner="g1")
    first_state(g1, "running")
    g2 = s.stream({**VALUES, "device": "auto", "seed": 2}, owner="g2")   # auto: a GPU job on a cluster with one
    assert next(g2).position == 1
    c3 = s.stream({**VALUES, "seed": 3}, owner="c3")                      # behind a waiting GPU job, it starts
    first_state(c3, "running")
    c4 = s.stream({**VALUES, "seed": 4}, owner="c4")
    assert next(c4).position == 1                                         # first of the CPU line
    assert b.started == [1, 3] and b.devices == {1: "cuda", 3: "cpu"}
    assert s.status() == {**s.status(), "running": 2, "waiting": 2, "slots": 2}
    b.release.set()
    assert [list(g)[-1].state for g in (g1, g2, c3, c4)] == ["finished"] * 4
    assert b.devices == {1: "cuda", 2: "cuda", 3: "cpu", 4: "cpu"}       # "auto" ran on the place it took
    assert sorted(b.started) == [1, 2, 3, 4] and b.most == 2 and not s.busy


def test_a_backend_that_cannot_tell_its_places_keeps_every_waiting_job(tmp_path):
    b = PlacedBackend(cpu=1, cuda=0)
    b.hold = True
    s = TrainingService(tmp_path, backend=b)
    a = s.stream({**VALUES, "seed": 1}, owner="a")
    first_state(a, "running")
    waiting = [s.stream({**VALUES, "seed": k}, owner=f"w{k}") for k in (2, 3)]
    assert [next(w).position for w in waiting] == [1, 2]
    b.down = True
    b.release.set()
    assert list(a)[-1].state == "finished"                   # its place is free, but nobody can tell
    assert s.status() == {**s.status(), "running": 0, "waiting": 2, "slots": 0}
    for w, position in zip(waiting, (1, 2), strict=True):    # the next heartbeat: still queued, same place
        u = next(w)
        assert (u.state, u.position, u.eta_seconds) == ("queued", position, None)
    assert b.started == [1]
    b.down = False                                           # it answers again: the line goes on in order
    assert [list(w)[-1].state for w in waiting] == ["finished", "finished"] and b.started == [1, 2, 3]
