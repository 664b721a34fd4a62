"""The app's own Gradio components: small subclasses of Gradio's, and the stroke canvas loader.

- ApiSketchpad: the input of the `/classify` API, bounded (no blob route, few layers, headers checked).
- Label: a gr.Label that shows the headline it is given ("7?" when unsure, "Not a digit?"), with the
  not-a-digit verdict and score in its value (DigitLabelData).
- sketch_canvas: the Draw tab's canvas, a gr.HTML custom component whose front end lives in web/.
- network_view: the Draw tab's "inside the network" view, likewise (web/network.*).
- train_view: the Train tab's view of a run as it trains (web/trainview.*).
- queue_line: the Train tab's line on the training queue, refreshed by the page (web/queue_line.js).
- LIVE_EVENT_JS, CHOOSE_MODEL_JS, SHOW_WHY_JS, EXPLAIN_EVENT_JS: the JavaScript of event listeners that run
  in the page (fn=None).

The components share state only through window.MnistApp, declared in web/kit.js (the toolkit each one
loads through its `head`, once per page; mnist_web/assets.py).
"""
from __future__ import annotations

import gradio as gr
from gradio.components.image_editor import EditorData
from gradio.components.label import LabelData
from gradio.data_classes import FileData
from pydantic import Field

from mnist_core.arch import view_table
from mnist_core.preprocess import MAX_LAYERS, PreprocessError, check_image_file

from .assets import KIT_HEAD, SKETCH_HEAD, web_file


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
    costs nothing. Unreadable files reach the handler as the app's own message (a PreprocessError).
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


class DigitLabelData(LabelData):
    """gr.Label's value plus the "not a digit" verdict: API clients of /classify and /classify_strokes
    read `not_a_digit` and the score `novelty` (None: the model has no stats) beside the confidences."""
    not_a_digit: bool | None = None
    novelty: float | None = None


class Label(gr.Label):
    """gr.Label that shows the given headline ("7?" when unsure, "Not a digit?") above the confidences,
    instead of always the top class: an unsure guess must not look confident."""

    data_model = DigitLabelData

    def get_block_name(self) -> str:
        return "label"

    def postprocess(self, value):
        if isinstance(value, dict) and isinstance(value.get("confidences"), dict) and "label" in value:
            out = super().postprocess(value["confidences"])
            return DigitLabelData(label=str(value["label"]), confidences=out.confidences,
                                  not_a_digit=value.get("not_a_digit"), novelty=value.get("novelty"))
        return super().postprocess(value)


def sketch_canvas(model: str | None = None, **kw) -> gr.HTML:
    """The Draw tab's stroke canvas: a gr.HTML custom component whose value is the strokes as JSON and
    whose `model` prop is the chosen model's registry key (the page fetches that model's folded weights
    and computes the live label itself). Front end: web/sketch.html, sketch.css, sketch.js as its
    js_on_load, with the toolkit (kit.js), the page's network (mnistnet.js) and "Show why" in the page
    (explain.js) in its head; no JS build."""
    return gr.HTML(value="", html_template=web_file("sketch.html"), css_template=web_file("sketch.css"),
                   js_on_load=web_file("sketch.js"), head=SKETCH_HEAD, apply_default_css=False,
                   model=model or "", **kw)


def network_view(**kw) -> gr.HTML:
    """The Draw tab's network view: every stage's maps for the current drawing, drawn in the page from
    the page's own forward pass (web/network.html, network.css, network.js); click a map for its unit.
    Its `stages` prop is the network's stages (mnist_core/arch.py view_table(), as in the weights payload):
    the view lays itself out from them, with or without the page's own network."""
    return gr.HTML(value="", html_template=web_file("network.html"), css_template=web_file("network.css"),
                   js_on_load=web_file("network.js"), head=KIT_HEAD, apply_default_css=False,
                   stages=view_table(), **kw)


def train_view(**kw) -> gr.HTML:
    """The Train tab's "inside the run" view: conv1's and conv2's filters, the guesses on 20 fixed test
    digits and the per-digit accuracy per epoch (web/trainview.*). Its value is the run's snapshot dict
    (TrainUpdate.look), {} before a run: a dict, so a stream sends only the keys that changed."""
    return gr.HTML(value={}, html_template=web_file("trainview.html"), css_template=web_file("trainview.css"),
                   js_on_load=web_file("trainview.js"), head=KIT_HEAD, apply_default_css=False, **kw)


def queue_line(value: str, **kw) -> gr.HTML:
    """The Train tab's "runs going / waiting" line: `value` is its first rendering (train_views.queue_html);
    the page refreshes it from GET /queue_status while it is on screen (web/queue_line.js)."""
    return gr.HTML(value=value, js_on_load=web_file("queue_line.js"), **kw)


LIVE_EVENT_JS = web_file("live_event.js")     # the canvas's `change` listener, run in the page
CHOOSE_MODEL_JS = web_file("choose_model.js")   # tells the page which model to load
SHOW_WHY_JS = web_file("show_why.js")     # tells the canvas whether pen-up asks for an explanation
EXPLAIN_EVENT_JS = web_file("explain_event.js")   # the canvas's `submit` listener: "Show why" in the page
