"""Presentation helpers for the app: pure functions from results to small HTML/table values.

Kept out of the UI code so the wiring stays wiring, and kept tiny on the wire: a per-stroke update sends
a few kilobytes of HTML (bars and a 28x28 PNG inline) instead of a plot spec and an image file. Their
look is in web/app.css (classes; a per-value width or shade is the only inline style). The page computes
the live prediction itself and shows it with prediction_html's twin, predictionHtml in web/kit.js.
"""
from __future__ import annotations

import base64
import html
import io

import numpy as np
from PIL import Image

from mnist_core.predict import Prediction

EMPTY_MESSAGE = "Draw a digit"
NOT_A_DIGIT = "Not a digit?"     # the headline when the drawing looks like no digit (mnist_core/novelty.py)
HISTORY_COLUMNS = ["epoch", "lr", "train loss", "train acc %", "test loss", "test acc %", "seconds"]


def png_data_uri(image28: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(np.clip(image28 * 255 + 0.5, 0, 255).astype(np.uint8), "L").save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def article(digit: int) -> str:
    """'a 7', 'an 8' (eight is the only digit whose name starts with a vowel sound)."""
    return f"an {digit}" if digit == 8 else f"a {digit}"


def label_value(pred: Prediction) -> dict | str:
    """gr.Label value: the headline plus all 10 confidences, or the empty message.

    {"label": "7", "confidences": {"0": p0, ..., "9": p9}, "not_a_digit": False, "novelty": 6.1}; when the
    model is unsure the headline is "7?" so the big label never looks confident, and "Not a digit?" when
    the drawing looks like no digit (the confidences still show the best guess; the app's Label subclass
    shows `label` as given and passes on not_a_digit and the score, None for a model without stats).
    """
    if pred.empty:
        return EMPTY_MESSAGE
    confidences = {str(d): float(p) for d, p in enumerate(pred.probabilities)}
    label = NOT_A_DIGIT if pred.not_a_digit else f"{pred.digit}?" if pred.unsure else str(pred.digit)
    return {"label": label, "confidences": confidences, "not_a_digit": pred.not_a_digit,
            "novelty": None if pred.novelty is None else round(pred.novelty, 6)}


def prediction_html(pred: Prediction, model_name: str = "") -> str:
    if pred.empty:
        headline = f"<b>{EMPTY_MESSAGE}</b> <span class='muted'>({html.escape(pred.reason)})</span>"
        bars, view = "", "<div class='mnist-view mnist-blank'></div>"
    else:
        (d, p), *_ = pred.top(1)
        headline = (f"<b>{NOT_A_DIGIT}</b> <span class='muted'>best guess: {article(d)} ({p:.0%})</span>"
                    if pred.not_a_digit else f"<b>Not sure</b>: maybe {article(d)} ({p:.0%})" if pred.unsure
                    else f"It's a <b>{d}</b> ({p:.1%})")
        rows = "".join(
            f"<div class='bar-row'><span>{i}</span><div class='bar'><div style='--width:{q * 100:.1f}%'></div></div>"
            f"<span>{q:.1%}</span></div>" for i, q in enumerate(pred.probabilities))
        bars = f"<div class='bars'>{rows}</div>"
        view = f"<img class='mnist-view' alt='what the network sees' src='{png_data_uri(pred.image)}'>"
    model = f"<div class='muted'>model: {html.escape(model_name)}</div>" if model_name else ""
    flags = (f"data-empty='{str(pred.empty).lower()}' data-unsure='{str(pred.unsure).lower()}' "
             f"data-not-a-digit='{str(pred.not_a_digit).lower()}'")
    return (f"<div class='prediction' {flags}>"
            f"<div class='headline'>{headline}</div><div class='pred-body'>{bars}"
            f"<figure>{view}<figcaption>what the network sees (28x28)</figcaption></figure></div>{model}</div>")


def short(text: str, limit: int = 80) -> str:
    """At most `limit` characters of user input in a message (never echo a whole payload)."""
    return text if len(text) <= limit else text[:limit] + "..."


def message_html(text: str) -> str:
    """A plain message in the prediction area (escaped: it may quote file names or errors)."""
    return f"<div class='prediction' data-empty='true'><div class='headline'>{html.escape(text)}</div></div>"


def history_rows(history: list[dict]) -> list[list]:
    return [[h["epoch"], round(h["lr"], 6), round(h["train_loss"], 4), round(h["train_accuracy"], 2),
             round(h["test_loss"], 4), round(h["test_accuracy"], 2), round(h["seconds"], 1)] for h in history]


def progress_html(state: str, message: str, batch: int = 0, batches: int = 0, eta: float | None = None) -> str:
    pct = 100.0 * batch / batches if batches else (100.0 if state == "finished" else 0.0)
    eta_text = f", about {eta:.0f} s left in this epoch" if eta is not None and state == "running" else ""
    detail = f" - batch {batch} of {batches}{eta_text}" if state == "running" and batches else ""
    return (f"<div class='train-status' data-state='{state}'>"
            f"<div class='status-text'>{html.escape(message)}{detail}</div>"
            f"<div class='progress'><div style='--width:{pct:.1f}%'></div></div></div>")


def confusion_html(matrix, title: str = "") -> str:
    """A 10x10 confusion matrix (rows = true digit, columns = what the model said) as an HTML heat map.

    The diagonal (right answers) is shaded green by row share; errors are shaded red by their count
    relative to the largest error, so the few mistakes stand out next to ~1,000 correct answers.
    """
    if matrix is None or len(matrix) == 0:
        return "<div class='confusion' data-empty='true'><i>No evaluation stored for this model.</i></div>"
    m = np.asarray(matrix, np.int64)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or (m < 0).any():
        raise ValueError(f"expected a square matrix of counts, got shape {m.shape}")
    n = m.shape[0]
    off = m.copy()
    np.fill_diagonal(off, 0)
    worst = max(int(off.max()), 1)
    total, right = int(m.sum()), int(np.trace(m))
    head = "".join(f"<th>{j}</th>" for j in range(n))
    rows = []
    for i in range(n):
        tds = []
        for j in range(n):
            v = int(m[i, j])
            if i == j:
                share = v / max(int(m[i].sum()), 1)
                bg = f"rgba(34,160,80,{0.15 + 0.45 * share:.2f})"
            elif v:
                bg = f"rgba(220,38,38,{0.15 + 0.75 * v / worst:.2f})"
            else:
                bg = ""
            shown = v if v or i == j else "&middot;"
            shade = f" style='--mnist-shade:{bg}'" if bg else ""
            tds.append(f"<td data-true='{i}' data-said='{j}' title='true {i}, predicted {j}: {v}'{shade}>{shown}</td>")
        rows.append(f"<tr><th>{i}</th>{''.join(tds)}</tr>")
    caption = (f"{html.escape(title) + ': ' if title else ''}{right:,} of {total:,} right "
               f"({100.0 * right / max(total, 1):.2f}%), {total - right} wrong")
    return (f"<div class='confusion-wrap'><div class='confusion-caption'>{caption}</div>"
            f"<table class='confusion' data-empty='false' data-errors='{total - right}'>"
            f"<thead><tr><th>true \\ said</th>{head}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table></div>")
