"""Earlier runs (mnist_core.runs) and the Train tab's pure views (mnist_web.train_views)."""
from __future__ import annotations

import os
import time

import pytest
import torch

from mnist_core.checkpoint import load_checkpoint, save_checkpoint
from mnist_core.runs import HOST, SHIPPED_KEY, RunError, RunStore, differing_settings, prune, run_files
from mnist_core.text import plural
from mnist_web.train_views import (
    MAX_TRAIN_POINTS,
    MIN_WINDOW,
    Curves,
    confusion_html,
    curves_value,
    per_class_rows,
    status_html,
    window_for,
)


# ------------------------------------------------------------------------------ live curves
def feed_epoch(curves: Curves, epoch: int, losses: list[float], accs: list[float], every: int = 10):
    """Feed per-batch losses/accuracies as the Trainer reports them: cumulative means every `every` batches."""
    total, bs = len(losses), curves.batch_size
    added = 0
    for done in range(1, total + 1):
        if done % every == 0 or done == total:
            seen = curves.seen(done)
            sizes = [min(bs, curves.samples - i * bs) for i in range(done)]
            # the first `done` batches only: losses and accs hold the whole epoch's
            mean_loss = sum(loss * n for loss, n in zip(losses, sizes, strict=False)) / seen
            mean_acc = sum(a * n for a, n in zip(accs, sizes, strict=False)) / seen
            added += curves.on_batch(epoch, done, total, mean_loss, mean_acc)
    return added


def test_train_points_are_window_means_not_running_means():
    c = Curves(epochs=2, samples=100 * 64 - 10, batch_size=64)   # 100 batches, the last one smaller
    assert c.batches == 100 and c.window == MIN_WINDOW
    losses = [1.0] * 30 + [0.5] * 30 + [0.25] * 40
    accs = [50.0] * 30 + [80.0] * 30 + [90.0] * 40
    assert feed_epoch(c, 1, losses, accs) == 4       # at batches 30, 60, 90 and the epoch's end (100)
    xs = [p[0] for p in c.train]
    assert xs == [0.3, 0.6, 0.9, 1.0]                # x = epoch - 1 + batch / batches
    assert [round(p[1], 6) for p in c.train] == [1.0, 0.5, 0.25, 0.25]   # windows, not the running mean
    assert [round(p[2], 6) for p in c.train] == [50.0, 80.0, 90.0, 90.0]
    c.on_epoch({"epoch": 1, "test_loss": 0.3, "test_accuracy": 91.0})
    feed_epoch(c, 2, [0.1] * 100, [99.0] * 100)
    assert [p[0] for p in c.train[4:]] == [1.3, 1.6, 1.9, 2.0]
    assert all(abs(p[1] - 0.1) < 1e-9 for p in c.train[4:])  # the new epoch starts a fresh window
    assert c.test == [(1.0, 0.3, 91.0)]


def test_point_count_is_capped_for_long_runs():
    assert window_for(15, 938) == 70            # the recipe: 14 points per epoch, one every ~0.6 s on 2 cores
    assert window_for(2, 938) == MIN_WINDOW
    for epochs, batches in [(50, 60_000), (30, 938), (1, 60_000), (50, 1)]:
        w = window_for(epochs, batches)
        assert w % 10 == 0 and w >= MIN_WINDOW
        assert epochs * (batches // w + 1) <= MAX_TRAIN_POINTS + epochs
    c = Curves(epochs=3, samples=3000, batch_size=1)
    for e in (1, 2, 3):
        feed_epoch(c, e, [0.5] * 3000, [90.0] * 3000)
        c.on_epoch({"epoch": e, "test_loss": 0.4, "test_accuracy": 90.0})
    assert 3 <= len(c.train) <= MAX_TRAIN_POINTS


def test_curves_value_is_rounded_json():
    v = curves_value(2, [(0.3, 0.123456, 91.23456)], [(1.0, 0.1, 95.0)])
    assert v == {"epochs": 2, "train": [[0.3, 0.1235, 91.23]], "test": [[1.0, 0.1, 95.0]]}


def test_status_line():
    h = status_html("running", "Epoch 2 of 3", 469, 938, eta=75.4, images_per_s=6543.2, progress=0.5)
    assert "data-state='running'" in h and "batch 469 of 938" in h and "6,543 images/s" in h
    assert "about 1 min 15 s left" in h and "width:50.0%" in h
    assert "left" not in status_html("finished", "Finished", 938, 938, eta=3.0)
    assert "&lt;b&gt;" in status_html("failed", "<b>")
    assert plural(1, "epoch") == "1 epoch" and plural(2, "epoch") == "2 epochs"


def test_per_class_and_confusion_views():
    metrics = {"per_class_accuracy": [100.0, 50.0, float("nan")], "confusion_matrix": [[5, 0, 0], [1, 1, 0], [0, 0, 0]]}
    assert per_class_rows(metrics) == [["0", 100.0], ["1", 50.0]]
    h = confusion_html(metrics, "run x")
    assert h.count("<tr>") == 4 and "true 1, predicted 0: 1" in h and "data-empty='false'" in h
    assert "rgba(220,38,38,0.90)" in h                   # the worst confusion of a row is the darkest red
    assert "data-empty='true'" in confusion_html(None) and per_class_rows(None) == []


# ------------------------------------------------------------------------------ runs on disk
@pytest.fixture
def store(tmp_path, tiny_checkpoint):
    runs = tmp_path / "runs"
    ck = load_checkpoint(tiny_checkpoint)
    for i, (name, lr) in enumerate([("run-a.pt", 0.02), ("run-b.pt", 0.05)]):
        save_checkpoint({**ck, "config": {**ck["config"], "lr": lr}}, runs / name)
        os.utime(runs / name, ns=(time.time_ns() - (10 - i) * 10**9,) * 2)   # run-b is the newer one
    (runs / ".run-c.pt.123.tmp").write_bytes(b"half-written")
    (runs / "junk.pt").write_bytes(b"not a checkpoint")
    os.utime(runs / "junk.pt", ns=(time.time_ns() - 100 * 10**9,) * 2)
    return RunStore(tiny_checkpoint, runs)


def test_lists_shipped_and_runs_with_histories(store):
    keys = [k for _, k in store.choices()]
    assert keys == [SHIPPED_KEY, "runs/run-b.pt", "runs/run-a.pt"]   # newest first; unreadable left out
    b = store.get("runs/run-b.pt")
    assert b.config["lr"] == 0.05 and len(b.history) == 1 and b.test_metrics["confusion_matrix"]
    assert not store.get(SHIPPED_KEY).deletable and b.deletable


def test_settings_that_differ(store):
    a, b, s = store.get("runs/run-a.pt"), store.get("runs/run-b.pt"), store.get(SHIPPED_KEY)
    cols, rows = differing_settings([a, b])
    assert cols == ["run", "test acc %", "lr"] and [r[2] for r in rows] == [0.02, 0.05]
    assert differing_settings([a, s])[0] == ["run", "test acc %"]   # same settings: nothing else shown
    import dataclasses
    old = dataclasses.replace(a, config={k: v for k, v in a.config.items() if k != "max_train_samples"})
    full = dataclasses.replace(a, config={**a.config, "max_train_samples": 60_000})
    assert differing_settings([old, full])[0] == ["run", "test acc %"]   # None and 60000 are both "all"


def test_delete_only_listed_runs_never_the_shipped_model(store, tiny_checkpoint):
    before = tiny_checkpoint.read_bytes()
    with pytest.raises(RunError, match="shipped model cannot be deleted"):
        store.delete(SHIPPED_KEY, HOST)
    for bad in ["runs/../../x.pt", "runs/missing.pt", str(tiny_checkpoint), None, 3, "runs/.run-c.pt.123.tmp"]:
        with pytest.raises(RunError):
            store.delete(bad, HOST)
    assert store.delete("runs/run-a.pt", HOST) == "run-a.pt"
    assert not (store.runs_dir / "run-a.pt").exists() and tiny_checkpoint.read_bytes() == before
    assert [k for _, k in store.choices()] == [SHIPPED_KEY, "runs/run-b.pt"]
    with pytest.raises(RunError, match="no readable run"):
        store.get("runs/run-a.pt")


def test_export_is_a_byte_copy_with_the_runs_name(store):
    out = store.export("runs/run-b.pt")
    assert out.name == "run-b.pt" and out.read_bytes() == (store.runs_dir / "run-b.pt").read_bytes()
    assert out.parent != store.runs_dir
    assert store.export(SHIPPED_KEY).name == "mnist_cnn.pt"
    again = store.export("runs/run-a.pt", out.parent)
    assert again.parent == out.parent    # the store's downloads folder: one for all copies
    assert sorted(p.name for p in out.parent.iterdir()) == ["mnist_cnn.pt", "run-a.pt", "run-b.pt"]
    assert torch.load(out, weights_only=True)["format_version"] == 1


def test_prune_keeps_the_newest(tmp_path):
    for i in range(5):
        (tmp_path / f"r{i}.pt").write_bytes(b"x")
        os.utime(tmp_path / f"r{i}.pt", ns=(10**18 + i * 10**9,) * 2)
    (tmp_path / "notes.txt").write_text("kept")
    assert sorted(prune(tmp_path, 2)) == ["r0.pt", "r1.pt", "r2.pt"]
    assert [p.name for p in run_files(tmp_path)] == ["r4.pt", "r3.pt"] and (tmp_path / "notes.txt").exists()
    assert prune(tmp_path / "absent", 2) == []


def test_run_descriptions_count_epochs_properly(store):
    from mnist_core.checkpoint import describe
    assert store.get("runs/run-a.pt").description.endswith(", 1 epoch")
    ck = {"test_metrics": {"accuracy": 98.9}, "epochs_completed": 3, "config": {"epochs": 10}, "status": "stopped"}
    assert describe(ck) == "98.90%, stopped after 3/10 epochs"
    assert describe({}) == "accuracy unknown"


def test_charts_have_whole_epoch_ticks_and_stay_small():
    import json
    import re

    from mnist_web.train_views import compare_charts, curve_charts, epoch_ticks
    assert epoch_ticks(2) == [0, 1, 2] and epoch_ticks(15) == list(range(0, 17, 2)) and epoch_ticks(0.3) == [0, 1]
    assert (all(t == int(t) for n in range(1, 51) for t in epoch_ticks(n))
            and all(epoch_ticks(n)[-1] >= n for n in range(1, 51)))
    # the largest live chart: a capped run of 15 epochs and three earlier runs overlaid
    train = [(round(15 * (i + 1) / MAX_TRAIN_POINTS, 4), 0.5 - i / 1000, 90 + i / 50) for i in range(MAX_TRAIN_POINTS)]
    test = [(float(e), 0.05, 99.0) for e in range(1, 16)]
    hist = [{"epoch": e, "test_loss": 0.05, "test_accuracy": 99.0} for e in range(1, 16)]
    loss, acc = curve_charts(train, test, 15, [(f"run-20261126-1015{i}0-99.40", hist) for i in range(3)])
    assert len(json.dumps([loss, acc])) < 14_000          # both charts of one update, as sent (JSON)
    assert re.findall(r"class='xtick'[^>]*>([^<]*)<", loss) == [str(t) for t in range(0, 17, 2)]
    points = dict(re.findall(r"data-series='([^']*)' data-points='(\d+)'", acc))
    assert points == {"test: run-20261126-101500-99.40": "15", "test: run-20261126-101510-99.40": "15",
                      "test: run-20261126-101520-99.40": "15", "train (this run)": str(MAX_TRAIN_POINTS),
                      "test (this run)": "15"}
    cacc, closs = compare_charts([("a", hist), ("b", hist[:3])])
    assert "data-series-count='2'" in cacc and re.findall(r"class='xtick'[^>]*>([^<]*)<", closs)[-1] == "16"
    empty_loss, _ = curve_charts([], [], 15)
    assert "data-points='0'" in empty_loss
