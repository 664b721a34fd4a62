"""The app's handlers (mnist_web/handlers.py) called directly, without a server, and one property of
the running app they exist for: drawing for a long time does not grow the session."""
from __future__ import annotations

import gc
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
from gradio_client import Client

import demo
from mnist_core.insight import InsightService
from mnist_core.registry import SHIPPED_KEY, ModelRegistry
from mnist_core.runs import RunStore
from mnist_web import handlers
from mnist_web.components import Label
from mnist_web.handlers import KEEP, DrawHandlers, TrainHandlers
from mnist_web.training_service import TrainingService
from mnist_web.views import EMPTY_MESSAGE
from tests.nondigit_strokes import star
from tests.server import serve
from tests.test_strokes import SEVEN, payload


@pytest.fixture(scope="module")
def draw(shipped_checkpoint, synthetic_root, tmp_path_factory):
    registry = ModelRegistry(shipped_checkpoint, tmp_path_factory.mktemp("runs"))
    return DrawHandlers(registry, InsightService(str(synthetic_root)), shipped_checkpoint)


def test_a_star_is_not_a_digit_with_its_best_guess_small(draw):
    label, view = draw.classify_strokes(star(), SHIPPED_KEY)
    assert label["label"] == "Not a digit?" and label["not_a_digit"] is True and label["novelty"] > 0
    assert "<b>Not a digit?</b> <span class='muted'>best guess: " in view and "data-not-a-digit='true'" in view
    assert len(label["confidences"]) == 10                   # the guess is still there, under the headline
    data = Label().postprocess(label)                        # what /classify_strokes sends an API client
    assert data.not_a_digit is True and data.novelty == label["novelty"] and data.label == "Not a digit?"
    assert Label().postprocess({"label": "7", "confidences": {"7": 1.0}}).not_a_digit is None


def test_live_label_and_settled_explanation(draw):
    label, view = draw.classify_strokes(payload(SEVEN), SHIPPED_KEY)
    assert label["label"] == "7" and "It's a <b>7</b>" in view
    assert label["not_a_digit"] is False and label["novelty"] > 0 and "data-not-a-digit='false'" in view
    heat, caption, look = draw.explain_strokes(payload(SEVEN), SHIPPED_KEY, True)
    assert "<img" in heat and caption.startswith("Evidence for 7") and "lookalike" in look.lower()


def test_explanations_are_always_values_never_updates(draw):
    """An update followed by a value leaks a component per event in Gradio 6.31: the explanation
    outputs must always get values (off, bad input, nothing drawn)."""
    for args in ((payload(SEVEN), SHIPPED_KEY, False), ("{oops", SHIPPED_KEY, True), (payload([]), SHIPPED_KEY, True),
                 (payload(SEVEN), None, True)):
        out = draw.explain_strokes(*args)
        assert len(out) == 3 and all(isinstance(v, str) for v in out), args
    assert draw.explain_strokes("{oops", SHIPPED_KEY, True)[1] == "Cannot explain: the drawing is not valid JSON."


def test_nothing_drawn_and_no_model(draw):
    label, view = draw.classify_strokes(payload([]), SHIPPED_KEY)
    assert label == EMPTY_MESSAGE and "data-empty='true'" in view
    label, view = draw.classify(None, None)
    assert label == EMPTY_MESSAGE and "No model available" in view


def test_choose_model_refuses_unknown_keys_and_paths(draw):
    key, picker, msg = draw.choose_model("../../etc/passwd", SHIPPED_KEY)
    assert key == SHIPPED_KEY and "No model called" in msg and picker["value"] == SHIPPED_KEY
    key, picker, msg = draw.choose_model(SHIPPED_KEY, None)
    assert key == SHIPPED_KEY and picker == KEEP and msg.startswith("Using ")


def test_drawing_for_long_does_not_grow_the_session(shipped_checkpoint, synthetic_root, tmp_path):
    """What the page does per stroke (live labels, then the explanation when it settles), 30 times: the
    session keeps one object per component, not one more per event (the soak's RSS growth)."""
    app = demo.build_app(shipped_checkpoint, tmp_path / "runs", data_dir=str(synthetic_root), download=False,
                            train_enabled=False)
    with serve(app) as url:
        c = Client(url, verbose=False)

        def session_size():
            gc.collect()
            (state,) = app.blocks.state_holder.session_data.values()
            return len(state.blocks_config.blocks)

        def stroke():
            for part in (SEVEN[:1], SEVEN):
                assert c.predict(payload(part), api_name="/classify_strokes")[0]["label"]
            c.predict(payload(SEVEN), False, api_name="/explain_strokes")      # "Show why" off a moment
            assert c.predict(payload(SEVEN), True, api_name="/explain_strokes")[1].startswith("Evidence")

        stroke()
        first = session_size()
        for _ in range(30):
            stroke()
        assert session_size() == first


def test_train_handlers_show_compare_and_delete(shipped_checkpoint, tmp_path):
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
    assert msg.startswith("Deleted ") and not (runs_dir / "copy.pt").exists()
    assert model == SHIPPED_KEY and compare_pick["value"] == [] and run_pick["value"] is None
    *_, note = tr.show_run(None)            # the pick the delete cleared: "Deleted ..." stays to be read
    assert note == handlers.KEEP
    _, msg, *_ = tr.delete_run(SHIPPED_KEY, [], SHIPPED_KEY)
    assert msg.startswith("Not deleted") and shipped_checkpoint.is_file()


def test_stop_has_no_output_and_says_when_nothing_runs(shipped_checkpoint, tmp_path, monkeypatch):
    # No output at all: a gr.update() to the status now and the stream's value later would keep one more
    # component object in the session per click (Gradio 6.31; see test_drawing_for_long_does_not_grow_the_session).
    toasts = []
    monkeypatch.setattr(handlers.gr, "Info", lambda msg, *a, **k: toasts.append(msg))

    class Service:
        def __init__(self):
            self.asked = []

        def stop(self, owner):
            self.asked.append(owner)
            return owner == "running"

    service = Service()
    tr = TrainHandlers(service, RunStore(shipped_checkpoint, tmp_path), ModelRegistry(shipped_checkpoint, tmp_path),
                       tmp_path / "exports")
    assert tr.stop(SimpleNamespace(session_hash="running")) is None and toasts == []
    assert tr.stop(SimpleNamespace(session_hash="idle")) is None and toasts == ["No run of yours is going."]
    assert service.asked == ["running", "idle"]
