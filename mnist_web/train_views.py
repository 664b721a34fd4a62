"""The Train tab's data, as pure functions: live curves, status line, the queue's words, per-class bars,
confusion heat map, SVG line charts (their static style: web/charts.css).

Live curves. The Trainer reports the epoch's *cumulative* mean loss and accuracy every few batches;
`Curves` turns two such reports into the mean over the batches between them (differences of the
cumulative sums), so each train point is the plain mean over its window of about `window` batches
(a boxcar smoothing: ~1,900-4,500 images at batch 64, readable without hiding trends) and no point reuses
another's batches. x is the fractional epoch, epoch - 1 + batch / batches. Test loss and accuracy
arrive once per epoch, at x = epoch. The point count is capped: the window widens for long runs so
that a whole run stays under MAX_TRAIN_POINTS per series, so every update is a small, bounded table.
"""
from __future__ import annotations

import html
import math

from . import views

MAX_TRAIN_POINTS = 240     # per series, for a whole run: 14 an epoch for the recipe's 15; every stream
                           # message (the last repeats every value) stays under 20 KB (tests/test_train_stream.py)
MIN_WINDOW = 30            # batches per train point: ~0.25 s at batch 64 on the 2-core CPU


def window_for(epochs: int, batches: int, every: int = 10) -> int:
    """Batches per train point: at least MIN_WINDOW, a multiple of the callback interval `every`, and
    wide enough that epochs x batches / window <= MAX_TRAIN_POINTS (plus one end-of-epoch point each)."""
    room = max(1, MAX_TRAIN_POINTS - epochs)
    w = max(MIN_WINDOW, math.ceil(epochs * batches / room))
    return every * math.ceil(w / every)


class Curves:
    """Accumulates train points within epochs and test points per epoch; pure, no torch, no Gradio."""

    def __init__(self, epochs: int, samples: int, batch_size: int, every: int = 10) -> None:
        self.epochs, self.samples, self.batch_size = epochs, samples, batch_size
        self.batches = math.ceil(samples / batch_size)
        self.window = window_for(epochs, self.batches, every)
        self.train: list[tuple[float, float, float]] = []   # (x, loss, accuracy %)
        self.test: list[tuple[float, float, float]] = []
        self._epoch, self._last = 1, (0, 0, 0.0, 0.0)       # (done, seen, loss sum, correct) at the last point

    def seen(self, done: int) -> int:
        return min(done * self.batch_size, self.samples)

    def on_batch(self, epoch: int, done: int, total: int, mean_loss: float, mean_acc: float) -> bool:
        """Feed one progress report (cumulative means of the epoch so far). True if a point was added."""
        if epoch != self._epoch:
            self._epoch, self._last = epoch, (0, 0, 0.0, 0.0)
        seen = self.seen(done)
        loss_sum, correct = mean_loss * seen, mean_acc / 100.0 * seen
        d0, s0, l0, c0 = self._last
        if seen <= s0 or (done - d0 < self.window and done < total):
            return False
        n = seen - s0
        x = epoch - 1 + done / total
        self.train.append((round(x, 4), (loss_sum - l0) / n, 100.0 * (correct - c0) / n))
        self._last = (done, seen, loss_sum, correct)
        return True

    def on_epoch(self, record: dict) -> None:
        self.test.append((float(record["epoch"]), record["test_loss"], record["test_accuracy"]))
        self._epoch, self._last = record["epoch"] + 1, (0, 0, 0.0, 0.0)


def _r(v: float, digits: int = 4) -> float:
    return float(f"{v:.{digits}g}")


def curves_value(epochs: int, train: list[tuple], test: list[tuple]) -> dict:
    """The curves as the /train API streams them (a gr.JSON output): {"epochs": E, "train": [[x, loss,
    accuracy %], ...], "test": [[epoch, test loss, test accuracy %], ...]}, 4 significant digits."""
    return {"epochs": epochs, "train": [[p[0], _r(p[1]), _r(p[2])] for p in train],
            "test": [[p[0], _r(p[1]), _r(p[2])] for p in test]}


def status_html(state: str, message: str, batch: int = 0, batches: int = 0, eta: float | None = None,
                images_per_s: float | None = None, progress: float | None = None,
                position: int | None = None) -> str:
    """The status line: message, batch within the epoch, ETA of the whole run, images/s, progress bar.

    Keeps views.progress_html's structure (div.train-status[data-state]) so existing clients parse it.
    progress: fraction of the whole run done (0-1); defaults to the batch fraction of the epoch.
    Queued: data-position (1 = next in line) and data-eta (seconds until it starts, when known).
    The bar's width is its one number, --width (web/charts.css draws the bar).
    """
    if progress is None:
        progress = batch / batches if batches else (1.0 if state == "finished" else 0.0)
    parts = []
    if state == "running" and batches:
        parts.append(f"batch {batch} of {batches}")
        if images_per_s:
            parts.append(f"{images_per_s:,.0f} images/s")
        if eta is not None:
            parts.append(f"about {format_seconds(eta)} left")
    detail = (" - " + ", ".join(parts)) if parts else ""
    eta_attr = f" data-eta='{eta:.1f}'" if eta is not None and state in ("running", "queued") else ""
    if state == "queued" and position is not None:
        eta_attr += f" data-position='{int(position)}'"
    return (f"<div class='train-status' data-state='{state}'{eta_attr}><div class='status-text'>"
            f"{html.escape(message)}{html.escape(detail)}</div>"
            f"<div class='progress'><div style='--width:{100 * min(1.0, max(0.0, progress)):.1f}%'></div></div></div>")


def queue_html(status: dict) -> str:
    """The Train tab's line on the server's training queue (the same numbers as GET /queue_status)."""
    text = counts_text(status["running"], status["waiting"], status["slots"], status["where"])
    return (f"<div class='queue-info' data-running='{int(status['running'])}' "
            f"data-waiting='{int(status['waiting'])}' data-slots='{int(status['slots'])}'>{html.escape(text)}</div>")


def format_seconds(s: float) -> str:
    s = max(0, round(s))
    return f"{s} s" if s < 60 else f"{s // 60} min {s % 60:02d} s"


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def queued_message(position: int, wait: float | None, running: int, waiting: int) -> str:
    where = "next in line" if position == 1 else f"{ordinal(position)} in line"
    when = f"starts in about {format_seconds(wait)}" if wait is not None else "starts when the cluster has room"
    return f"Queued: {where}, {when} ({running} running, {waiting} waiting). Stop takes it out of the queue."


def counts_text(running: int, waiting: int, slots: int, backend: str) -> str:
    runs = "run" if running == 1 else "runs"
    return (f"Training on this server: {running} {runs} going, {waiting} waiting "
            f"({slots} at a time: {backend}).")


def per_class_rows(test_metrics: dict | None) -> list[list]:
    """[digit, accuracy %] for a bar chart, from a checkpoint's test_metrics (empty when absent)."""
    per = (test_metrics or {}).get("per_class_accuracy")
    if not per:
        return []
    return [[str(d), round(float(a), 2)] for d, a in enumerate(per) if a == a]  # NaN: digit absent from the test set


def confusion_html(test_metrics: dict | None, title: str = "") -> str:
    """A run's confusion matrix (rows: true digit, columns: predicted) as the app's heat map."""
    return views.confusion_html((test_metrics or {}).get("confusion_matrix"), title)


# ------------------------------------------------------------------------------ SVG line charts
# Small server-rendered charts: integer epoch ticks (Gradio's LinePlot picks fractional ticks for short
# runs and offers no tick step), a bounded size (~10 bytes per point), and data-* attributes that tests
# and scripts can read. One <path> per series, test series also get a dot per epoch.
PALETTE = ["#f97316", "#2563eb", "#16a34a", "#9333ea", "#dc2626", "#0891b2", "#ca8a04", "#db2777"]
W, H, ML, MR, MT, MB = 560, 250, 52, 12, 30, 34   # viewBox and margins; charts.css: at most W px wide


def nice_step(span: float, count: int) -> float:
    raw = span / max(1, count)
    mag = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    return next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)


def epoch_ticks(x_max: float) -> list[int]:
    """Whole-epoch ticks from 0 to x_max, at most ~10 of them (step 1, 2, 5, 10...)."""
    top = max(1, math.ceil(x_max))
    step = max(1, int(nice_step(top, 10)))
    return list(range(0, step * math.ceil(top / step) + 1, step))


THIS_RUN_COLORS = {"train (this run)": "#f97316", "test (this run)": "#16a34a"}


def line_chart(series: list[tuple[str, list[tuple[float, float]], bool]], title: str, x_max: float,
               elem: str = "chart") -> str:
    """series: (name, [(x, y), ...], dots) in drawing order. Returns an SVG inside a div.chart.
    The current run keeps its colours (THIS_RUN_COLORS); other series take the palette in order."""
    pts = [p for _, ps, _ in series for p in ps]
    ticks = epoch_ticks(max([x_max] + [x for x, _ in pts]))
    x1 = ticks[-1]
    if pts:
        lo, hi = min(y for _, y in pts), max(y for _, y in pts)
    else:
        lo, hi = 0.0, 1.0
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    ystep = nice_step(hi - lo, 4)
    y0, y1 = math.floor(lo / ystep) * ystep, math.ceil(hi / ystep) * ystep
    pw, ph = W - ML - MR, H - MT - MB

    def sx(x):
        return ML + pw * x / x1

    def sy(y):
        return MT + ph * (1 - (y - y0) / (y1 - y0))

    out = [f"<svg viewBox='0 0 {W} {H}' role='img' aria-label='{html.escape(title)}'>",   # sized by charts.css
           f"<text x='{ML}' y='14' font-weight='bold' font-size='13'>{html.escape(title)}</text>"]
    # grid lines and ticks as one path each, labels grouped: the fixed part of a chart is ~1.5 KB, and
    # the last message of a stream carries two charts in full (tests/test_train_stream.py)
    ys = []
    y = y0
    while y <= y1 + ystep / 2:
        ys.append(y)
        y += ystep
    out.append(f"<path d='{''.join(f'M{ML},{sy(v):.0f}H{W - MR}' for v in ys)}' stroke='#e5e7eb'/>"
               "<g text-anchor='end'>"
               + "".join(f"<text x='{ML - 4}' y='{sy(v) + 4:.0f}'>{v:.4g}</text>" for v in ys) + "</g>")
    out.append(f"<path d='{''.join(f'M{sx(t):.0f},{MT + ph}v4' for t in ticks)}' stroke='#6b7280'/>"
               f"<g text-anchor='middle'>"
               + "".join(f"<text class='xtick' x='{sx(t):.0f}' y='{MT + ph + 16}'>{t}</text>" for t in ticks) + "</g>")
    out.append(f"<text x='{ML + pw / 2}' y='{H - 2}' text-anchor='middle'>epoch</text>")
    legend_x = ML + 8
    others = [c for c in PALETTE if c not in THIS_RUN_COLORS.values()]
    k = 0
    for name, ps, dots in series:
        color = THIS_RUN_COLORS.get(name)
        if color is None:
            color, k = others[k % len(others)], k + 1
        xy = [(round(sx(x)), round(sy(v))) for x, v in ps]   # whole pixels, relative moves: ~7 bytes a point
        d = "".join(f"M{a},{b}" if j == 0 else f"l{a - xy[j - 1][0]},{b - xy[j - 1][1]}" for j, (a, b) in enumerate(xy))
        out.append(f"<path class='series' data-series='{html.escape(name)}' data-points='{len(ps)}' d='{d}' "
                   f"fill='none' stroke='{color}' stroke-width='{2 if dots else 1.5}'/>")
        if dots and len(ps) <= 60:
            out.append(f"<g fill='{color}'>" + "".join(f"<circle cx='{a}' cy='{b}' r='3'/>" for a, b in xy) + "</g>")
        out.append(f"<rect x='{legend_x}' y='{MT - 9}' width='10' height='3' fill='{color}'/>"
                   f"<text x='{legend_x + 13}' y='{MT - 5}'>{html.escape(name)}</text>")
        legend_x += 22 + 6 * len(name)
    out.append("</svg>")
    return f"<div class='chart' id='{elem}-svg' data-series-count='{len(series)}'>{''.join(out)}</div>"


def curve_charts(train: list[tuple], test: list[tuple], epochs: int,
                 overlays: list[tuple[str, list[dict]]] = ()) -> tuple[str, str]:
    """(loss chart, accuracy chart) of the current run, with earlier runs' test curves overlaid."""
    charts = []
    for i, metric, title in ((1, "loss", "Loss"), (2, "accuracy", "Accuracy (%)")):
        series = [(f"test: {name}", [(float(h["epoch"]), h[f"test_{metric}"]) for h in hist], False)
                  for name, hist in overlays]
        series.append(("train (this run)", [(p[0], p[i]) for p in train], False))
        series.append(("test (this run)", [(p[0], p[i]) for p in test], True))
        charts.append(line_chart(series, title, epochs, f"{metric}-chart"))
    return charts[0], charts[1]


def compare_charts(overlays: list[tuple[str, list[dict]]]) -> tuple[str, str]:
    """(test accuracy chart, test loss chart) of the selected runs."""
    x_max = max([len(h) for _, h in overlays] + [1])
    out = []
    for metric, title in (("accuracy", "Test accuracy (%)"), ("loss", "Test loss")):
        series = [(name, [(float(h["epoch"]), h[f"test_{metric}"]) for h in hist], True) for name, hist in overlays]
        out.append(line_chart(series, title, x_max, f"compare-{metric}"))
    return out[0], out[1]
