"""The Draw tab's "inside the network" view (every layer's maps as you draw, computed in the page by
web/network.js; click a map for its unit) and the network's API for scripts: /activations, /unit.
The page itself asks the plain routes GET /mnist/unit and POST /mnist/activations (mnist_web/routes.py)."""
from __future__ import annotations

import gradio as gr

from ..components import network_view
from ..services import Services


def network_panel(services: Services) -> None:
    with gr.Accordion("Inside the network: every layer as you draw (click a map for its unit)", open=True,
                      elem_id="network-panel"):
        network_view(elem_id="network-view")
    gr.api(services.network.activations, api_name="activations", concurrency_id="classify")
    gr.api(services.network.unit, api_name="unit", concurrency_id="explain")
