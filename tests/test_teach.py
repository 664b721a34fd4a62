"""Teach it your handwriting (mnist_core/teach.py and the "teach" job of mnist_core/jobs.py): the drawings'
checks, the held-aside split, the fine-tune on a hand the shipped model misreads (real MNIST in CI), and the
job's events as the app's queue, worker processes and Ray backend receive them."""
from __future__ import annotations

import json
import math
import threading

import pytest
import torch

from mnist_core import jobs, teach
from mnist_core.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from mnist_core.data import load_mnist
from mnist_core.jobs import Batch, End, Epoch, Error, Loaded, checkpoint_bytes, checkpoint_from_bytes, run_job
from mnist_core.teach import MAX_DRAWINGS, TeachConfig, TeachError, split_held, validate_drawings
from tests import handwriting

QUICK = {"steps": 12, "renders": 40, "batch": 16}          # a teach in well under a second (plumbing tests)
RECORD_KEYS = {"epoch", "epochs", "lr", "train_loss", "train_accuracy", "test_loss", "test_accuracy", "seconds"}
REPORT_KEYS = {"held_before", "held_after", "mnist_before", "mnist_after", "taught", "held", "seconds"}


def some(per_digit=3, hand="plain", digits=range(10), seed=0) -> list[dict]:
    return handwriting.drawings(hand, per_digit, seed=seed, digits=digits)


# ------------------------------------------------------------------------------ the drawings' checks
def test_valid_drawings_come_back_canonical():
    raw = some(2, digits=[3, 7])
    text = [{"strokes": json.dumps({"strokes": d["strokes"]["strokes"]}), "label": str(d["label"]), "id": 1}
            for d in raw]
    out = validate_drawings(text)
    assert [d["label"] for d in out] == [3, 3, 7, 7]
    assert all(set(d) == {"strokes", "label"} for d in out)
    assert all(set(d["strokes"]) == {"width", "height", "brush", "strokes"} for d in out)
    assert out[0]["strokes"]["brush"] == 22.0                           # the canvas's default filled in
    assert validate_drawings(json.dumps(raw)) == validate_drawings(raw)  # the list as JSON text too


BAD = {
    "not a list": ({"strokes": {}, "label": 1}, "must be a list"),
    "empty": ([], "no drawings"),
    "too many": ("many", f"too many drawings ({MAX_DRAWINGS + 1}; the limit is {MAX_DRAWINGS})"),
    "not an object": (["x"], "drawing 1: must be an object with strokes and label"),
    "no label": ([{"strokes": {}}], "drawing 1: must be an object"),
    "label 10": ("label 10", "drawing 3: the label must be a digit 0-9"),
    "label true": ("label true", "drawing 3: the label must be a digit 0-9"),
    "malformed strokes": ("malformed", "drawing 3: each point must be [x, y]"),
    "nothing drawn": ("nothing", "drawing 3: nothing drawn"),
    "a dot": ("dot", "drawing 3: too small to be a digit"),
    "not json": ("{", "not valid JSON"),
}


def _bad(case):
    items, words = BAD[case]
    good = some(1, digits=[1, 2])
    broken = {"label 10": {"label": 10}, "label true": {"label": True},
              "malformed": {"strokes": {"strokes": [[[1, 2, 3]]]}}, "nothing": {"strokes": {"strokes": []}},
              "dot": {"strokes": {"strokes": [[[160, 160]]]}}}
    if items == "many":
        items = (some(1) * 51)[:MAX_DRAWINGS + 1]
    elif isinstance(items, str) and items in broken:
        items = good + [{**good[0], **broken[items]}]
    return items, words


@pytest.mark.parametrize("case", list(BAD))
def test_bad_drawings_are_refused_with_one_line_naming_the_first(case):
    items, words = _bad(case)
    with pytest.raises(TeachError) as e:
        validate_drawings(items)
    assert words in str(e.value) and "\n" not in str(e.value), str(e.value)


def test_too_many_points_in_all(monkeypatch):
    monkeypatch.setattr(teach, "MAX_TOTAL_POINTS", 100)
    with pytest.raises(TeachError, match="too many points in all"):
        validate_drawings(some(3))


# ------------------------------------------------------------------------------ held aside
def test_split_keeps_aside_at_least_one_of_each_digit_drawn_three_times():
    drawings = validate_drawings(some(3, digits=[0, 1]) + some(2, digits=[2]) + some(10, digits=[3]))
    taught, held = split_held(drawings, seed=0)
    count = lambda ds, k: sum(d["label"] == k for d in ds)              # noqa: E731
    assert [count(held, k) for k in range(4)] == [1, 1, 0, 2]
    assert [count(taught, k) for k in range(4)] == [2, 2, 2, 8]
    assert split_held(drawings, seed=0) == (taught, held)               # the same for a seed
    assert teach.held_indices(drawings, 0) == [i for i, d in enumerate(drawings) if d in held]


def test_too_few_drawings_are_refused():
    with pytest.raises(TeachError, match="too few drawings of 4, 7: draw each digit you teach at least 2 times"):
        split_held(validate_drawings(some(3, digits=[1]) + some(1, digits=[4, 7])))
    with pytest.raises(TeachError, match="no drawings"):
        split_held([])


def test_teach_settings_are_checked():
    assert TeachConfig.from_dict(TeachConfig().to_dict()) == TeachConfig()
    assert TeachConfig.from_dict(json.loads(json.dumps({"brush": [10, 20]}))).brush == (10.0, 20.0)
    for bad, words in [({"stepz": 3}, "unknown teach setting 'stepz'"), ({"steps": 0}, "steps must be an integer"),
                       ({"lr": float("nan")}, "lr must be a number"), ({"steps": 2.5}, "steps"),
                       ({"brush": [30, 10]}, "brush"), ({"mnist_fraction": 1.0}, "mnist_fraction"),
                       ({"freeze_bn": "yes"}, "freeze_bn")]:
        with pytest.raises(TeachError, match=words):
            TeachConfig.from_dict(bad)


# ------------------------------------------------------------------------------ the fine-tune, real MNIST
MISREAD = [("continental", 1), ("boxy", 6), ("boxy", 9)]    # read as 7, 5, 5 by the shipped model


def test_teaching_a_misread_hand_fixes_it_and_keeps_mnist(real_mnist, shipped_checkpoint, tmp_path):
    base = load_checkpoint(shipped_checkpoint)
    drawings = validate_drawings([d for hand, k in MISREAD for d in handwriting.drawings(hand, 10, 0, [k])])
    train, test = load_mnist(real_mnist, download=False)
    steps = []
    ckpt, report = teach.finetune(base, drawings, train, test, on_progress=lambda *a: steps.append(a),
                                  base_name="Shipped model")
    assert set(report) == REPORT_KEYS and (report["taught"], report["held"]) == (24, 6)
    assert report["held_before"] <= 50.0, report                     # mostly wrong before ...
    assert report["held_after"] == 100.0, report                     # ... right after
    assert report["mnist_before"] == pytest.approx(base["test_metrics"]["accuracy"])
    assert report["mnist_after"] >= report["mnist_before"] - 0.2, report
    assert steps[-1][:2] == (TeachConfig().steps, TeachConfig().steps) and len(steps) >= 10
    # fresh drawings of the same hand (never taught): now read right too
    fresh = teach.render_all(validate_drawings(
        [d for hand, k in MISREAD for d in handwriting.drawings(hand, 20, 99, [k])]))
    norm = base["normalization"]
    assert teach.accuracy(model_from_checkpoint(base), fresh, norm) < 50
    assert teach.accuracy(model_from_checkpoint(ckpt), fresh, norm) >= 95
    # the result is a run's checkpoint: saved, loaded, listed by the app's model store
    assert ckpt["teach"] == report and ckpt["base"] == "Shipped model" and ckpt["status"] == "complete"
    assert ckpt["test_metrics"]["accuracy"] == report["mnist_after"]
    assert "novelty" not in ckpt
    from mnist_core.store import ModelStore
    runs = tmp_path / "runs"
    save_checkpoint(ckpt, runs / "teach-1.pt")
    assert load_checkpoint(runs / "teach-1.pt")["teach"] == report
    keys = [key for _, key in ModelStore(shipped_checkpoint, runs).choices()]
    assert "runs/teach-1.pt" in keys


# ------------------------------------------------------------------------------ the job
def spec_of(checkpoint_path, data_root, drawings, **over) -> dict:
    base = load_checkpoint(checkpoint_path)
    return {"kind": "teach", "base": checkpoint_bytes(base), "base_name": "tiny", "drawings": drawings,
            "data_dir": str(data_root), "download": False, "threads": 1, "teach": dict(QUICK), **over}


def test_the_teach_job_emits_the_events_of_a_run_in_order(tiny_checkpoint, synthetic_root):
    events = []
    run_job(spec_of(tiny_checkpoint, synthetic_root, some(3)), events.append)
    kinds = [e.kind for e in events]
    assert kinds[0] == "loaded" and kinds[-2:] == ["epoch", "end"] and set(kinds[1:-2]) == {"batch"}
    loaded, end = events[0], events[-1]
    assert isinstance(loaded, Loaded) and loaded.n_train == 20 and loaded.threads == 1
    assert isinstance(end, End) and end.stopped is False
    batches = [e for e in events if isinstance(e, Batch)]
    assert [b.done for b in batches] == [10, 12] and all(b.total == 12 for b in batches)
    epoch = events[-2]
    assert isinstance(epoch, Epoch) and set(epoch.record) == RECORD_KEYS | REPORT_KEYS
    assert (epoch.record["epoch"], epoch.record["epochs"], epoch.record["held"]) == (1, 1, 10)
    ckpt = checkpoint_from_bytes(epoch.checkpoint)
    assert ckpt["base"] == "tiny" and ckpt["history"] == [epoch.record] and ckpt["teach_config"]["steps"] == 12
    assert ckpt["test_metrics"]["accuracy"] == epoch.record["test_accuracy"] == epoch.record["mnist_after"]
    model_from_checkpoint(ckpt)                                     # loads as this network


def test_the_teach_job_runs_through_job_events_and_drops_novelty(tiny_checkpoint, synthetic_root):
    base = load_checkpoint(tiny_checkpoint)
    spec = spec_of(tiny_checkpoint, synthetic_root, some(2), base=checkpoint_bytes({**base, "novelty": {"x": 1}}))
    events = list(jobs.job_events(spec))
    assert [e.kind for e in events][-2:] == ["epoch", "end"]
    assert "novelty" not in checkpoint_from_bytes(events[-2].checkpoint)


def test_a_stopped_teach_ends_without_a_model(tiny_checkpoint, synthetic_root):
    stop = threading.Event()
    events = []

    def emit(e):
        events.append(e)
        if isinstance(e, Batch):
            stop.set()
    run_job(spec_of(tiny_checkpoint, synthetic_root, some(2), teach={**QUICK, "steps": 40}), emit, stop)
    assert [e.kind for e in events] == ["loaded", "batch", "end"] and events[-1].stopped is True


@pytest.mark.parametrize("over, words", [
    ({"drawings": "bad"}, "drawings are not valid JSON"),
    ({"drawings": some(2)[:3]}, "too few drawings of 1"),
    ({"drawings": [{"strokes": {"strokes": [[[1, "x"]]]}, "label": 1}]}, "drawing 1: a coordinate must be a number"),
    ({"base": b"not a checkpoint"}, "the base model is not a readable checkpoint"),
    ({"base": None}, "the teach job has no base model"),
    ({"teach": {"steps": -1}}, "teach setting steps"),
    ({"data_dir": "/nonexistent"}, "MNIST is not in"),
])
def test_a_bad_teach_job_is_one_error_line(tiny_checkpoint, synthetic_root, over, words):
    events = []
    run_job({**spec_of(tiny_checkpoint, synthetic_root, some(2)), **over}, events.append)
    assert len(events) == 1 and isinstance(events[0], Error), events
    assert words in events[0].reason and "\n" not in events[0].reason, events[0].reason


def test_a_base_that_is_not_this_network_is_refused(tiny_checkpoint, synthetic_root):
    base = load_checkpoint(tiny_checkpoint)
    wrong = {**base, "state_dict": {k: torch.zeros(1) for k in base["state_dict"]}}
    events = []
    run_job(spec_of(tiny_checkpoint, synthetic_root, some(2), base=checkpoint_bytes(wrong)), events.append)
    assert [e.kind for e in events] == ["error"] and "base model cannot be loaded" in events[0].reason


def test_no_held_aside_reports_nan_not_a_number_it_made_up(tiny_checkpoint, synthetic_root):
    train, test = load_mnist(synthetic_root, download=False)
    _, report = teach.finetune(load_checkpoint(tiny_checkpoint), validate_drawings(some(2)), train, test,
                               TeachConfig(**QUICK))
    assert report["held"] == 0 and math.isnan(report["held_before"]) and math.isnan(report["held_after"])
