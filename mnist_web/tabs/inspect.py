"""The Inspect tab: every MNIST test digit the chosen model misreads (a gallery, sortable), its
confusion matrix, and a clicked mistake's evidence and look-alikes. API: /mistakes."""
from __future__ import annotations

import gradio as gr

from mnist_core.insight import SORT_ORDERS

from ..services import Services
from .panels import insight_panel


def inspect_tab(services: Services, model_key: gr.State) -> None:
    """The tab (inside the caller's gr.Tabs) and its events; `model_key`: the visitor's chosen model."""
    with gr.Tab("Inspect", id="inspect") as tab:
        outputs, order, gallery, shown = _layout()
    draw = services.draw
    tab.select(draw.show_mistakes, [model_key], outputs, api_name="mistakes")
    order.change(draw.show_mistakes, [model_key, order], outputs, api_visibility="private")
    gallery.select(draw.explain_mistake, [model_key, order], shown, api_visibility="private",
                   concurrency_id="explain")


def _layout():
    gr.Markdown("Where the current model goes wrong: every MNIST test digit it misreads, and its "
                "confusion matrix (from the checkpoint's test metrics). Click a digit to see its evidence.")
    note = gr.HTML(elem_id="mistakes-note")
    with gr.Row():
        with gr.Column(scale=3):
            order = gr.Dropdown(list(SORT_ORDERS), value=SORT_ORDERS[0], label="Sort", elem_id="mistakes-order")
            gallery = gr.Gallery(label="Mistakes", columns=7, height=520, allow_preview=False, format="png",
                                 object_fit="contain", elem_id="mistakes", elem_classes="digits")
        with gr.Column(scale=2):
            confusion = gr.HTML(elem_id="mistakes-confusion")
            with gr.Row():
                heat, caption, look = insight_panel("mistake-saliency", "mistake-lookalikes")
    return [gallery, confusion, note], order, gallery, [heat, caption, look]
