"""Gradio app: draw a digit and see what the 7,416-parameter CNN thinks; train it yourself.

    python demo.py [--host 127.0.0.1] [--port 7860] [--checkpoint checkpoints/mnist_cnn.pt] [--data-dir DIR]

This file only wires the UI to mnist_core: preprocessing, models, training and the HTML views live
there. Per-user state is the chosen model (gr.State); the only thing shared between users is the
training service (one run at a time) and the read-only cache of loaded models.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import gradio as gr
import pandas as pd
import torch

from mnist_core.checkpoint import CheckpointError
from mnist_core.cli import RUNS_DIR, SHIPPED_CHECKPOINT
from mnist_core.config import LIMITS, TrainConfig
from mnist_core.data import resolve_data_dir
from mnist_core.predict import Prediction
from mnist_core.preprocess import PreprocessError
from mnist_core.registry import SHIPPED_KEY, ModelRegistry
from mnist_core.training_service import TrainingService, TrainUpdate
from mnist_core.views import (CSS, EMPTY_MESSAGE, HISTORY_COLUMNS, SELECT_BRUSH_JS, history_rows, label_value,
                              message_html, prediction_html, progress_html)

CANVAS = 320          # px; the drawing is reduced to 20x20 anyway, and a small canvas uploads fast
BRUSH_RADIUS = 11     # px on a 320 canvas: strokes end up ~2.5 px wide at MNIST scale, like its digits
QUEUE_MAX = 64        # requests waiting past this get Gradio's "queue is full" instead of waiting forever
CLASSIFY_CONCURRENCY = 4
EMPTY_VIEW = prediction_html(Prediction(None, None, True, "nothing drawn"))


class Sketchpad(gr.Sketchpad):
    """gr.Sketchpad whose unreadable uploads reach the handler as an error (the app's own message)
    instead of failing inside Gradio's preprocessing with its generic error."""

    def get_block_name(self) -> str:
        return "imageeditor"  # the same front-end component as gr.Sketchpad

    def preprocess(self, payload):
        try:
            return super().preprocess(payload)
        except Exception as exc:  # PIL cannot open it: not an image, empty, truncated
            return PreprocessError(f"the drawing could not be read as an image ({type(exc).__name__})")


def build_app(checkpoint: Path = SHIPPED_CHECKPOINT, runs_dir: Path = RUNS_DIR,
              data_dir: str | None = None, download: bool = True) -> gr.Blocks:
    registry = ModelRegistry(Path(checkpoint), Path(runs_dir))
    trainer = TrainingService(Path(runs_dir), data_dir=data_dir, download=download)
    first = registry.choices()
    default_key = SHIPPED_KEY if any(k == SHIPPED_KEY for _, k in first) else (first[0][1] if first else None)

    # ------------------------------------------------------------------------------ handlers
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

    # ------------------------------------------------------------------------------ layout
    defaults = TrainConfig()
    with gr.Blocks(title="MNIST: draw a digit, train it yourself") as demo:
        gr.Markdown("# Draw a digit\nA 7,416-parameter CNN reads your drawing as you draw. "
                    "Train your own in the **Train** tab and draw against it.")
        model_key = gr.State(default_key)
        with gr.Tab("Draw", id="draw"):
            with gr.Row():
                with gr.Column(scale=1, min_width=340):
                    pad = Sketchpad(label="Draw here", canvas_size=(CANVAS, CANVAS), image_mode="RGBA",
                                    type="numpy", format="png", layers=False, transforms=(),
                                    brush=gr.Brush(default_size=BRUSH_RADIUS, colors=["#000000"], color_mode="fixed"),
                                    elem_id="sketchpad")
                with gr.Column(scale=1):
                    label = gr.Label(value=EMPTY_MESSAGE, num_top_classes=None, label="Prediction", elem_id="label")
                    view = gr.HTML(EMPTY_VIEW, elem_id="view")
                    picker = gr.Dropdown(choices=first, value=default_key, label="Model", elem_id="model-picker",
                                         interactive=True)
                    model_msg = gr.Markdown("" if default_key else
                                            f"**No model found** at `{checkpoint}`: train one in the Train tab.")
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

        # ------------------------------------------------------------------------------ events
        pad.change(classify, [pad, model_key], [label, view], api_name="classify", trigger_mode="always_last",
                   show_progress="hidden", concurrency_limit=CLASSIFY_CONCURRENCY, concurrency_id="classify")
        # "Clear canvas" fires clear (not always change) and drops the brush: show the empty state, re-arm.
        pad.clear(lambda: (EMPTY_MESSAGE, EMPTY_VIEW), None, [label, view], show_progress="hidden",
                  api_visibility="private").then(None, None, None, js=SELECT_BRUSH_JS)
        picker.input(choose_model, [picker, model_key], [model_key, picker, model_msg], api_name="choose_model"
                     ).then(classify, [pad, model_key], [label, view], show_progress="hidden",
                            concurrency_id="classify", api_visibility="private")
        picker.focus(refresh_models, [model_key], [picker], show_progress="hidden", api_visibility="private")
        start_btn.click(train, [n_epochs, n_lr, n_mom, n_batch, n_step, n_gamma, n_rot, n_drop, n_seed, n_samples,
                                device, model_key],
                        [status, table, loss_plot, acc_plot, picker], api_name="train",
                        concurrency_limit=2, show_progress="hidden")  # 2: a second Start is refused, not queued
        stop_btn.click(stop, None, [status], api_name="stop", show_progress="hidden", concurrency_limit=None)
        demo.unload(on_unload)
        demo.load(None, None, None, js=SELECT_BRUSH_JS)
    demo.queue(max_size=QUEUE_MAX)
    return demo


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="MNIST draw-and-train demo")
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: localhost only)")
    p.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    p.add_argument("--checkpoint", default=str(SHIPPED_CHECKPOINT), help="the default model")
    p.add_argument("--runs-dir", default=str(RUNS_DIR), help="where the Train tab saves its checkpoints")
    p.add_argument("--data-dir", default=None, help="MNIST root (default: $MNIST_DATA_DIR, else ./data)")
    p.add_argument("--no-download", action="store_true", help="never download MNIST")
    p.add_argument("--share", action="store_true", help="create a public gradio.live link (off by default)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    a = parse_args(argv)
    demo = build_app(Path(a.checkpoint), Path(a.runs_dir), str(resolve_data_dir(a.data_dir)), not a.no_download)
    launch(demo, host=a.host, port=a.port, share=a.share)


def launch(demo: gr.Blocks, host: str = "127.0.0.1", port: int | None = None, share: bool = False, **kw):
    """Start the server with the app's CSS (Gradio 6 takes CSS at launch). Localhost unless told otherwise."""
    return demo.launch(server_name=host, server_port=port, share=share, css=CSS, **kw)


if __name__ == "__main__":
    main()
