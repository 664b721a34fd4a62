"""Whose runs are whose (issue 31): the owner of a request, the pruning policy, the jobs-per-address
bound, a reloaded page taking its job up again, the runs lists per visitor. No server: the pieces."""
from __future__ import annotations

import os
import threading
import time
from types import SimpleNamespace

import pytest

from mnist_core.checkpoint import load_checkpoint, save_checkpoint
from mnist_core.config import ConfigError, TrainConfig, TrainingBudget
from mnist_core.pruning import plan
from mnist_core.store import RunFile
from mnist_web import training_service
from mnist_web.backends import ThreadBackend
from mnist_web.handlers import owned_choices
from mnist_web.owners import Owner, client_address, owner_id, owner_of, record_of, token_of
from mnist_web.train_scheduler import Scheduler
from mnist_web.training_service import TrainingService

TOKEN_A, TOKEN_B = "A" * 32, "b_-9" * 8


def request(headers=None, session="s1", host="10.0.0.5"):
    return SimpleNamespace(headers=headers or {}, session_hash=session, client=SimpleNamespace(host=host))


# ------------------------------------------------------------------ the owner of a request
def test_a_token_in_the_header_or_the_cookie_makes_a_persistent_owner():
    by_header = owner_of(request({"x-mnist-owner": TOKEN_A}))
    by_cookie = owner_of(request({"cookie": f"theme=dark; mnist_owner={TOKEN_A}"}, session="other"))
    assert by_header == by_cookie == Owner(owner_id(TOKEN_A), True)
    assert TOKEN_A not in by_header.id and by_header.record not in (None, by_header.id)   # hashes, never the token
    assert owner_of(request({"x-mnist-owner": TOKEN_B})).id != by_header.id


@pytest.mark.parametrize("bad", ["short", "A" * 200, "with space " * 4, "A" * 31 + ";", ""])
def test_a_malformed_token_falls_back_to_the_session(bad):
    assert token_of({"x-mnist-owner": bad}) is None
    assert owner_of(request({"x-mnist-owner": bad}, session="sess")) == Owner("sess", False)
    assert token_of({"cookie": 'mnist_owner="unclosed'}) is None     # a broken cookie header: no token, no error


def test_no_request_is_the_host():
    assert owner_of(None) == Owner("", False) and Owner("", False).record is None and record_of("x") is not None


def test_the_forwarded_address_counts_only_from_a_trusted_proxy():
    fwd = {"x-forwarded-for": "1.2.3.4, 5.6.7.8"}
    assert client_address(request(fwd, host="10.0.0.5")) == "10.0.0.5"           # anyone may send the header
    assert client_address(request(fwd, host="127.0.0.1"), frozenset({"127.0.0.1"})) == "5.6.7.8"
    assert client_address(request({}, host="127.0.0.1"), frozenset({"127.0.0.1"})) == "127.0.0.1"


# ------------------------------------------------------------------ pruning
def run(name, owner, t, size=100):
    return RunFile(f"runs/{name}", name, owner, float(t), size)


def test_an_owner_keeps_their_newest_and_nobody_elses_go():
    runs = [run(f"a{i}", "A", i) for i in range(4)] + [run("b0", "B", 0), run("h0", None, -1)]
    gone = plan(runs, "A", per_owner=2, max_runs=100, max_bytes=10**9, keep=frozenset({"a3"}))
    assert [(r.run.name, r.why) for r in gone] == [("a1", "owner"), ("a0", "owner")]


def test_the_servers_bound_takes_from_whoever_has_the_most_never_an_only_run():
    runs = ([run(f"a{i}", "A", 10 + i) for i in range(3)] + [run(f"b{i}", "B", i) for i in range(2)]
            + [run("c0", "C", 0), run("d0", None, -5)])
    gone = plan(runs, "C", per_owner=5, max_runs=4, max_bytes=10**9, keep=frozenset({"c0"}))
    # 7 runs, room for 4: A has the most (3) -> a0; then A and B tie at 2 -> B's oldest is older -> b0; then a1
    assert [(r.run.name, r.why) for r in gone] == [("a0", "server"), ("b0", "server"), ("a1", "server")]
    tight = plan(runs, "C", per_owner=5, max_runs=1, max_bytes=10**9, keep=frozenset({"c0"}))
    left = {r.name for r in runs} - {r.run.name for r in tight}
    assert left == {"a2", "b1", "c0", "d0"}    # everyone keeps one: the bound gives way before an only run


def test_the_bound_in_bytes_counts_too():
    runs = [run("a0", "A", 0, 600), run("a1", "A", 1, 600), run("b0", "B", 2, 600)]
    assert [r.run.name for r in plan(runs, "B", 5, 100, max_bytes=1500, keep=frozenset({"b0"}))] == ["a0"]


# ------------------------------------------------------------------ jobs per address
def test_one_address_may_have_only_so_many_jobs():
    s = Scheduler(max_waiting=40, per_address=2)
    cfg = TrainConfig(epochs=1)
    s.admit(cfg, "o1", 1.0, 0, client="9.9.9.9")
    s.admit(cfg, "o2", 1.0, 0, client="9.9.9.9")
    with pytest.raises(ConfigError, match="your address already has 2 runs"):
        s.admit(cfg, "o3", 1.0, 0, client="9.9.9.9")
    s.admit(cfg, "o4", 1.0, 0, client="8.8.8.8")                 # another address is not held up
    assert Scheduler(max_waiting=40).admit(cfg, "o5", 1.0, 0, client="9.9.9.9")   # 0: no bound


# ------------------------------------------------------------------ a closed page, a reload
QUICK = {"epochs": 1, "max_train_samples": 1000, "batch_size": 10, "device": "cpu"}


@pytest.fixture
def service(tmp_path, synthetic_root, monkeypatch):
    monkeypatch.setattr(training_service, "ORPHAN_GRACE_SECONDS", 1.0)
    s = TrainingService(tmp_path, data_dir=str(synthetic_root), download=False, backend=ThreadBackend(1),
                        budget=TrainingBudget())
    yield s
    s.close()


def running_stream(service, owner, persistent, **values):
    gen = service.stream({**QUICK, "epochs": 30, "batch_size": 2, **values}, owner=owner, persistent=persistent)
    for u in gen:
        if u.state == "running" and u.batch:
            return gen, u
    raise AssertionError("the run never started")


def test_a_reload_takes_the_job_up_again_with_its_curves(service):
    first, seen = running_stream(service, "tok", persistent=True)
    first.close()                                       # the page went away
    time.sleep(0.3)
    assert service.scheduler.jobs("tok"), "a token owner's job waits for a reload"
    updates = service.resume("tok")
    u = next(updates)
    assert u.state == "running" and u.batch >= seen.batch > 0   # the run so far, not a blank one
    assert service.stop("tok")
    assert [x.state for x in updates][-1] == "stopped"


def test_an_orphaned_job_stops_after_the_grace_period(service):
    running_stream(service, "tok", persistent=True)[0].close()
    deadline = time.time() + 30
    while service.scheduler.jobs("tok") and time.time() < deadline:
        time.sleep(0.1)
    assert not service.scheduler.jobs("tok")


def test_a_session_owners_job_still_stops_when_its_page_goes(service):
    gen, _ = running_stream(service, "session-x", persistent=False)
    closer = threading.Thread(target=gen.close)
    closer.start()
    closer.join(40)
    assert not service.scheduler.jobs("session-x") and list(service.resume("session-x")) == []


# ------------------------------------------------------------------ the runs lists
def test_the_lists_show_yours_first_and_others_unless_hidden():
    info = lambda key, owner: SimpleNamespace(key=key, owner=owner, label=f"{key} (x)")   # noqa: E731
    infos = [info("shipped", None), info("runs/b.pt", "B"), info("runs/a.pt", "A"), info("runs/old.pt", None)]
    assert owned_choices(infos, "A") == [("shipped (x)", "shipped"), ("Yours: runs/a.pt (x)", "runs/a.pt"),
                                         ("runs/b.pt (x)", "runs/b.pt"), ("runs/old.pt (x)", "runs/old.pt")]
    assert owned_choices(infos, "A", hide_others=True) == [("shipped (x)", "shipped"),
                                                            ("Yours: runs/a.pt (x)", "runs/a.pt")]
    assert [k for _, k in owned_choices(infos, None)] == ["shipped", "runs/b.pt", "runs/a.pt", "runs/old.pt"]


def test_an_owner_is_told_when_the_servers_bound_removed_their_run(tmp_path, synthetic_root, shipped_checkpoint):
    ckpt = load_checkpoint(shipped_checkpoint)
    for i in range(2):                                   # A has two runs: the most
        save_checkpoint({**ckpt, "owner": record_of("A")}, tmp_path / f"a{i}.pt")
        os.utime(tmp_path / f"a{i}.pt", ns=(10**18 + i,) * 2)
    s = TrainingService(tmp_path, data_dir=str(synthetic_root), download=False, backend=ThreadBackend(1),
                        budget=TrainingBudget(max_runs=2))
    try:
        last = list(s.stream(QUICK, owner="B"))[-1]
    finally:
        s.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["a1.pt", last.checkpoint])
    assert "The server keeps at most 2 runs: removed a0.pt" in last.message
    told = s.runner.notices(record_of("A"))
    assert len(told) == 1 and "a0.pt was removed" in told[0] and s.runner.notices(record_of("A")) == []
    assert s.runner.notices(record_of("B")) == []
