"""The Draw tab: the stroke canvas, the live label and 28x28 view, "It's a ..." and My digits
(tabs/mydigits.py: teach the model your handwriting), the model picker, the network view (tabs/network.py)
and "Show why" (evidence and look-alikes). API: /classify_strokes, /explain_strokes, /classify and
/explain (a sketchpad dict or an image), /choose_model; /teach, /download_digits, /restore_digits.

The canvas sets its value (the strokes) on every animation frame in which the drawing changed:
`change` -> the label, bars and 28x28 view computed in the page from the chosen model's weights
(GET /mnist/weights, web/mnistnet.js), no request. Until those weights are there (or if they fail) the
canvas fires `input` instead, at most every 100 ms and at pen-up: the server's answer, also the
/classify_strokes API; always_last: while one update runs, only the newest waiting one follows. When
the drawing settles (pen up, undo, clear) with "Show why" on, the canvas fires `submit` -> the evidence
map and the look-alikes computed in the page (web/explain.js, with the model's look-alike index from GET
/mnist/lookalikes and the digits' pixels from GET /mnist/digits), no request to compute; until that index
is there (or if the page's computation throws) `release` instead -> the server's explanation, once per
settled drawing.
"""
from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from mnist_core.predict import Prediction

from ..components import (
    CHOOSE_MODEL_JS,
    EXPLAIN_EVENT_JS,
    LIVE_EVENT_JS,
    SHOW_WHY_JS,
    ApiSketchpad,
    Label,
    sketch_canvas,
)
from ..services import Services
from ..views import EMPTY_MESSAGE, prediction_html
from .mydigits import MyDigits, its_a_buttons, mydigits_panel, wire_mydigits
from .network import network_panel
from .panels import insight_panel

CLASSIFY_CONCURRENCY = 4
EMPTY_VIEW = prediction_html(Prediction(None, None, True, "nothing drawn"))


@dataclass
class DrawTab:
    """The Draw tab's components that other parts of the page use or wire."""
    pad: gr.HTML            # the stroke canvas (value: the strokes as JSON)
    label: Label
    view: gr.HTML           # the bars and the 28x28 view
    picker: gr.Dropdown     # the model picker (the Train tab refreshes it when a run is saved)
    model_msg: gr.Markdown
    show_why: gr.Checkbox
    why_row: gr.Row
    why: list               # evidence heat map, its caption, the look-alikes
    api_pad: ApiSketchpad   # hidden: the input of /classify and /explain
    api_heat: gr.Image      # hidden: /explain's image
    digits: MyDigits        # My digits: the grid, Teach, download and restore


def draw_tab(services: Services, model_key: gr.State) -> DrawTab:
    """The tab (inside the caller's gr.Tabs) and its events; `model_key`: the visitor's chosen model."""
    with gr.Tab("Draw", id="draw"):
        tab = _layout(services)
    _wire_canvas(services, tab, model_key)
    _wire_picker(services, tab, model_key)
    wire_mydigits(services, tab.digits, tab.pad, tab.picker, tab.model_msg, model_key)
    return tab


def _layout(services: Services) -> DrawTab:
    key = services.default_key
    with gr.Row():
        with gr.Column(scale=1, min_width=340):
            pad = sketch_canvas(model=key, elem_id="sketchpad")
            api_pad = ApiSketchpad(visible=False, image_mode="RGBA", type="numpy", format="png",
                                   layers=False, transforms=(), elem_id="api-sketchpad")
            api_heat = gr.Image(visible=False, type="numpy", format="png", elem_id="api-heat")
        with gr.Column(scale=1):
            label = Label(value=EMPTY_MESSAGE, num_top_classes=None, label="Prediction", elem_id="label")
            its_a_buttons()
            view = gr.HTML(EMPTY_VIEW, elem_id="view")
            picker = gr.Dropdown(choices=services.registry.choices(), value=key, label="Model",
                                 elem_id="model-picker", interactive=True, allow_custom_value=True)
            missing = f"**No model found** at `{services.options.checkpoint}`: train one in the Train tab."
            model_msg = gr.Markdown("" if key else missing, elem_id="model-msg")
    digits = mydigits_panel(services)
    network_panel(services)
    show_why = gr.Checkbox(True, elem_id="show-why",
                           label="Show why: the evidence for the top class and look-alike training digits")
    with gr.Row(visible=True, elem_id="why") as why_row:
        why = list(insight_panel("saliency", "lookalikes"))
    return DrawTab(pad, label, view, picker, model_msg, show_why, why_row, why, api_pad, api_heat, digits)


def _wire_canvas(services: Services, t: DrawTab, model_key: gr.State) -> None:
    draw, shown = services.draw, [t.label, t.view]
    t.pad.change(None, [t.pad, t.label, t.view], shown, js=LIVE_EVENT_JS, show_progress="hidden",
                 api_visibility="private", trigger_mode="multiple")   # in the page: no request
    t.pad.input(draw.classify_strokes, [t.pad, model_key], shown, api_name="classify_strokes",
                trigger_mode="always_last", show_progress="hidden", concurrency_limit=CLASSIFY_CONCURRENCY,
                concurrency_id="classify")   # the server's answer: the API, and the page's fallback
    t.pad.submit(None, [t.pad, *t.why], t.why, js=EXPLAIN_EVENT_JS, show_progress="hidden",
                 api_visibility="private", trigger_mode="multiple")   # "Show why" in the page: no request
    t.pad.release(draw.explain_strokes, [t.pad, model_key, t.show_why], t.why, api_name="explain_strokes",
                  trigger_mode="always_last", show_progress="hidden", concurrency_limit=CLASSIFY_CONCURRENCY,
                  concurrency_id="explain")
    t.api_pad.change(draw.classify, [t.api_pad, model_key], shown, api_name="classify",
                     show_progress="hidden", concurrency_id="classify")
    t.api_pad.change(draw.explain_drawing, [t.api_pad, model_key], [t.api_heat, *t.why[1:]], api_name="explain",
                     show_progress="hidden", concurrency_id="explain")
    t.show_why.change(None, [t.show_why], None, js=SHOW_WHY_JS, api_visibility="private")   # the canvas knows
    t.show_why.change(lambda on: gr.update(visible=on), [t.show_why], [t.why_row], api_visibility="private"
                      ).then(draw.explain_strokes, [t.pad, model_key, t.show_why], t.why, show_progress="hidden",
                             concurrency_id="explain", api_visibility="private")


def _wire_picker(services: Services, t: DrawTab, model_key: gr.State) -> None:
    """Choosing a model: the visitor's key, the page's own network (CHOOSE_MODEL_JS), then the current
    drawing read and explained again by the new model."""
    draw = services.draw
    t.picker.input(draw.choose_model, [t.picker, model_key], [model_key, t.picker, t.model_msg],
                   api_name="choose_model"
                   ).then(None, [t.picker], None, js=CHOOSE_MODEL_JS, api_visibility="private"
                   ).then(draw.classify_strokes, [t.pad, model_key], [t.label, t.view], show_progress="hidden",
                          concurrency_id="classify", api_visibility="private"
                   ).then(draw.explain_strokes, [t.pad, model_key, t.show_why], t.why, show_progress="hidden",
                          concurrency_id="explain", api_visibility="private")
    t.picker.focus(draw.refresh_models, [model_key], [t.picker], show_progress="hidden", api_visibility="private")
