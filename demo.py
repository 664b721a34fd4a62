"""Gradio app: draw a digit and see what the 7,416-parameter CNN thinks; train it yourself.

    python demo.py [--host HOST] [--port PORT] [--checkpoint checkpoints/mnist_cnn.pt] [--data-dir DIR]
                   [--no-train] [--max-queue N] [--allowed-hosts a.example,b.example] [--share]
                   [--train-slots N] [--train-threads N] [--train-queue N] [--ray ADDRESS]

This file only lays out the page: one tab bar (Draw, Inspect, Train), each tab built by its own module in
mnist_web/tabs/. The services behind the page (models, runs, insight, training) are built from the options
by mnist_web/services.py, the plain routes by mnist_web/routes.py, the command line and launch() are in
mnist_web/serving.py (docs/hosting.md). Per-visitor state is the chosen model (gr.State); what visitors
share is the training service (a fair queue; runs in worker processes or on a Ray cluster) and the
read-only cache of loaded models.
"""
from __future__ import annotations

from pathlib import Path

import gradio as gr

from mnist_core.cli import RUNS_DIR, SHIPPED_CHECKPOINT
from mnist_web.services import AppOptions, Services
from mnist_web.serving import (  # noqa: F401  (re-exported for tests and scripts)
    CACHE_MAX_AGE,
    QUEUE_MAX,
    UPLOAD_LIMIT,
    App,
    assemble,
    launch,
    parse_args,
)
from mnist_web.serving import main as serve_main
from mnist_web.tabs.draw import draw_tab
from mnist_web.tabs.inspect import inspect_tab
from mnist_web.tabs.train import train_tab
from mnist_web.webguard import hosting_address  # noqa: F401  (re-exported for tests)

TITLE = "MNIST: draw a digit, train it yourself"


def layout(services: Services) -> gr.Blocks:
    """The page over the services: a heading and one tab bar."""
    opts = services.options
    with gr.Blocks(title=TITLE, analytics_enabled=False,
                   delete_cache=(max(1, min(opts.cache_max_age, 300)), opts.cache_max_age)) as blocks:
        gr.Markdown("# Draw a digit\nA 7,416-parameter CNN reads your drawing as you draw."
                    + (" Train your own in the **Train** tab and draw against it." if opts.train_enabled else ""))
        model_key = gr.State(services.default_key)   # the visitor's chosen model
        with gr.Tabs():
            draw = draw_tab(services, model_key)
            inspect_tab(services, model_key)
            if opts.train_enabled:
                train_tab(services, blocks, model_key, draw.picker)
    blocks.queue(max_size=opts.max_queue)
    return blocks


def build_app(checkpoint: Path = SHIPPED_CHECKPOINT, runs_dir: Path = RUNS_DIR, data_dir: str | None = None,
              download: bool = True, **options) -> App:
    """The app for these options (the rest by name: mnist_web.services.AppOptions), ready for launch()."""
    return assemble(AppOptions(checkpoint=Path(checkpoint), runs_dir=Path(runs_dir), data_dir=data_dir,
                               download=download, **options), layout)


def main(argv: list[str] | None = None) -> None:
    serve_main(layout, argv)


if __name__ == "__main__":
    main()
