"""The model store (mnist_core/store.py, parts.py): one listing of the runs, everything derived from a model
held under a least-recently-used bound and dropped with the run, owners' deletes, the one build worker.

The memory test writes 60 runs directly (perturbed copies of the shipped checkpoint) and uses each as
the app does (picked: loaded + weights body; explained: look-alikes from the worker's feature index;
unit index; exported), on synthetic training digits large enough that keeping every model's features
would show in the process's RSS."""
from __future__ import annotations

import gc
import os
import threading
import time
import weakref
from pathlib import Path

import pytest
import torch

from benchmarks.common import rss_mb
from mnist_core import store as store_mod
from mnist_core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from mnist_core.data import write_mnist
from mnist_core.insight import InsightService, inspect_image28
from mnist_core.parts import BuildWorker
from mnist_core.store import HOST, SHIPPED_KEY, ModelStore, RunError
from mnist_core.units import UnitService
from mnist_web.weights import WeightsEndpoint
from tests.conftest import synthetic_digits

RUNS = 60
TRAIN_DIGITS = 10_000          # features: 10,000 x 16 float32 = 0.64 MB per model, 38 MB if all 60 were kept
BOUND_MODELS, BOUND_BYTES = 2, 2 * 2**20
ALLOWANCE_MB = 24              # allocator and interpreter noise over a whole run of 60


def write_runs(runs_dir: Path, source: Path, n: int, owner=lambda i: f"{i:02d}ab") -> list[str]:
    ck = load_checkpoint(source)
    gen = torch.Generator().manual_seed(1)
    for i in range(n):
        state = {k: v + 0.01 * torch.randn(v.shape, generator=gen) if v.is_floating_point() else v
                 for k, v in ck["state_dict"].items()}
        extra = {} if owner(i) is None else {"owner": owner(i)}
        save_checkpoint({**ck, "state_dict": state, **extra}, runs_dir / f"run-{i:02d}.pt")
        os.utime(runs_dir / f"run-{i:02d}.pt", ns=(10**18 + i * 10**9,) * 2)   # run-00 the oldest
    return [f"runs/run-{i:02d}.pt" for i in range(n)]


@pytest.fixture(scope="module")
def big_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synthetic_big")
    return write_mnist(root, synthetic_digits(TRAIN_DIGITS, 2), synthetic_digits(200, 3))


@pytest.fixture
def store(tmp_path, tiny_checkpoint):
    write_runs(tmp_path / "runs", tiny_checkpoint, 3, owner=lambda i: None if i == 2 else f"{i:02d}ab")
    return ModelStore(tiny_checkpoint, tmp_path / "runs", downloads=tmp_path / "downloads", max_models=2)


def wait_for(fn, seconds: float = 60):
    deadline = time.time() + seconds
    while (got := fn()) is None and time.time() < deadline:
        time.sleep(0.02)
    assert got is not None, "the background build did not finish"
    return got


def test_sixty_runs_stay_within_the_bound_and_deletes_leave_nothing(tmp_path, shipped_checkpoint, big_root,
                                                                      synthetic_root):
    keys = write_runs(tmp_path / "runs", shipped_checkpoint, RUNS)
    store = ModelStore(shipped_checkpoint, tmp_path / "runs", downloads=tmp_path / "downloads",
                       max_models=BOUND_MODELS, max_bytes=BOUND_BYTES, max_downloads=8)
    insight = InsightService(big_root, parts=store)
    units = UnitService(InsightService(synthetic_root, parts=store), pause=0.0)   # small: keeps the test short
    weights, digit = WeightsEndpoint(store), insight.data()[1].images[0].numpy() / 255.0
    models = []

    def use(key):
        predictor = store.get(key)
        models.append(weakref.ref(predictor))
        assert weights.body(key)[1].startswith(b"{")
        wait_for(lambda: insight.ready_index(predictor))
        assert len(inspect_image28(insight, predictor, digit).lookalikes) == 8
        assert wait_for(lambda: units.ready(predictor)).channels == 88
        assert store.export(key).name == key.removeprefix("runs/")
        count, held = store.held()
        assert count <= BOUND_MODELS and held <= BOUND_BYTES

    use(keys[0])
    gc.collect()
    first = rss_mb()
    for key in keys[1:]:
        use(key)
    gc.collect()
    growth = rss_mb() - first
    assert growth < BOUND_BYTES / 2**20 + ALLOWANCE_MB, f"RSS grew {growth:.0f} MB over 60 runs"
    assert sum(r() is not None for r in models) <= BOUND_MODELS + 1      # the evicted ones are gone
    assert len(list((tmp_path / "downloads").iterdir())) == 8

    for i, key in enumerate(keys):
        with pytest.raises(RunError, match="not yours"):
            store.delete(key, "someone-else")
        assert store.delete(key, f"{i:02d}ab") == key.removeprefix("runs/")
    gc.collect()
    assert store.held() == (0, 0) and [r for r in models if r() is not None] == []
    assert list((tmp_path / "runs").iterdir()) == [] and list((tmp_path / "downloads").iterdir()) == []
    assert store.worker.busy() == 0


def test_least_recently_used_goes_first(store):
    a, b = store.get("runs/run-00.pt"), store.get("runs/run-01.pt")
    assert store.get("runs/run-00.pt") is a                  # a used again: b is now the oldest
    store.get("runs/run-02.pt")
    assert store.held()[0] == 2 and store.get("runs/run-00.pt") is a and store.get("runs/run-01.pt") is not b


def test_the_byte_bound_counts_the_parts(tmp_path, tiny_checkpoint):
    write_runs(tmp_path / "runs", tiny_checkpoint, 3)
    store = ModelStore(tiny_checkpoint, tmp_path / "runs", max_bytes=3 * 2**20)
    ps = [store.get(f"runs/run-{i:02d}.pt") for i in range(3)]
    assert store.held()[0] == 3
    store.part(ps[2], "big", lambda p: bytes(2 * 2**20))
    store.part(ps[1], "big", lambda p: bytes(2 * 2**20))     # 4 MB: the least recently used go, run-00 first
    count, held = store.held()
    assert count == 1 and held <= 3 * 2**20 and store.cached_part(ps[1], "big") is not None
    assert store.get("runs/run-01.pt") is ps[1] and store.get("runs/run-02.pt") is not ps[2]


def test_delete_is_the_owners_only(store, tiny_checkpoint):
    assert store.info("runs/run-00.pt").owner == "00ab" and store.info("runs/run-02.pt").owner is None
    assert store.info(SHIPPED_KEY).owner is None
    for key, owner in [("runs/run-00.pt", "01ab"), ("runs/run-00.pt", None), ("runs/run-00.pt", ""),
                       ("runs/run-02.pt", None), ("runs/run-02.pt", "00ab")]:
        with pytest.raises(RunError, match="that run is not yours to delete"):
            store.delete(key, owner)
    for owner in ("00ab", HOST, None):
        with pytest.raises(RunError, match="shipped model cannot be deleted"):
            store.delete(SHIPPED_KEY, owner)
    with pytest.raises(RunError, match="choose a run"):
        store.delete("runs/../x.pt", HOST)
    assert len(store.runs()) == 4 and tiny_checkpoint.is_file()
    assert store.delete("runs/run-00.pt", "00ab") == "run-00.pt"
    assert store.delete("runs/run-02.pt", HOST) == "run-02.pt"           # an ownerless run: the host only
    assert [k for _, k in store.choices()] == [SHIPPED_KEY, "runs/run-01.pt"]


def test_sizes_for_the_pruner_and_forget(store, tmp_path):
    sizes = store.sizes()
    assert [(s.key, s.name, s.owner) for s in sizes] == [("runs/run-02.pt", "run-02.pt", None),
                                                        ("runs/run-01.pt", "run-01.pt", "01ab"),
                                                        ("runs/run-00.pt", "run-00.pt", "00ab")]
    assert [s.mtime for s in sizes] == [10**9 + 2, 10**9 + 1, 10**9]     # seconds, as write_runs set them
    assert all(s.size == (tmp_path / "runs" / s.name).stat().st_size > 0 for s in sizes)
    p = store.get("runs/run-01.pt")
    copy = store.export("runs/run-01.pt")
    ref = weakref.ref(p)
    del p
    (tmp_path / "runs" / "run-01.pt").unlink()              # the pruner removed it ...
    store.forget(["run-01.pt"])                              # ... and said so
    gc.collect()
    assert ref() is None and not copy.exists() and store.held()[0] == 0


def test_a_listing_forgets_runs_whose_file_is_gone(store, tmp_path):
    ref = weakref.ref(store.get("runs/run-00.pt"))
    store.info("runs/run-00.pt")
    (tmp_path / "runs" / "run-00.pt").unlink()               # removed without a word
    assert "runs/run-00.pt" not in store.paths()
    gc.collect()
    assert ref() is None and store.held() == (0, 0)
    with pytest.raises(CheckpointError, match="no checkpoint called"):
        store.get("runs/run-00.pt")


def test_a_file_disappearing_mid_listing_is_left_out(store, monkeypatch):
    real = os.scandir

    class Vanishing:
        def __init__(self, entry):
            self.entry, self.name, self.path = entry, entry.name, entry.path

        def stat(self):
            if self.name == "run-01.pt":
                raise FileNotFoundError(self.path)
            return self.entry.stat()

    monkeypatch.setattr(store_mod.os, "scandir", lambda p: [Vanishing(e) for e in real(p)])
    assert list(store.paths()) == [SHIPPED_KEY, "runs/run-02.pt", "runs/run-00.pt"]
    assert [s.name for s in store.sizes()] == ["run-02.pt", "run-00.pt"]


def test_downloads_folder_is_bounded(store, tmp_path):
    store.max_downloads = 2
    for key in ("runs/run-00.pt", "runs/run-01.pt", "runs/run-02.pt", SHIPPED_KEY):
        store.export(key)
    assert len(list((tmp_path / "downloads").iterdir())) == 2
    other = store.export("runs/run-00.pt", tmp_path / "mine")                # a caller's folder: not trimmed
    assert other.parent == tmp_path / "mine"


def test_the_worker_builds_one_at_a_time_and_is_capped():
    worker, gate, ran, running = BuildWorker(max_pending=2), threading.Event(), [], []

    def job(i):
        def run():
            running.append(i)
            assert len(running) == 1
            gate.wait(10)
            ran.append(i)
            running.remove(i)
        return run

    assert worker.submit((1, "a"), job(1))
    deadline = time.time() + 10
    while not running and time.time() < deadline:
        time.sleep(0.01)
    assert worker.submit((1, "a"), job(99))                 # the same build: not queued twice
    assert worker.submit((2, "a"), job(2)) and worker.submit((3, "a"), job(3))
    assert not worker.submit((4, "a"), job(4))              # two waiting: the cap
    worker.cancel(3)
    gate.set()
    while worker.busy() and time.time() < deadline:
        time.sleep(0.01)
    assert ran == [1, 2]
