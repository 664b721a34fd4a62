"""The app's event handlers: what each button, canvas update and API call does.

Plain methods over the app's services (model registry, insight, run store, training service), returning
the values Gradio shows; demo.py builds the layout and wires these to events. `gr.update(...)` is
Gradio's "change only these properties" value (a plain dict), so the handlers stay testable without a
running server (tests/test_handlers.py).

Draw: /classify_strokes and /explain_strokes (the canvas), /classify and /explain (sketchpad dict or
image), /mistakes, choosing a model. Train: /train (a stream), /stop, run results, compare, delete.
"""
from __future__ import annotations

import contextlib
from pathlib import Path

import gradio as gr
import pandas as pd

from mnist_core.checkpoint import CheckpointError
from mnist_core.data import DataError
from mnist_core.export import ExportError
from mnist_core.insight import SORT_ORDERS, InsightService, inspect_drawing, inspect_image28
from mnist_core.preprocess import PreprocessError
from mnist_core.raster import prepare_strokes
from mnist_core.registry import BUILTIN_KEYS, SHIPPED_KEY, ModelRegistry
from mnist_core.runs import RunError, RunStore, differing_settings
from mnist_core.store import HOST
from mnist_core.strokes import StrokeError

from .insight_views import confusion_html, drawing_outputs, heat_html, mistake_items, mistakes_note, note_html
from .owners import client_address, owner_of
from .train_views import compare_charts, curve_charts, curves_value, per_class_rows, status_html
from .train_views import confusion_html as run_confusion_html
from .training_service import TrainingService, TrainUpdate
from .views import EMPTY_MESSAGE, HISTORY_COLUMNS, history_rows, label_value, message_html, prediction_html, short

# Leave this output as it is. Only for outputs that never get a plain value afterwards (or get
# gr.update(value=...)): in Gradio 6.31, gr.update() followed by a plain value for the same output
# keeps one more component object in the session each time (see explain_strokes).
KEEP = gr.update()


class DrawHandlers:
    """The Draw and Inspect tabs. Per-user state is only the chosen model's key."""

    def __init__(self, registry: ModelRegistry, insight: InsightService, checkpoint: Path) -> None:
        self.registry, self.insight, self.checkpoint = registry, insight, checkpoint

    def classify(self, sketch, model_key):
        """/classify: a drawing (image array, None, or the input's PreprocessError) -> label, view HTML."""
        if isinstance(sketch, PreprocessError):
            return EMPTY_MESSAGE, message_html(f"Cannot classify: {sketch}")
        if model_key is None:
            return EMPTY_MESSAGE, message_html(f"No model available. The shipped checkpoint {self.checkpoint} is "
                                               "missing: train one in the Train tab or with "
                                               "`python -m mnist_core train`.")
        try:
            predictor = self.registry.get(model_key)
            pred = predictor.predict(sketch)
        except (CheckpointError, PreprocessError) as exc:
            return EMPTY_MESSAGE, message_html(f"Cannot classify: {exc}")
        return label_value(pred), prediction_html(pred, predictor.description)

    def explain_drawing(self, drawing, model_key):
        """/explain: evidence heat map (an image), its caption, the look-alike training digits (HTML)."""
        if isinstance(drawing, PreprocessError) or model_key is None:
            return None, f"Cannot explain: {drawing if model_key else 'no model available'}", ""
        try:
            return drawing_outputs(inspect_drawing(self.insight, self.registry.get(model_key), drawing))
        except (CheckpointError, PreprocessError) as exc:
            return None, f"Cannot explain: {exc}", ""

    def classify_strokes(self, value, model_key):
        """/classify_strokes: strokes -> label, view; the same 28x28 image and numbers as the page's own
        live label (mnist_core/raster.py is the twin of web/mnistnet.js). The page calls it until the
        model's weights have arrived, and API clients at any time."""
        try:
            prepared = prepare_strokes(value)
        except StrokeError as exc:
            return EMPTY_MESSAGE, message_html(f"Cannot classify: {exc}.")
        return self.classify(prepared, model_key)

    def explain_strokes(self, value, model_key, show=True):
        """/explain_strokes, what the canvas calls when a drawing settles (pen lifted, undo, clear) and
        when "Show why" is switched: the evidence heat map (inline HTML), its caption, the look-alikes.

        Always values, never gr.update(): in Gradio 6.31 an output that gets gr.update() and later a
        value keeps one more component object in the session for good (tests/test_handlers.py). With
        "Show why" off the panel is hidden and gets its empty state, at no cost.
        """
        if not show:
            return heat_html(None), "", ""
        try:
            prepared = prepare_strokes(value)
        except StrokeError as exc:
            return heat_html(None), f"Cannot explain: {exc}.", ""
        heat, caption, look = self.explain_drawing(prepared, model_key)
        return heat_html(heat), caption, look

    def show_mistakes(self, model_key, order=SORT_ORDERS[0]):
        """/mistakes: the current model's misread test digits (gallery), the confusion heat map, a note."""
        try:
            predictor = self.registry.get(model_key)
            confusion = self.insight.confusion(predictor)   # the checkpoint's stored test metrics
            found = self.insight.mistakes(predictor, order)
        except (CheckpointError, KeyError) as exc:
            return [], "", note_html(f"No model to inspect: {exc}")
        except DataError as exc:
            return [], confusion_html(confusion) if confusion else "", note_html(f"No mistakes gallery: {exc}.")
        return (mistake_items(found), confusion_html(confusion, predictor.description),
                mistakes_note(found, self.insight.test_size))

    def explain_mistake(self, model_key, order, evt: gr.SelectData):
        try:
            predictor = self.registry.get(model_key)
            m = self.insight.mistakes(predictor, order)[evt.index]
        except (CheckpointError, DataError, IndexError, TypeError) as exc:
            return heat_html(None), f"Cannot explain: {exc}", ""
        image, caption, strip = drawing_outputs(inspect_image28(self.insight, predictor, m.image / 255.0))
        return heat_html(image), f"Test digit #{m.index}: {m.caption}. {caption}", strip

    def choose_model(self, new_key, current_key):
        """Any key the registry knows now (runs trained after the page loaded too), never a path."""
        if not isinstance(new_key, str) or new_key not in self.registry.paths():
            return (current_key, gr.update(value=current_key),
                    f"No model called {short(str(new_key))!r}: pick one from the list. Still using the previous one.")
        try:
            predictor = self.registry.get(new_key)
        except CheckpointError as exc:
            return (current_key, gr.update(value=current_key),
                    f"Could not load that model: {exc}. Still using the previous one.")
        return new_key, KEEP, f"Using {predictor.description}."

    def refresh_models(self, current_key):
        return gr.update(choices=self.registry.choices(), value=current_key)


def empty_class_bars() -> pd.DataFrame:
    return pd.DataFrame(columns=["digit", "accuracy"])


class TrainHandlers:
    """The Train tab: one training service shared by all users (a fair queue, one job per session), the
    saved runs."""

    def __init__(self, trainer: TrainingService, runs: RunStore, registry: ModelRegistry, export_dir: Path,
                 trusted_proxies: frozenset[str] = frozenset(), hide_others: bool = False) -> None:
        self.trainer, self.runs, self.registry, self.export_dir = trainer, runs, registry, export_dir
        self.trusted_proxies = trusted_proxies   # reverse proxies whose X-Forwarded-For is believed
        self.hide_others = hide_others           # list only the visitor's own runs (and the shipped model)

    def run_choices(self, request) -> list[tuple[str, str]]:
        """The runs lists of this visitor: the shipped model, then "yours: ...", then everyone else's
        (left out when the host hides them)."""
        return owned_choices(self.runs.runs(), owner_of(request).record, self.hide_others)

    def overlays(self, keys) -> list[tuple[str, list[dict]]]:
        out = []
        for key in keys or []:
            try:
                info = self.runs.get(key)
                out.append((info.name, info.history))
            except RunError:
                pass  # deleted meanwhile: nothing to draw
        return out

    @staticmethod
    def outputs(u: TrainUpdate, earlier):
        """One update of the stream -> status HTML, per-epoch table, loss and accuracy charts, curves JSON,
        the run's filters-and-guesses view (its snapshot dict; {} while nothing has trained yet)."""
        table = pd.DataFrame(history_rows(u.history), columns=HISTORY_COLUMNS)
        loss, acc = curve_charts(u.train_points, u.test_points, u.epochs, earlier)
        curves = curves_value(u.epochs, u.train_points, u.test_points)
        status = status_html(u.state, u.message, u.batch, u.batches, u.eta_seconds, u.images_per_s, u.progress,
                             u.position)
        return status, table, loss, acc, curves, u.look or {}

    def train(self, epochs, lr, momentum, batch_size, step_size, gamma, rotation, dropout, seed, samples, device,
              current_key, compare_keys, drawn=0.0, request: gr.Request = None):
        """/train: streams (status, table, loss, acc, model picker, curves, start, stop, run pick, compare,
        the run's view). drawn: the share of re-drawn twins (TrainConfig.drawn; 0.5 is the canvas model)."""
        values = dict(epochs=epochs, lr=lr, momentum=momentum, batch_size=batch_size, step_size=step_size,
                      gamma=gamma, rotation=rotation, dropout=dropout, seed=seed, max_train_samples=samples,
                      device=device or "auto", drawn=0.0 if drawn is None else drawn)
        owner = owner_of(request)
        stream = self.trainer.stream(values, owner=owner.id, client=client_address(request, self.trusted_proxies),
                                     persistent=owner.persistent)
        yield from self._show(stream, current_key, compare_keys, request)

    def resume(self, current_key, compare_keys, request: gr.Request):
        """At page load: the visitor's waiting or running job (a reload), shown again from where it is,
        as /train shows it; nothing when they have none."""
        shown = False
        for out in self._show(self.trainer.resume(owner_of(request).id), current_key, compare_keys, request):
            shown = True
            yield out
        if not shown:   # nothing to resume: leave the tab as it is (a generator must yield once)
            yield (KEEP,) * 11

    def _show(self, updates, current_key, compare_keys, request):
        earlier = self.overlays(compare_keys)
        digits_sent = False
        for u in updates:
            picker, results = KEEP, (KEEP, KEEP)
            going = u.state in ("queued", "loading", "running")
            if u.checkpoint:
                new_key, listed = f"runs/{u.checkpoint}", self.run_choices(request)
                picker = gr.update(choices=self.registry.choices(), value=current_key)
                compared = [k for k in (compare_keys or []) if k != new_key] + [new_key]
                results = (gr.update(choices=listed, value=new_key), gr.update(choices=listed, value=compared))
            status, table, loss, acc, curves, look = self.outputs(u, earlier)
            if digits_sent:    # the probe digits (~4-11 KB) go once: the page keeps them, and Gradio's
                look = {k: v for k, v in look.items() if k != "digits"}   # last message repeats every value
            digits_sent = digits_sent or "digits" in look
            yield (status, table, loss, acc, picker, curves, gr.update(interactive=not going),
                   gr.update(interactive=going), *results, look)

    def stop(self, request: gr.Request) -> None:
        """Stops the caller's run, or takes its waiting job out of the queue. No output: the run's own
        stream shows it ending (an output here would
        get gr.update() now and the stream's value later, which Gradio 6.31 pays for with one component
        object per click, see KEEP). Nothing to stop (an API call, a stale page): a toast says so."""
        owner = owner_of(request).id if request is not None else None
        if not self.trainer.stop(owner):
            gr.Info("No run of yours is going.")

    def on_unload(self, request: gr.Request):
        """A closed tab must not leave an orphan run burning the CPU, nor a job waiting for nobody: a
        session's job stops now, a token owner's after a grace period unless a reload takes it up."""
        self.trainer.release(owner_of(request).id)

    def show_run(self, key):
        """The chosen run's per-class accuracy, confusion matrix, checkpoint to download, delete allowed, note.
        No run chosen (the pick cleared, as a delete clears it): the note stays, so "Deleted ..." is read."""
        try:
            info = self.runs.get(key)
            path = self.runs.export(key, self.export_dir)
        except (RunError, OSError) as exc:
            return (empty_class_bars(), run_confusion_html(None), None, gr.update(interactive=False),
                    f"Cannot show that run: {exc}." if key else KEEP)
        bars = pd.DataFrame(per_class_rows(info.test_metrics), columns=["digit", "accuracy"])
        note = "" if info.deletable else "The shipped model can be downloaded but never deleted."
        return (bars, run_confusion_html(info.test_metrics, f"{info.label}: rows true digit, columns predicted"),
                str(path), gr.update(interactive=info.deletable), note)

    def clear_onnx(self):
        """The ONNX button while the chosen run's file is being made: never the previous run's file."""
        return gr.update(value=None, interactive=False)

    def onnx_file(self, key):
        """/export_onnx: the chosen run as an ONNX file (made once per run, about 4 s on 2 cores; then reused)."""
        if not key:
            return gr.update(value=None, interactive=False)
        try:
            path = self.runs.export_onnx(key, self.export_dir)
        except (RunError, ExportError, CheckpointError, OSError) as exc:
            gr.Warning(f"No ONNX file for that run: {exc}")
            return gr.update(value=None, interactive=False)
        return gr.update(value=str(path), interactive=True)

    def ask_delete(self, key):
        try:
            info = self.runs.get(key)
        except RunError as exc:
            return gr.update(visible=False), f"Cannot delete: {exc}."
        if not info.deletable:
            return gr.update(visible=False), "The shipped model cannot be deleted."
        return gr.update(visible=True), f"Delete **{info.name}** for good?"

    def delete_run(self, key, compared, current_key, request: gr.Request = None):
        """/delete_run: (confirm row, message, run pick, compare pick, model key, model picker). Only the
        run's owner may delete it (a run with no recorded owner: only the host); never the shipped model."""
        try:
            who = HOST if request is None else owner_of(request).record   # no request: a script, the host
            msg = f"Deleted {self.runs.delete(key, who)}."
        except (RunError, OSError) as exc:
            msg = f"Not deleted: {exc}"
        listed = self.run_choices(request)
        keys = {k for _, k in listed}
        model = current_key if current_key in keys else (SHIPPED_KEY if SHIPPED_KEY in keys else None)
        return (gr.update(visible=False), msg, gr.update(choices=listed, value=None),
                gr.update(choices=listed, value=[k for k in (compared or []) if k in keys]),
                model, gr.update(choices=self.registry.choices(), value=model))

    def compare(self, keys):
        """/compare: accuracy and loss charts of the chosen runs, and the settings in which they differ."""
        chosen = []
        for key in keys or []:
            with contextlib.suppress(RunError):     # deleted meanwhile: nothing to compare
                chosen.append(self.runs.get(key))
        acc, loss = compare_charts([(r.name, r.history) for r in chosen])
        columns, rows = differing_settings(chosen)
        return acc, loss, pd.DataFrame(rows, columns=columns)

    def refresh_runs(self, run_key, compared, request: gr.Request = None):
        """The runs lists as they are now for this visitor, and what the server's bound removed of theirs."""
        listed = self.run_choices(request)
        keys = {k for _, k in listed}
        notes = self.trainer.runner.notices(owner_of(request).record) if request is not None else []
        return (gr.update(choices=listed, value=run_key if run_key in keys else None),
                gr.update(choices=listed, value=[k for k in (compared or []) if k in keys]),
                " ".join(notes) if notes else KEEP)


def owned_choices(infos, record: str | None, hide_others: bool = False) -> list[tuple[str, str]]:
    """(label, key) pairs: the shipped models first, then the runs of `record`'s owner labelled as theirs,
    then everyone else's (none when hidden)."""
    shipped = [(i.label, i.key) for i in infos if i.key in BUILTIN_KEYS]
    mine = [(f"Yours: {i.label}", i.key) for i in infos if i.key not in BUILTIN_KEYS and record is not None
            and getattr(i, "owner", None) == record]
    others = [] if hide_others else [(i.label, i.key) for i in infos if i.key not in BUILTIN_KEYS
                                     and not (record is not None and getattr(i, "owner", None) == record)]
    return shipped + mine + others
