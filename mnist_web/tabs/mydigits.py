"""The Draw tab's "teach it your handwriting" (issue 33): the "It's a ..." buttons under the label and the
My digits panel (the grid of your drawings, Teach, download and restore). API: /teach (a stream, like
/train), /download_digits, /restore_digits.

My digits are kept in the browser, not on the server (web/mydigits.js: localStorage, at most 500): the
buttons (or the keys 0-9 while the canvas has the focus) save the canvas's strokes with their label;
the grid shows each one as the network sees it (28x28, rasterised in the page by web/mnistnet.js) with
what the chosen model says of it now. The server sees them only when the visitor presses Teach (they
travel as /teach's input; mnist_web/teaching.py), Download or uploads a file to restore them.
Teach: the stream shows the queue and the run like the Train tab; when a run was saved, the visitor's
model becomes it (the picker, and the page loads its weights: CHOOSE_MODEL_JS).
"""
from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from mnist_core.teach import MAX_DRAWINGS

from ..assets import NET_HEAD, web_file
from ..components import CHOOSE_MODEL_JS
from ..services import Services
from ..train_views import status_html

CURRENT_JS = web_file("mydigits_current.js")   # the canvas's strokes, kept by web/mydigits.js
SEND_JS = web_file("mydigits_send.js")         # My digits and the chosen model, as an event's inputs
RESTORE_JS = web_file("mydigits_restore.js")   # an upload's drawings into My digits (or its error)


def digits_view(part: str, **kw) -> gr.HTML:
    """web/mydigits.js as a gr.HTML component: part "buttons" (It's a 0-9) or "panel" (the grid)."""
    return gr.HTML(value="", html_template=web_file("mydigits.html"), css_template=web_file("mydigits.css"),
                   js_on_load=web_file("mydigits.js"), head=NET_HEAD, apply_default_css=False, part=part,
                   limit=MAX_DRAWINGS, **kw)


def its_a_buttons() -> gr.HTML:
    """The ten "It's a ..." buttons (placed under the label by the Draw tab's layout)."""
    return digits_view("buttons", elem_id="its-a")


@dataclass
class MyDigits:
    """The My digits panel's Gradio components."""
    panel: gr.HTML          # the grid (web/mydigits.js)
    drawings: gr.JSON       # hidden: /teach's and /download_digits' drawings (filled by the page)
    model: gr.Textbox       # hidden: /teach's model key (filled by the page: the chosen model)
    teach: gr.Button | None  # None in read-only mode (no training queue)
    status: gr.HTML
    result: gr.JSON         # hidden: /teach's result (the saved run's key and the report at the end)
    download: gr.Button
    zip_file: gr.DownloadButton   # the zip made by Download (MNIST/raw/ and strokes.jsonl)
    upload: gr.UploadButton
    restored: gr.JSON       # hidden: /restore_digits' answer, handed to the page
    note: gr.Markdown


def mydigits_panel(services: Services) -> MyDigits:
    """The panel (an accordion below the Draw tab's canvas and label, closed until opened: the network view
    stays in sight under the drawing)."""
    teaching = services.options.train_enabled
    with gr.Accordion("My digits: your own drawings, to teach the model your handwriting", open=False,
                      elem_id="mydigits-panel"):
        panel = digits_view("panel", elem_id="mydigits")
        with gr.Row():
            teach = gr.Button("Teach the model my handwriting", variant="primary", elem_id="teach",
                              visible=teaching) if teaching else None
            download = gr.Button("Download as an MNIST data set (.zip)", elem_id="download-digits")
            upload = gr.UploadButton("Restore from a .zip or .jsonl", file_types=[".zip", ".jsonl"],
                                     file_count="single", type="filepath", elem_id="upload-digits")
        status = gr.HTML(status_html("idle", "Save some drawings with the It's a ... buttons, then teach.")
                         if teaching else "", elem_id="teach-status")
        with gr.Row():
            note = gr.Markdown(elem_id="mydigits-note")
            zip_file = gr.DownloadButton("Save my-digits.zip", value=None, elem_id="digits-zip", size="sm",
                                         scale=0, min_width=200)
        drawings = gr.JSON(visible=False, elem_id="mydigits-data")
        model = gr.Textbox(visible=False, elem_id="teach-model")
        result = gr.JSON(visible=False, elem_id="teach-result")
        restored = gr.JSON(visible=False, elem_id="restored-digits")
    return MyDigits(panel, drawings, model, teach, status, result, download, zip_file, upload, restored, note)


def wire_mydigits(services: Services, md: MyDigits, pad: gr.HTML, picker: gr.Dropdown, model_msg: gr.Markdown,
                  model_key: gr.State) -> None:
    """The canvas's strokes to the page's My digits; Teach, Download and Restore."""
    handlers = services.teach
    pad.change(None, [pad], None, js=CURRENT_JS, show_progress="hidden", api_visibility="private",
               trigger_mode="multiple")   # in the page: no request
    if md.teach is not None:
        md.teach.click(handlers.teach, [md.drawings, md.model], [md.status, md.result], js=SEND_JS,
                       api_name="teach", concurrency_limit=None, show_progress="hidden"   # the queue waits
                       ).then(handlers.taught, [md.result, model_key, model_msg], [model_key, picker, model_msg],
                              api_visibility="private", show_progress="hidden"
                       ).then(None, [picker], None, js=CHOOSE_MODEL_JS, api_visibility="private")
    md.download.click(handlers.download, [md.drawings, md.model], [md.zip_file, md.note], js=SEND_JS,
                      api_name="download_digits", concurrency_limit=2, show_progress="hidden")
    md.upload.upload(handlers.restore, [md.upload], [md.restored], api_name="restore_digits",
                     concurrency_limit=2, show_progress="hidden"
                     ).then(None, [md.restored], None, js=RESTORE_JS, api_visibility="private")
