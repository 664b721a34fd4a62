"""The app's handlers (mnist_core/handlers.py) called directly, without a server: what the canvas's
updates produce while the pen is down and when it lifts, and the Train tab's run handlers."""
from __future__ import annotations

from pathlib import Path

import pytest

from mnist_core.handlers import KEEP, DrawHandlers, TrainHandlers
from mnist_core.insight import InsightService
from mnist_core.registry import SHIPPED_KEY, ModelRegistry
from mnist_core.runs import RunStore
from mnist_core.training_service import TrainingService
from mnist_core.views import EMPTY_MESSAGE
from tests.test_strokes import SEVEN, payload


@pytest.fixture(scope="module")
def draw(shipped_checkpoint, synthetic_root, tmp_path_factory):
    registry = ModelRegistry(shipped_checkpoint, tmp_path_factory.mktemp("runs"))
    return DrawHandlers(registry, InsightService(str(synthetic_root)), shipped_checkpoint)


def updates(draw, value, show):
    return list(draw.draw_update(value, SHIPPED_KEY, show))


def test_while_the_pen_is_down_an_update_is_the_label_alone(draw):
    out = updates(draw, payload(SEVEN, drawing=True), show=True)
    assert len(out) == 1
    label, view, heat, caption, look = out[0]
    assert label["label"] == "7" and "It's a <b>7</b>" in view
    assert heat == caption == look == KEEP           # the explanation shown stays until the pen lifts


def test_when_the_pen_lifts_the_label_comes_first_then_the_explanation(draw):
    first, second = updates(draw, payload(SEVEN, drawing=False), show=True)
    assert first[0]["label"] == "7" and first[2:] == (KEEP, KEEP, KEEP)
    label, view, heat, caption, look = second
    assert label == first[0] and view == first[1]
    assert "<img" in heat and caption and "lookalike" in look.lower()


def test_show_why_off_never_explains(draw):
    for drawing in (True, False):
        assert len(updates(draw, payload(SEVEN, drawing=drawing), show=False)) == 1


def test_a_bad_update_says_why_in_every_output_it_touches(draw):
    out = updates(draw, payload(SEVEN, drawing="yes"), show=True)
    assert out[0][0] == EMPTY_MESSAGE and "Cannot classify: drawing must be true or false" in out[0][1]
    assert "Cannot explain" in out[-1][3]


def test_nothing_drawn_and_no_model(draw, tmp_path):
    (label, view, *_), = updates(draw, payload([]), show=False)
    assert label == EMPTY_MESSAGE and "data-empty='true'" in view
    label, view = draw.classify(None, None)
    assert label == EMPTY_MESSAGE and "No model available" in view


def test_choose_model_refuses_unknown_keys_and_paths(draw):
    key, picker, msg = draw.choose_model("../../etc/passwd", SHIPPED_KEY)
    assert key == SHIPPED_KEY and "No model called" in msg and picker["value"] == SHIPPED_KEY
    key, picker, msg = draw.choose_model(SHIPPED_KEY, None)
    assert key == SHIPPED_KEY and picker == KEEP and msg.startswith("Using ")


def test_train_handlers_show_compare_and_delete(shipped_checkpoint, tmp_path):
    import shutil
    runs_dir = tmp_path / "runs"
    runs_dir.mkdir()
    shutil.copy(shipped_checkpoint, runs_dir / "copy.pt")
    registry = ModelRegistry(shipped_checkpoint, runs_dir)
    tr = TrainHandlers(TrainingService(runs_dir, download=False), RunStore(shipped_checkpoint, runs_dir),
                       registry, tmp_path / "exports")
    bars, confusion, path, delete, note = tr.show_run(SHIPPED_KEY)
    assert len(bars) == 10 and Path(path).is_file() and delete["interactive"] is False and "never deleted" in note
    acc, loss, table = tr.compare([SHIPPED_KEY, "runs/copy.pt", "runs/gone.pt"])
    assert "<svg" in acc and "<svg" in loss and len(table) == 2     # the missing run is left out, not an error
    row, msg = tr.ask_delete(SHIPPED_KEY)
    assert row["visible"] is False and "cannot be deleted" in msg
    _, msg, run_pick, compare_pick, model, picker = tr.delete_run("runs/copy.pt", ["runs/copy.pt"], "runs/copy.pt")
    assert msg.startswith("Deleted ")
    assert not (runs_dir / "copy.pt").exists() and model == SHIPPED_KEY and compare_pick["value"] == []
    _, msg, *_ = tr.delete_run(SHIPPED_KEY, [], SHIPPED_KEY)
    assert msg.startswith("Not deleted") and shipped_checkpoint.is_file()
