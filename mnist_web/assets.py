"""The front end's files as strings for Gradio: web/*.css, *.html, *.js (no JS build, nothing from outside hosts).

- APP_CSS: the app-wide stylesheet, web/app.css (+ web/charts.css, the Train tab's charts), which Gradio 6
  takes at launch. All the app's CSS is in web/*.css: the gr.HTML components carry their own file
  (sketch.css, network.css, trainview.css), the Python views only name classes.
- KIT_HEAD / NET_HEAD / SKETCH_HEAD: the `head` of a gr.HTML component that uses the shared toolkit web/kit.js
  (window.MnistApp), and also the page's network web/mnistnet.js (window.MnistNet); SKETCH_HEAD, the
  canvas's: also "Show why" in the page, web/explain.js (window.MnistExplain). Gradio adds an inline
  head script to the document once however many components name it, before their js_on_load runs, so
  every component finds the toolkit whichever way the app is launched.
- APP_HEAD: what launch() adds to the page's <head>: web/owner.js, the visitor's owner token (the
  toolkit travels with its components).
"""
from __future__ import annotations

from pathlib import Path

WEB = Path(__file__).resolve().parent / "web"
APP_STYLESHEETS = ("app.css", "charts.css")   # charts.css: written by the Train tab's charts, when present


def web_file(name: str) -> str:
    return (WEB / name).read_text(encoding="utf-8")


def script_tag(name: str) -> str:
    """web/<name> as one inline <script> for a `head` (its text must not close the tag early)."""
    text = web_file(name)
    if "</script" in text.lower():
        raise ValueError(f"web/{name} contains '</script', which would end its inline <script> early")
    return f"<script>{text}</script>"


APP_CSS = "\n".join(web_file(name) for name in APP_STYLESHEETS if (WEB / name).is_file())
APP_HEAD = script_tag("owner.js")
KIT_HEAD = script_tag("kit.js")
NET_HEAD = KIT_HEAD + script_tag("mnistnet.js")
SKETCH_HEAD = NET_HEAD + script_tag("explain.js")
