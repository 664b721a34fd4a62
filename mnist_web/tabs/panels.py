"""The evidence + look-alikes panel, shown by the Draw tab (for the drawing) and the Inspect tab (for a
clicked mistake)."""
from __future__ import annotations

import gradio as gr

from ..insight_views import heat_html


def insight_panel(heat_id: str, look_id: str):
    """Heat map + caption beside the look-alike training digits; returns (heat, caption, look)."""
    with gr.Column(scale=1, min_width=240):
        # inline image (HTML), not gr.Image: a live drawing must not make Gradio write a file per update
        gr.Markdown("**Evidence for the top class**")
        heat = gr.HTML(heat_html(None), elem_id=heat_id)
        caption = gr.Markdown(elem_id=f"{heat_id}-caption")
    with gr.Column(scale=2):
        gr.Markdown("**Look-alike training digits**: the nearest in the network's own features")
        look = gr.HTML(elem_id=look_id)
    return heat, caption, look
