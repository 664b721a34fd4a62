"""Gradio app: draw a digit and see what the 7,416-parameter CNN thinks; train it yourself.

    python demo.py [--host HOST] [--port PORT] [--checkpoint checkpoints/mnist_cnn.pt] [--data-dir DIR]
                   [--no-train] [--max-queue N] [--allowed-hosts a.example,b.example] [--share]
                   [--train-slots N] [--train-threads N] [--train-queue N] [--ray ADDRESS]

This file only lays out the UI and wires its events to the app package mnist_web (which uses the ML
library mnist_core): what each event does is in mnist_web/handlers.py, the app's components in
mnist_web/components.py (the front ends in mnist_web/web/), the command line and launch() in
mnist_web/serving.py, the server's bounds in mnist_web/webguard.py.
Per-user state is the chosen model (gr.State); the only thing shared between users is the training
service (a fair queue, runs in worker processes or on a Ray cluster) and the read-only cache of loaded models.
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import gradio as gr
import pandas as pd
import torch

from mnist_core.cli import RUNS_DIR, SHIPPED_CHECKPOINT
from mnist_core.config import LIMITS, TrainConfig
from mnist_core.data import resolve_data_dir
from mnist_core.export import missing_exporter
from mnist_core.insight import SORT_ORDERS, InsightService
from mnist_core.predict import Prediction
from mnist_core.registry import SHIPPED_KEY, ModelRegistry
from mnist_core.runs import RunStore
from mnist_core.units import UnitService
from mnist_web.backends import BackendError, LocalBackend, make_backend
from mnist_web.components import (
    CHOOSE_MODEL_JS,
    LIVE_EVENT_JS,
    ApiSketchpad,
    Label,
    network_view,
    queue_line,
    sketch_canvas,
    train_view,
)
from mnist_web.handlers import DrawHandlers, TrainHandlers, empty_class_bars
from mnist_web.insight_views import heat_html
from mnist_web.network import NetworkHandlers, activations_route, unit_route
from mnist_web.queue_status import queue_status_route
from mnist_web.serving import (  # noqa: F401  (launch, parse_args, UPLOAD_LIMIT: also for tests and scripts)
    CACHE_MAX_AGE,
    QUEUE_MAX,
    TRAIN_SLOTS,
    UPLOAD_LIMIT,
    launch,
    parse_args,
)
from mnist_web.train_views import compare_charts, curve_charts, queue_html, status_html
from mnist_web.train_views import confusion_html as run_confusion_html
from mnist_web.training_service import MAX_WAITING, TrainingService
from mnist_web.views import EMPTY_MESSAGE, HISTORY_COLUMNS, prediction_html
from mnist_web.webguard import BoundedStream, hosting_address, parse_hosts
from mnist_web.weights import weights_route

CLASSIFY_CONCURRENCY = 4
EMPTY_VIEW = prediction_html(Prediction(None, None, True, "nothing drawn"))


def insight_panel(heat_id: str, look_id: str):
    """Heat map + caption beside the look-alike training digits (the Draw tab's and the Inspect tab's)."""
    with gr.Column(scale=1, min_width=240):
        # inline image (HTML), not gr.Image: a live drawing must not make Gradio write a file per update
        gr.Markdown("**Evidence for the top class**")
        heat = gr.HTML(heat_html(None), elem_id=heat_id)
        caption = gr.Markdown(elem_id=f"{heat_id}-caption")
    with gr.Column(scale=2):
        gr.Markdown("**Look-alike training digits**: the nearest in the network's own features")
        look = gr.HTML(elem_id=look_id)
    return heat, caption, look


def build_app(checkpoint: Path = SHIPPED_CHECKPOINT, runs_dir: Path = RUNS_DIR,
              data_dir: str | None = None, download: bool = True, train_enabled: bool = True,
              max_queue: int = QUEUE_MAX, cache_max_age: int = CACHE_MAX_AGE, train_backend=None,
              train_queue: int = MAX_WAITING) -> gr.Blocks:
    """train_backend: where training jobs run (mnist_web.backends.LocalBackend by default: worker processes
    of this machine; ray_backend.RayBackend for a cluster); train_queue: how many jobs may wait."""
    registry = ModelRegistry(Path(checkpoint), Path(runs_dir))
    if train_backend is None and train_enabled:
        train_backend = LocalBackend(TRAIN_SLOTS)
    trainer = TrainingService(Path(runs_dir), data_dir=data_dir, download=download, backend=train_backend,
                              max_waiting=train_queue)
    runs = RunStore(Path(checkpoint), Path(runs_dir))
    insight = InsightService(data_dir)   # MNIST read once; features and mistakes cached per loaded model
    export_dir = Path(tempfile.mkdtemp(prefix="mnist-downloads-"))   # copies offered for download
    first = registry.choices()
    default_key = SHIPPED_KEY if any(k == SHIPPED_KEY for _, k in first) else (first[0][1] if first else None)

    draw = DrawHandlers(registry, insight, Path(checkpoint))
    network = NetworkHandlers(registry, UnitService(insight))   # the network view's /activations, /unit
    tr = TrainHandlers(trainer, runs, registry, export_dir)

    # ------------------------------------------------------------------------------ Train tab
    def train_tab():
        """The Train tab and its events (called inside the Blocks below); left out entirely in read-only
        mode, so /train and /stop do not exist there."""
        defaults = TrainConfig()
        onnx_missing = missing_exporter()
        with gr.Tab("Train", id="train"):
            gr.Markdown("Train the network from scratch with the recipe below (defaults: the recipe that reaches "
                        "99.4%+ in 15 epochs, about 2.5 minutes on 2 CPU cores). Use fewer samples for a quick run.")
            with gr.Row():  # precision=None: the server sees the number as typed, so 2.5 epochs is refused, not rounded
                lo, hi = LIMITS["epochs"]
                n_epochs = gr.Number(defaults.epochs, label=f"Epochs ({lo}-{hi})", elem_id="epochs")
                n_samples = gr.Number(60_000, label="Training samples (1-60,000)", elem_id="samples")
                n_batch = gr.Number(defaults.batch_size, label="Batch size (1-4,096)", elem_id="batch")
                n_lr = gr.Number(defaults.lr, label="Learning rate", elem_id="lr")
                n_mom = gr.Number(defaults.momentum, label="Momentum", elem_id="momentum")
            with gr.Row():
                n_step = gr.Number(defaults.step_size, label="LR step (epochs)", elem_id="step")
                n_gamma = gr.Number(defaults.gamma, label="LR gamma", elem_id="gamma")
                n_rot = gr.Number(defaults.rotation, label="Rotation (+/- degrees)", elem_id="rotation")
                n_drop = gr.Number(defaults.dropout, label="Dropout", elem_id="dropout")
                n_seed = gr.Number(defaults.seed, label="Seed", elem_id="seed")
                device = gr.Dropdown(["auto", "cpu", "cuda"], value="auto", label="Device",
                                     visible=torch.cuda.is_available())
            with gr.Row():
                start_btn = gr.Button("Start training", variant="primary", elem_id="start")
                stop_btn = gr.Button("Stop", variant="stop", elem_id="stop", interactive=False)
            status = gr.HTML(status_html("idle", "Ready."), elem_id="train-status")
            queue_line(queue_html(trainer.status()), elem_id="queue-info")   # refreshed by the page while shown
            empty_loss, empty_acc = curve_charts([], [], defaults.epochs)
            with gr.Row():
                loss_plot = gr.HTML(empty_loss, elem_id="loss-plot", elem_classes="chart-cell")
                acc_plot = gr.HTML(empty_acc, elem_id="acc-plot", elem_classes="chart-cell")
            gr.Markdown("Train curves: mean over each window of about 30-70 batches (no other smoothing); "
                        "test: once per epoch. Runs picked under *Compare* are overlaid as `test: <run>`.",
                        elem_classes=["muted"])
            with gr.Accordion("Inside the run: the filters forming and 20 test digits turning green", open=True,
                              elem_id="train-view-panel"):
                look = train_view(elem_id="train-look")
            table = gr.Dataframe(pd.DataFrame(columns=HISTORY_COLUMNS), label="Per-epoch metrics",
                                 interactive=False, elem_id="history")
            curves_json = gr.JSON(visible=False, elem_id="train-curves")  # for API clients (README: the /train stream)
            with gr.Accordion("Compare runs", open=True):
                compare_pick = gr.Dropdown(choices=runs.choices(), value=[], multiselect=True, elem_id="compare",
                                           # runs saved after the page loaded; checked by RunStore
                                           allow_custom_value=True,
                                           label="Runs to compare (the shipped model and every saved run)")
                with gr.Row():
                    empty_cacc, empty_closs = compare_charts([])
                    cmp_acc = gr.HTML(empty_cacc, elem_id="compare-acc", elem_classes="chart-cell")
                    cmp_loss = gr.HTML(empty_closs, elem_id="compare-loss", elem_classes="chart-cell")
                diff_table = gr.Dataframe(pd.DataFrame(columns=["run", "test acc %"]), interactive=False,
                                          label="Settings that differ", elem_id="compare-table")
            with gr.Accordion("Results of a run", open=True):
                with gr.Row():
                    run_pick = gr.Dropdown(choices=runs.choices(), value=None, label="Run", elem_id="run-pick", scale=3,
                                           allow_custom_value=True)  # newer runs too; RunStore checks every key
                    refresh_btn = gr.Button("Refresh list", elem_id="refresh-runs", scale=1)
                    download_btn = gr.DownloadButton("Download checkpoint", value=None, elem_id="download", scale=1)
                    onnx_btn = gr.DownloadButton("Download ONNX", value=None, elem_id="download-onnx", scale=1,
                                                 interactive=False, visible=onnx_missing is None)
                    delete_btn = gr.Button("Delete run", variant="stop", interactive=False, elem_id="delete", scale=1)
                with gr.Row(visible=False, elem_id="confirm-row") as confirm_row:
                    confirm_msg = gr.Markdown()
                    confirm_btn = gr.Button("Yes, delete", variant="stop", elem_id="confirm-delete")
                    cancel_btn = gr.Button("Cancel", elem_id="cancel-delete")
                run_msg = gr.Markdown(elem_id="run-msg")
                if onnx_missing is not None:
                    gr.Markdown(f"Download as ONNX: {onnx_missing}.", elem_classes=["muted"], elem_id="onnx-note")
                with gr.Row():
                    class_bars = gr.BarPlot(empty_class_bars(), x="digit", y="accuracy",
                                            title="Test accuracy per digit (%)", elem_id="per-class",
                                            elem_classes="chart-cell")
                    confusion = gr.HTML(run_confusion_html(None), elem_id="confusion", elem_classes="chart-cell")

        start_btn.click(tr.train, [n_epochs, n_lr, n_mom, n_batch, n_step, n_gamma, n_rot, n_drop, n_seed, n_samples,
                                device, model_key, compare_pick],
                        [status, table, loss_plot, acc_plot, picker, curves_json, start_btn, stop_btn, run_pick,
                         compare_pick, look], api_name="train",
                        concurrency_limit=None, show_progress="hidden")  # the service queues: Start answers at once
        stop_btn.click(tr.stop, None, None, api_name="stop", show_progress="hidden", concurrency_limit=None)
        compare_pick.change(tr.compare, [compare_pick], [cmp_acc, cmp_loss, diff_table], api_name="compare",
                            show_progress="hidden")
        run_pick.change(tr.show_run, [run_pick], [class_bars, confusion, download_btn, delete_btn, run_msg],
                        api_name="show_run", show_progress="hidden")
        if onnx_missing is None:
            # A new pick first cancels the export of the previous one (whose file must never reach the
            # button), then clears the button until this run's file is ready (~6 s once per run, in a
            # process of its own; one export at a time).
            exporting = run_pick.change(tr.clear_onnx, None, [onnx_btn], api_visibility="private",
                                        show_progress="hidden").then(
                tr.onnx_file, [run_pick], [onnx_btn], api_name="export_onnx", show_progress="hidden",
                concurrency_limit=1, trigger_mode="always_last")
            run_pick.change(None, None, None, cancels=[exporting], api_visibility="private")
        refresh_btn.click(tr.refresh_runs, [run_pick, compare_pick], [run_pick, compare_pick], api_visibility="private")
        demo.load(tr.refresh_runs, [run_pick, compare_pick], [run_pick, compare_pick], api_visibility="private",
                  show_progress="hidden")  # the lists as they are now, not as they were when the server started
        delete_btn.click(tr.ask_delete, [run_pick], [confirm_row, confirm_msg], api_visibility="private")
        cancel_btn.click(lambda: gr.update(visible=False), None, [confirm_row], api_visibility="private")
        confirm_btn.click(tr.delete_run, [run_pick, compare_pick, model_key],
                          [confirm_row, run_msg, run_pick, compare_pick, model_key, picker], api_name="delete_run"
                          ).then(None, [picker], None, js=CHOOSE_MODEL_JS, api_visibility="private")

    # ------------------------------------------------------------------------------ layout
    with gr.Blocks(title="MNIST: draw a digit, train it yourself", analytics_enabled=False,
                   delete_cache=(max(1, min(cache_max_age, 300)), cache_max_age)) as demo:
        gr.Markdown("# Draw a digit\nA 7,416-parameter CNN reads your drawing as you draw."
                    + (" Train your own in the **Train** tab and draw against it." if train_enabled else ""))
        model_key = gr.State(default_key)
        with gr.Tab("Draw", id="draw"):
            with gr.Row():
                with gr.Column(scale=1, min_width=340):
                    pad = sketch_canvas(model=default_key, elem_id="sketchpad")
                    api_pad = ApiSketchpad(visible=False, image_mode="RGBA", type="numpy", format="png",
                                           layers=False, transforms=(), elem_id="api-sketchpad")
                    # /explain's image
                    api_heat = gr.Image(visible=False, type="numpy", format="png", elem_id="api-heat")
                with gr.Column(scale=1):
                    label = Label(value=EMPTY_MESSAGE, num_top_classes=None, label="Prediction", elem_id="label")
                    view = gr.HTML(EMPTY_VIEW, elem_id="view")
                    picker = gr.Dropdown(choices=first, value=default_key, label="Model", elem_id="model-picker",
                                         interactive=True, allow_custom_value=True)
                    model_msg = gr.Markdown("" if default_key else
                                            f"**No model found** at `{checkpoint}`: train one in the Train tab.",
                                            elem_id="model-msg")
            with gr.Accordion("Inside the network: every layer as you draw (click a map for its unit)", open=True,
                              elem_id="network-panel"):
                network_view(elem_id="network-view")
            show_why = gr.Checkbox(True, elem_id="show-why",
                                   label="Show why: the evidence for the top class and look-alike training digits")
            with gr.Row(visible=True, elem_id="why") as why_row:
                heat, heat_caption, look = insight_panel("saliency", "lookalikes")
        with gr.Tab("Inspect", id="inspect") as inspect_tab:
            gr.Markdown("Where the current model goes wrong: every MNIST test digit it misreads, and its "
                        "confusion matrix (from the checkpoint's test metrics). Click a digit to see its evidence.")
            mistakes_msg = gr.HTML(elem_id="mistakes-note")
            with gr.Row():
                with gr.Column(scale=3):
                    order = gr.Dropdown(list(SORT_ORDERS), value=SORT_ORDERS[0], label="Sort", elem_id="mistakes-order")
                    gallery = gr.Gallery(label="Mistakes", columns=7, height=520, allow_preview=False, format="png",
                                         object_fit="contain", elem_id="mistakes", elem_classes="digits")
                with gr.Column(scale=2):
                    mistakes_confusion = gr.HTML(elem_id="mistakes-confusion")
                    with gr.Row():
                        m_heat, m_caption, m_look = insight_panel("mistake-saliency", "mistake-lookalikes")
        # ------------------------------------------------------------------------------ events
        # The canvas sets its value (the strokes) on every animation frame in which the drawing changed:
        # `change` -> the label, bars and 28x28 view computed in the page from the chosen model's weights
        # (GET /mnist/weights, web/mnistnet.js), no request. Until those weights are there (or if they
        # fail) the canvas fires `input` instead, at most every 100 ms and at pen-up: the server's answer,
        # also the /classify_strokes API; always_last: while one update runs, only the newest waiting one
        # follows. When the drawing settles (pen up, undo, clear) with "Show why" on, the canvas fires
        # `release` -> the server's explanation, once per settled drawing.
        why = [heat, heat_caption, look]
        pad.change(None, [pad, label, view], [label, view], js=LIVE_EVENT_JS, show_progress="hidden",
                   api_visibility="private", trigger_mode="multiple")   # in the page: no request
        pad.input(draw.classify_strokes, [pad, model_key], [label, view], api_name="classify_strokes",
                  trigger_mode="always_last", show_progress="hidden", concurrency_limit=CLASSIFY_CONCURRENCY,
                  concurrency_id="classify")   # the server's answer: the API, and the page's fallback
        pad.release(draw.explain_strokes, [pad, model_key, show_why], why, api_name="explain_strokes",
                    trigger_mode="always_last", show_progress="hidden", concurrency_limit=CLASSIFY_CONCURRENCY,
                    concurrency_id="explain")
        api_pad.change(draw.classify, [api_pad, model_key], [label, view], api_name="classify",
                       show_progress="hidden", concurrency_id="classify")
        api_pad.change(draw.explain_drawing, [api_pad, model_key], [api_heat, heat_caption, look], api_name="explain",
                       show_progress="hidden", concurrency_id="explain")
        show_why.change(lambda on: gr.update(visible=on), [show_why], [why_row], api_visibility="private"
                        ).then(draw.explain_strokes, [pad, model_key, show_why], why, show_progress="hidden",
                               concurrency_id="explain", api_visibility="private")
        mistakes_out = [gallery, mistakes_confusion, mistakes_msg]
        inspect_tab.select(draw.show_mistakes, [model_key], mistakes_out, api_name="mistakes")
        order.change(draw.show_mistakes, [model_key, order], mistakes_out, api_visibility="private")
        gallery.select(draw.explain_mistake, [model_key, order], [m_heat, m_caption, m_look],
                       api_visibility="private", concurrency_id="explain")
        picker.input(draw.choose_model, [picker, model_key], [model_key, picker, model_msg], api_name="choose_model"
                     ).then(None, [picker], None, js=CHOOSE_MODEL_JS, api_visibility="private"
                     ).then(draw.classify_strokes, [pad, model_key], [label, view], show_progress="hidden",
                            concurrency_id="classify", api_visibility="private"
                     ).then(draw.explain_strokes, [pad, model_key, show_why], why, show_progress="hidden",
                            concurrency_id="explain", api_visibility="private")
        # the network view's data for scripts (the page computes its own maps and asks GET /mnist/unit)
        gr.api(network.activations, api_name="activations", concurrency_id="classify")
        gr.api(network.unit, api_name="unit", concurrency_id="explain")
        picker.focus(draw.refresh_models, [model_key], [picker], show_progress="hidden", api_visibility="private")
        if train_enabled:
            train_tab()
            demo.unload(tr.on_unload)
    demo.queue(max_size=max_queue)
    # served beside Gradio's own by launch(): GET /mnist/weights, GET /mnist/unit, POST /mnist/activations
    demo.mnist_routes = [weights_route(registry), unit_route(network), activations_route(network)]
    if train_enabled:
        demo.mnist_routes.append(queue_status_route(trainer))   # GET /queue_status
    demo.mnist_trainer = trainer
    return demo


def main(argv: list[str] | None = None) -> None:
    a = parse_args(argv)
    # One request must not be able to flood the log: every write is cut short, with a budget per minute.
    sys.stderr = BoundedStream(sys.stderr)
    sys.stdout = BoundedStream(sys.stdout)
    try:
        host, port = hosting_address(a.host, a.port)
    except ValueError as exc:
        raise SystemExit(f"demo.py: {exc}") from None
    backend = None
    if not a.no_train:
        try:   # an unreachable cluster: one line and no server (README: Hosting), never a silent fallback
            backend = make_backend(a.train_slots, a.train_threads or None, a.ray)
        except BackendError as exc:
            raise SystemExit(f"demo.py: {exc}") from None
        print(f"Training: {backend.describe()}; up to {a.train_queue} more may wait.")
    demo = build_app(Path(a.checkpoint), Path(a.runs_dir), str(resolve_data_dir(a.data_dir)), not a.no_download,
                     train_enabled=not a.no_train, max_queue=a.max_queue, cache_max_age=a.cache_max_age,
                     train_backend=backend, train_queue=a.train_queue)
    launch(demo, host=host, port=port, share=a.share,
           allowed_hosts=parse_hosts(a.allowed_hosts) if a.allowed_hosts else None)


if __name__ == "__main__":
    main()
