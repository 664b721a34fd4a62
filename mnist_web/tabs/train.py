"""The Train tab: the recipe's settings, Start/Stop, the queue line, the run as it trains (curves,
per-epoch table, "inside the run"), comparing runs, and one run's results (per-digit bars, confusion
matrix, download as checkpoint or ONNX, delete). Left out entirely in read-only mode, so /train and
/stop do not exist there. API: /train (a stream), /stop, /compare, /show_run, /export_onnx, /delete_run.
"""
from __future__ import annotations

from types import SimpleNamespace

import gradio as gr
import pandas as pd
import torch

from mnist_core.config import LIMITS, TrainConfig
from mnist_core.export import missing_exporter

from ..components import CHOOSE_MODEL_JS, queue_line, train_view
from ..handlers import empty_class_bars
from ..services import Services
from ..train_views import compare_charts, confusion_html, curve_charts, queue_html, status_html
from ..views import HISTORY_COLUMNS

SETTINGS = ("epochs", "lr", "momentum", "batch", "step", "gamma", "rotation", "dropout", "seed", "samples",
            "device")   # /train's inputs, in its order, before the chosen model and the compared runs


def train_tab(services: Services, blocks: gr.Blocks, model_key: gr.State, picker: gr.Dropdown) -> None:
    """The tab (inside the caller's gr.Tabs) and its events. `blocks`: the page (its load and unload
    events); `model_key`, `picker`: the visitor's model and the Draw tab's picker, refreshed when a run
    is saved or deleted."""
    with gr.Tab("Train", id="train"):
        s = _settings()
        run = _progress(services)
        cmp = _compare(services)
        res = _results(services)
    shown = _wire_run(services, s, run, cmp, res, model_key, picker)
    _wire_results(services, blocks, cmp, res, model_key, picker)
    # At page load: the runs lists for this visitor, then their job if they have one (a reload)
    lists = [res.pick, cmp.pick]
    blocks.load(services.train.refresh_runs, lists, [*lists, res.msg], api_visibility="private",
                show_progress="hidden").then(services.train.resume, [model_key, cmp.pick], shown,
                                             api_visibility="private", show_progress="hidden",
                                             concurrency_limit=None)


def _settings() -> SimpleNamespace:
    d = TrainConfig()
    gr.Markdown("Train the network from scratch with the recipe below (defaults: the recipe that reaches "
                "99.4%+ in 15 epochs, about 2.5 minutes on 2 CPU cores). Use fewer samples for a quick run. "
                "*Re-drawn share* adds MNIST re-drawn as canvas strokes (0.5: the canvas model's recipe; the "
                "first such run on a server traces the digits once, several minutes).")
    with gr.Row():  # precision=None: the server sees the number as typed, so 2.5 epochs is refused, not rounded
        lo, hi = LIMITS["epochs"]
        epochs = gr.Number(d.epochs, label=f"Epochs ({lo}-{hi})", elem_id="epochs")
        samples = gr.Number(60_000, label="Training samples (1-60,000)", elem_id="samples")
        batch = gr.Number(d.batch_size, label="Batch size (1-4,096)", elem_id="batch")
        lr = gr.Number(d.lr, label="Learning rate", elem_id="lr")
        momentum = gr.Number(d.momentum, label="Momentum", elem_id="momentum")
    with gr.Row():
        step = gr.Number(d.step_size, label="LR step (epochs)", elem_id="step")
        gamma = gr.Number(d.gamma, label="LR gamma", elem_id="gamma")
        rotation = gr.Number(d.rotation, label="Rotation (+/- degrees)", elem_id="rotation")
        dropout = gr.Number(d.dropout, label="Dropout", elem_id="dropout")
        seed = gr.Number(d.seed, label="Seed", elem_id="seed")
        drawn = gr.Number(d.drawn, label="Re-drawn share (0-1; 0.5: canvas model)", elem_id="drawn")
        device = gr.Dropdown(["auto", "cpu", "cuda"], value="auto", label="Device",
                             visible=torch.cuda.is_available())
    with gr.Row():
        start = gr.Button("Start training", variant="primary", elem_id="start")
        stop = gr.Button("Stop", variant="stop", elem_id="stop", interactive=False)
    values = dict(epochs=epochs, lr=lr, momentum=momentum, batch=batch, step=step, gamma=gamma, rotation=rotation,
                  dropout=dropout, seed=seed, samples=samples, device=device)
    return SimpleNamespace(inputs=[values[k] for k in SETTINGS], drawn=drawn, start=start, stop=stop)


def _progress(services: Services) -> SimpleNamespace:
    epochs = TrainConfig().epochs
    status = gr.HTML(status_html("idle", "Ready."), elem_id="train-status")
    queue_line(queue_html(services.training.status()), elem_id="queue-info")   # refreshed by the page while shown
    empty_loss, empty_acc = curve_charts([], [], epochs)
    with gr.Row():
        loss = gr.HTML(empty_loss, elem_id="loss-plot", elem_classes="chart-cell")
        acc = gr.HTML(empty_acc, elem_id="acc-plot", elem_classes="chart-cell")
    gr.Markdown("Train curves: mean over each window of about 30-70 batches (no other smoothing); "
                "test: once per epoch. Runs picked under *Compare* are overlaid as `test: <run>`.",
                elem_classes=["muted"])
    with gr.Accordion("Inside the run: the filters forming and 20 test digits turning green", open=True,
                      elem_id="train-view-panel"):
        look = train_view(elem_id="train-look")
    table = gr.Dataframe(pd.DataFrame(columns=HISTORY_COLUMNS), label="Per-epoch metrics",
                         interactive=False, elem_id="history")
    curves = gr.JSON(visible=False, elem_id="train-curves")  # for API clients (docs/api.md: the /train stream)
    return SimpleNamespace(status=status, loss=loss, acc=acc, look=look, table=table, curves=curves)


def _compare(services: Services) -> SimpleNamespace:
    with gr.Accordion("Compare runs", open=True):
        pick = gr.Dropdown(choices=services.runs.choices(), value=[], multiselect=True, elem_id="compare",
                           allow_custom_value=True,   # runs saved after the page loaded; checked by RunStore
                           label="Runs to compare (the shipped model and every saved run)")
        with gr.Row():
            empty_acc, empty_loss = compare_charts([])
            acc = gr.HTML(empty_acc, elem_id="compare-acc", elem_classes="chart-cell")
            loss = gr.HTML(empty_loss, elem_id="compare-loss", elem_classes="chart-cell")
        table = gr.Dataframe(pd.DataFrame(columns=["run", "test acc %"]), interactive=False,
                             label="Settings that differ", elem_id="compare-table")
    return SimpleNamespace(pick=pick, acc=acc, loss=loss, table=table)


def _results(services: Services) -> SimpleNamespace:
    onnx_missing = missing_exporter()
    with gr.Accordion("Results of a run", open=True):
        with gr.Row():
            pick = gr.Dropdown(choices=services.runs.choices(), value=None, label="Run", elem_id="run-pick",
                               scale=3, allow_custom_value=True)  # newer runs too; RunStore checks every key
            refresh = gr.Button("Refresh list", elem_id="refresh-runs", scale=1)
            download = gr.DownloadButton("Download checkpoint", value=None, elem_id="download", scale=1)
            onnx = gr.DownloadButton("Download ONNX", value=None, elem_id="download-onnx", scale=1,
                                     interactive=False, visible=onnx_missing is None)
            delete = gr.Button("Delete run", variant="stop", interactive=False, elem_id="delete", scale=1)
        with gr.Row(visible=False, elem_id="confirm-row") as confirm_row:
            confirm_msg = gr.Markdown()
            confirm = gr.Button("Yes, delete", variant="stop", elem_id="confirm-delete")
            cancel = gr.Button("Cancel", elem_id="cancel-delete")
        msg = gr.Markdown(elem_id="run-msg")
        if onnx_missing is not None:
            gr.Markdown(f"Download as ONNX: {onnx_missing}.", elem_classes=["muted"], elem_id="onnx-note")
        with gr.Row():
            bars = gr.BarPlot(empty_class_bars(), x="digit", y="accuracy", title="Test accuracy per digit (%)",
                              elem_id="per-class", elem_classes="chart-cell")
            confusion = gr.HTML(confusion_html(None), elem_id="confusion", elem_classes="chart-cell")
    return SimpleNamespace(pick=pick, refresh=refresh, download=download, onnx=onnx, delete=delete,
                           confirm_row=confirm_row, confirm_msg=confirm_msg, confirm=confirm, cancel=cancel,
                           msg=msg, bars=bars, confusion=confusion, onnx_ready=onnx_missing is None)


def _wire_run(services, s, run, cmp, res, model_key, picker) -> list:
    """Start, Stop, compare; returns /train's outputs (a reloaded page's job is shown in the same)."""
    tr = services.train
    shown = [run.status, run.table, run.loss, run.acc, picker, run.curves, s.start, s.stop, res.pick, cmp.pick,
             run.look]
    # drawn comes last: older /train clients that leave it out get its default (0, the recipe)
    s.start.click(tr.train, [*s.inputs, model_key, cmp.pick, s.drawn], shown, api_name="train",
                  concurrency_limit=None, show_progress="hidden")  # the service queues: Start answers at once
    s.stop.click(tr.stop, None, None, api_name="stop", show_progress="hidden", concurrency_limit=None)
    cmp.pick.change(tr.compare, [cmp.pick], [cmp.acc, cmp.loss, cmp.table], api_name="compare",
                    show_progress="hidden")
    return shown


def _wire_results(services, blocks, cmp, res, model_key, picker) -> None:
    tr = services.train
    res.pick.change(tr.show_run, [res.pick], [res.bars, res.confusion, res.download, res.delete, res.msg],
                    api_name="show_run", show_progress="hidden")
    if res.onnx_ready:
        # A new pick first cancels the export of the previous one (whose file must never reach the
        # button), then clears the button until this run's file is ready (~6 s once per run, in a
        # process of its own; one export at a time).
        exporting = res.pick.change(tr.clear_onnx, None, [res.onnx], api_visibility="private",
                                    show_progress="hidden").then(
            tr.onnx_file, [res.pick], [res.onnx], api_name="export_onnx", show_progress="hidden",
            concurrency_limit=1, trigger_mode="always_last")
        res.pick.change(None, None, None, cancels=[exporting], api_visibility="private")
    lists = [res.pick, cmp.pick]
    res.refresh.click(tr.refresh_runs, lists, [*lists, res.msg], api_visibility="private")
    res.delete.click(tr.ask_delete, [res.pick], [res.confirm_row, res.confirm_msg], api_visibility="private")
    res.cancel.click(lambda: gr.update(visible=False), None, [res.confirm_row], api_visibility="private")
    res.confirm.click(tr.delete_run, [res.pick, cmp.pick, model_key],
                      [res.confirm_row, res.msg, res.pick, cmp.pick, model_key, picker], api_name="delete_run"
                      ).then(None, [picker], None, js=CHOOSE_MODEL_JS, api_visibility="private")
    blocks.unload(tr.on_unload)
