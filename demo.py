"""Gradio app: draw a digit and see what the 7,416-parameter CNN thinks; train it yourself.

    python demo.py [--host HOST] [--port PORT] [--checkpoint checkpoints/mnist_cnn.pt] [--data-dir DIR]
                   [--no-train] [--max-queue N] [--allowed-hosts a.example,b.example] [--share]

This file only wires the UI to mnist_core: preprocessing, models, training, the HTML views, the
drawing canvas (mnist_core/web/) and the server's bounds (mnist_core/webguard.py) live there.
Per-user state is the chosen model (gr.State); the only thing shared between users is the training
service (one run at a time) and the read-only cache of loaded models.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import gradio as gr
import pandas as pd
import torch
from gradio.components.image_editor import EditorData
from gradio.data_classes import FileData
from pydantic import Field
from starlette.middleware import Middleware

from mnist_core.checkpoint import CheckpointError
from mnist_core.cli import RUNS_DIR, SHIPPED_CHECKPOINT
from mnist_core.config import LIMITS, TrainConfig
from mnist_core.data import resolve_data_dir
from mnist_core.predict import Prediction
from mnist_core.preprocess import MAX_LAYERS, PreprocessError, check_image_file
from mnist_core.registry import SHIPPED_KEY, ModelRegistry
from mnist_core.strokes import StrokeError, strokes_to_image
from mnist_core.training_service import TrainingService, TrainUpdate
from mnist_core.views import (CSS, EMPTY_MESSAGE, HISTORY_COLUMNS, history_rows, label_value, message_html,
                              prediction_html, progress_html, short)
from mnist_core.webguard import LOOPBACK_NAMES, BoundedStream, Guard, hosting_address, is_loopback, parse_hosts

WEB = Path(__file__).resolve().parent / "mnist_core" / "web"
QUEUE_MAX = 64        # requests waiting past this get Gradio's "queue is full" instead of waiting forever
CLASSIFY_CONCURRENCY = 4
UPLOAD_LIMIT = 10_000_000   # bytes per uploaded file (Gradio answers 413 past it); drawings are ~10-100 KB
BODY_LIMIT = 1_000_000      # bytes per request body elsewhere: a stroke update is a few KB, at most ~300 KB
CACHE_MAX_AGE = 3600        # seconds: Gradio's cached files (uploads, outputs) older than this are deleted
EMPTY_VIEW = prediction_html(Prediction(None, None, True, "nothing drawn"))


class BoundedEditorData(EditorData):
    """The sketchpad payload with at most MAX_LAYERS layers: a longer list fails validation at once,
    with one short error, instead of one error (and one log line) per item."""
    layers: list[FileData] = Field(default_factory=list, max_length=MAX_LAYERS)


class ApiSketchpad(gr.Sketchpad):
    """The input of the `/classify` API (kept for gradio_client scripts that send a sketchpad dict or an
    image); hidden on the page, which draws on the stroke canvas instead.

    Bounded: the blob-upload route of gr.Sketchpad is switched off (accept_blobs is no server function
    here, so /component_server answers 404), more than MAX_LAYERS layers are refused, and every file is
    checked by its header before Gradio decodes it, so a small PNG claiming 13,000 x 13,000 pixels
    costs nothing. Unreadable files reach the handler as the app's own message.
    """

    data_model = BoundedEditorData

    def get_block_name(self) -> str:
        return "imageeditor"  # the same front-end component as gr.Sketchpad

    def accept_blobs(self, data):  # not decorated with @server: the route is off for this component
        raise NotImplementedError

    def preprocess(self, payload):
        try:
            if payload is not None:
                layers = payload.layers or []
                if len(layers) > MAX_LAYERS:
                    return PreprocessError(f"too many layers ({len(layers):,}; the limit is {MAX_LAYERS})")
                for f in [payload.background, payload.composite, *layers]:
                    if f is not None and getattr(f, "path", None):
                        check_image_file(f.path)
            return super().preprocess(payload)
        except PreprocessError as exc:
            return exc
        except Exception as exc:  # PIL cannot open it: not an image, empty, truncated
            return PreprocessError(f"the drawing could not be read as an image ({type(exc).__name__})")


class Label(gr.Label):
    """gr.Label that shows the given headline ("7?" when unsure) above the confidences, instead of
    always the top class: an unsure guess must not look confident."""

    def get_block_name(self) -> str:
        return "label"

    def postprocess(self, value):
        if isinstance(value, dict) and isinstance(value.get("confidences"), dict) and "label" in value:
            out = super().postprocess(value["confidences"])
            out.label = str(value["label"])
            return out
        return super().postprocess(value)


def sketch_canvas(**kw) -> gr.HTML:
    """The Draw tab's stroke canvas: a gr.HTML custom component whose value is the strokes as JSON."""
    read = lambda name: (WEB / name).read_text(encoding="utf-8")  # noqa: E731
    return gr.HTML(value="", html_template=read("sketch.html"), css_template=read("sketch.css"),
                   js_on_load=read("sketch.js"), apply_default_css=False, **kw)


def build_app(checkpoint: Path = SHIPPED_CHECKPOINT, runs_dir: Path = RUNS_DIR,
              data_dir: str | None = None, download: bool = True, train_enabled: bool = True,
              max_queue: int = QUEUE_MAX, cache_max_age: int = CACHE_MAX_AGE) -> gr.Blocks:
    registry = ModelRegistry(Path(checkpoint), Path(runs_dir))
    trainer = TrainingService(Path(runs_dir), data_dir=data_dir, download=download)
    first = registry.choices()
    default_key = SHIPPED_KEY if any(k == SHIPPED_KEY for _, k in first) else (first[0][1] if first else None)

    # ------------------------------------------------------------------------------ handlers
    def classify_strokes(value, model_key):
        try:
            image = strokes_to_image(value)
        except StrokeError as exc:
            return EMPTY_MESSAGE, message_html(f"Cannot classify: {exc}.")
        return classify(image, model_key)

    def classify(sketch, model_key):
        if isinstance(sketch, PreprocessError):
            return EMPTY_MESSAGE, message_html(f"Cannot classify: {sketch}")
        if model_key is None:
            return EMPTY_MESSAGE, message_html(f"No model available. The shipped checkpoint {checkpoint} is missing: "
                                               "train one in the Train tab or with `python -m mnist_core train`.")
        try:
            predictor = registry.get(model_key)
            pred = predictor.predict(sketch)
        except (CheckpointError, PreprocessError) as exc:
            return EMPTY_MESSAGE, message_html(f"Cannot classify: {exc}")
        return label_value(pred), prediction_html(pred, predictor.description)

    def choose_model(new_key, current_key):
        # Any key the registry knows now (runs trained after the page loaded too), never a path.
        if not isinstance(new_key, str) or new_key not in registry.paths():
            return (current_key, gr.update(value=current_key),
                    f"No model called {short(str(new_key))!r}: pick one from the list. Still using the previous one.")
        try:
            predictor = registry.get(new_key)
        except CheckpointError as exc:
            return current_key, gr.update(value=current_key), f"Could not load that model: {exc}. Still using the previous one."
        return new_key, gr.update(), f"Using {predictor.description}."

    def refresh_models(current_key):
        return gr.update(choices=registry.choices(), value=current_key)

    def train_outputs(u: TrainUpdate):
        table = pd.DataFrame(history_rows(u.history), columns=HISTORY_COLUMNS)
        long = pd.DataFrame([{"epoch": h["epoch"], "split": s, "loss": h[f"{s}_loss"], "accuracy": h[f"{s}_accuracy"]}
                             for h in u.history for s in ("train", "test")],
                            columns=["epoch", "split", "loss", "accuracy"])
        return progress_html(u.state, u.message, u.batch, u.batches, u.eta_seconds), table, long, long

    def train(epochs, lr, momentum, batch_size, step_size, gamma, rotation, dropout, seed, samples, device,
              current_key, request: gr.Request):
        values = dict(epochs=epochs, lr=lr, momentum=momentum, batch_size=batch_size, step_size=step_size,
                      gamma=gamma, rotation=rotation, dropout=dropout, seed=seed, max_train_samples=samples,
                      device=device or "auto")
        owner = request.session_hash if request is not None else ""
        for u in trainer.stream(values, owner=owner):
            picker = gr.update()
            if u.checkpoint:
                picker = gr.update(choices=registry.choices(), value=current_key)
            yield (*train_outputs(u), picker)

    def stop(request: gr.Request):
        owner = request.session_hash if request is not None else None
        return gr.update() if trainer.stop(owner) else progress_html("idle", "No run of yours is going.")

    def on_unload(request: gr.Request):
        # A closed tab must not leave an orphan run burning the CPU.
        trainer.stop(request.session_hash)

    # ------------------------------------------------------------------------------ Train tab
    def train_tab():
        """The Train tab and its events (called inside the Blocks below); left out entirely in read-only
        mode, so /train and /stop do not exist there."""
        defaults = TrainConfig()
        with gr.Tab("Train", id="train"):
            gr.Markdown("Train the network from scratch with the recipe below (defaults: the recipe that reaches "
                        "99.4%+ in 15 epochs, about 2.5 minutes on 2 CPU cores). Use fewer samples for a quick run.")
            with gr.Row():
                n_epochs = gr.Number(defaults.epochs, label=f"Epochs ({LIMITS['epochs'][0]}-{LIMITS['epochs'][1]})", precision=0, elem_id="epochs")
                n_samples = gr.Number(60_000, label="Training samples (1-60,000)", precision=0, elem_id="samples")
                n_batch = gr.Number(defaults.batch_size, label="Batch size (1-4,096)", precision=0, elem_id="batch")
                n_lr = gr.Number(defaults.lr, label="Learning rate", elem_id="lr")
                n_mom = gr.Number(defaults.momentum, label="Momentum", elem_id="momentum")
            with gr.Row():
                n_step = gr.Number(defaults.step_size, label="LR step (epochs)", precision=0, elem_id="step")
                n_gamma = gr.Number(defaults.gamma, label="LR gamma", elem_id="gamma")
                n_rot = gr.Number(defaults.rotation, label="Rotation (+/- degrees)", elem_id="rotation")
                n_drop = gr.Number(defaults.dropout, label="Dropout", elem_id="dropout")
                n_seed = gr.Number(defaults.seed, label="Seed", precision=0, elem_id="seed")
                device = gr.Dropdown(["auto", "cpu", "cuda"], value="auto", label="Device",
                                     visible=torch.cuda.is_available())
            with gr.Row():
                start_btn = gr.Button("Start training", variant="primary", elem_id="start")
                stop_btn = gr.Button("Stop", variant="stop", elem_id="stop")
            status = gr.HTML(progress_html("idle", "Ready."), elem_id="train-status")
            table = gr.Dataframe(pd.DataFrame(columns=HISTORY_COLUMNS), label="Per-epoch metrics",
                                 interactive=False, elem_id="history")
            with gr.Row():
                empty_long = pd.DataFrame(columns=["epoch", "split", "loss", "accuracy"])
                loss_plot = gr.LinePlot(empty_long, x="epoch", y="loss", color="split", title="Loss", elem_id="loss-plot")
                acc_plot = gr.LinePlot(empty_long, x="epoch", y="accuracy", color="split", title="Accuracy (%)", elem_id="acc-plot")

        start_btn.click(train, [n_epochs, n_lr, n_mom, n_batch, n_step, n_gamma, n_rot, n_drop, n_seed, n_samples,
                                device, model_key],
                        [status, table, loss_plot, acc_plot, picker], api_name="train",
                        concurrency_limit=2, show_progress="hidden")  # 2: a second Start is refused, not queued
        stop_btn.click(stop, None, [status], api_name="stop", show_progress="hidden", concurrency_limit=None)

    # ------------------------------------------------------------------------------ layout
    with gr.Blocks(title="MNIST: draw a digit, train it yourself", analytics_enabled=False,
                   delete_cache=(max(1, min(cache_max_age, 300)), cache_max_age)) as demo:
        gr.Markdown("# Draw a digit\nA 7,416-parameter CNN reads your drawing as you draw."
                    + (" Train your own in the **Train** tab and draw against it." if train_enabled else ""))
        model_key = gr.State(default_key)
        with gr.Tab("Draw", id="draw"):
            with gr.Row():
                with gr.Column(scale=1, min_width=340):
                    pad = sketch_canvas(elem_id="sketchpad")
                    api_pad = ApiSketchpad(visible=False, image_mode="RGBA", type="numpy", format="png",
                                           layers=False, transforms=(), elem_id="api-sketchpad")
                with gr.Column(scale=1):
                    label = Label(value=EMPTY_MESSAGE, num_top_classes=None, label="Prediction", elem_id="label")
                    view = gr.HTML(EMPTY_VIEW, elem_id="view")
                    picker = gr.Dropdown(choices=first, value=default_key, label="Model", elem_id="model-picker",
                                         interactive=True, allow_custom_value=True)
                    model_msg = gr.Markdown("" if default_key else
                                            f"**No model found** at `{checkpoint}`: train one in the Train tab.",
                                            elem_id="model-msg")
        # ------------------------------------------------------------------------------ events
        # The canvas sets its value (the strokes) at most every 100 ms while the pen moves and once when it
        # lifts; always_last: while one update runs, only the newest waiting one follows (no backlog).
        pad.change(classify_strokes, [pad, model_key], [label, view], api_name="classify_strokes",
                   trigger_mode="always_last", show_progress="hidden", concurrency_limit=CLASSIFY_CONCURRENCY,
                   concurrency_id="classify")
        api_pad.change(classify, [api_pad, model_key], [label, view], api_name="classify",
                       show_progress="hidden", concurrency_id="classify")
        picker.input(choose_model, [picker, model_key], [model_key, picker, model_msg], api_name="choose_model"
                     ).then(classify_strokes, [pad, model_key], [label, view], show_progress="hidden",
                            concurrency_id="classify", api_visibility="private")
        picker.focus(refresh_models, [model_key], [picker], show_progress="hidden", api_visibility="private")
        if train_enabled:
            train_tab()
            demo.unload(on_unload)
    demo.queue(max_size=max_queue)
    return demo


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="MNIST draw-and-train demo")
    p.add_argument("--host", default=None,
                   help="interface to listen on (default: $GRADIO_SERVER_NAME, else 127.0.0.1: localhost only)")
    p.add_argument("--port", type=int, default=None, help="port (default: $GRADIO_SERVER_PORT, else 7860)")
    p.add_argument("--checkpoint", default=str(SHIPPED_CHECKPOINT), help="the default model")
    p.add_argument("--runs-dir", default=str(RUNS_DIR), help="where the Train tab saves its checkpoints")
    p.add_argument("--data-dir", default=None, help="MNIST root (default: $MNIST_DATA_DIR, else ./data)")
    p.add_argument("--no-download", action="store_true", help="never download MNIST")
    p.add_argument("--no-train", action="store_true", default=env_flag("MNIST_NO_TRAIN"),
                   help="read-only: no Train tab, no /train or /stop API (also $MNIST_NO_TRAIN=1)")
    p.add_argument("--max-queue", type=int, default=int(os.environ.get("MNIST_MAX_QUEUE", QUEUE_MAX)),
                   help=f"requests that may wait; more get 'queue is full' (default {QUEUE_MAX}, $MNIST_MAX_QUEUE)")
    p.add_argument("--allowed-hosts", default=os.environ.get("MNIST_ALLOWED_HOSTS"),
                   help="comma-separated host names accepted in the Host header ('*' = any); default: "
                        "localhost names when listening on a loopback address, else any ($MNIST_ALLOWED_HOSTS)")
    p.add_argument("--cache-max-age", type=int, default=int(os.environ.get("MNIST_CACHE_MAX_AGE", CACHE_MAX_AGE)),
                   help=f"seconds before Gradio's cached files are deleted (default {CACHE_MAX_AGE})")
    p.add_argument("--share", action="store_true", help="create a public gradio.live link (off by default)")
    a = p.parse_args(argv)
    if a.max_queue < 1 or a.cache_max_age < 1:
        p.error("--max-queue and --cache-max-age must be at least 1")
    return a


def main(argv: list[str] | None = None) -> None:
    a = parse_args(argv)
    # One request must not be able to flood the log: every write is cut short, with a budget per minute.
    sys.stderr = BoundedStream(sys.stderr)
    sys.stdout = BoundedStream(sys.stdout)
    try:
        host, port = hosting_address(a.host, a.port)
    except ValueError as exc:
        raise SystemExit(f"demo.py: {exc}") from None
    demo = build_app(Path(a.checkpoint), Path(a.runs_dir), str(resolve_data_dir(a.data_dir)), not a.no_download,
                     train_enabled=not a.no_train, max_queue=a.max_queue, cache_max_age=a.cache_max_age)
    launch(demo, host=host, port=port, share=a.share,
           allowed_hosts=parse_hosts(a.allowed_hosts) if a.allowed_hosts else None)


def launch(demo: gr.Blocks, host: str | None = None, port: int | None = None, share: bool = False,
           allowed_hosts: list[str] | None = None, **kw):
    """Start the server with the app's CSS (Gradio 6 takes CSS at launch) and its bounds: Host check
    (localhost names when bound to loopback, else `allowed_hosts` if given), cross-site writes refused,
    request bodies and uploads capped, no analytics, no run history, no monitoring endpoint."""
    host, port = hosting_address(host, port)
    if allowed_hosts:
        hosts = [*allowed_hosts, *LOOPBACK_NAMES]
    else:
        hosts = list(LOOPBACK_NAMES) if is_loopback(host) and not share else None
    guard = Middleware(Guard, allowed_hosts=hosts, body_limit=BODY_LIMIT, upload_limit=UPLOAD_LIMIT + 100_000)
    kw.setdefault("max_file_size", UPLOAD_LIMIT)
    return demo.launch(server_name=host, server_port=port, share=share, css=CSS, run_history=False,
                       enable_monitoring=False, app_kwargs={"middleware": [guard]}, **kw)


if __name__ == "__main__":
    main()
