"""The network view's server side: /activations and /unit (Gradio API endpoints, for scripts) and
GET /mnist/unit (the same answer for the page, once per clicked channel), and POST /mnist/activations
(the maps of a settled drawing for a page that has no network of its own: its weights did not load).

Answers are plain JSON-able dicts; bad input gets {"error": "<one line>"}, never a stack trace.
"""
from __future__ import annotations

import json

import numpy as np
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mnist_core.checkpoint import CheckpointError
from mnist_core.data import DataError
from mnist_core.raster import prepare_strokes
from mnist_core.store import ModelStore
from mnist_core.strokes import StrokeError
from mnist_core.units import (
    INDEXING_NOTE,
    MAP_STAGES,
    STAGES,
    IndexFailed,
    UnitError,
    UnitService,
    check_unit,
    receptive_field,
    stage_activations,
    unit_weights,
)

from .views import short

UNIT_PATH = "/mnist/unit"
ACTIVATIONS_PATH = "/mnist/activations"


class NetworkHandlers:
    def __init__(self, registry: ModelStore, units: UnitService) -> None:
        self.registry, self.units = registry, units

    def _predictor(self, key):
        if not isinstance(key, str) or key not in self.registry.paths():
            raise UnitError(f"No model called {short(str(key))!r}: pick one from the list.")
        try:
            return self.registry.get(key)
        except CheckpointError as exc:
            raise UnitError(f"Could not load that model: {exc}.") from None

    def activations(self, strokes: str, model_key: str) -> dict:
        """/activations: strokes (the canvas's JSON) + model key -> every stage's output for the drawing's
        28x28 view: {"stages": {name: nested lists [channels][h][w] (gap, out: [channels])}, "shapes",
        "image": the 28x28 view}; {"empty": true, "reason"} for a blank canvas; {"error"} for bad input."""
        try:
            predictor = self._predictor(model_key)
            prepared = prepare_strokes(strokes)
            if prepared.empty:
                return {"empty": True, "reason": prepared.reason}
            acts = stage_activations(predictor.model, prepared.image, predictor.mean, predictor.std)
        except (UnitError, StrokeError) as exc:
            return {"error": str(exc)}
        return {"empty": False, "model": model_key, "image": prepared.image.round(6).tolist(),
                "shapes": {k: list(v.shape) for k, v in acts.items()},
                "stages": {k: v.tolist() for k, v in acts.items()}}

    def unit(self, model_key: str, stage: str, channel: int) -> dict:
        """/unit: a channel's incoming weights (BatchNorm-folded, as the page computes) and, once the
        model's index is built, its top 9 training digits by peak activation (index, label, score, peak
        cell, receptive-field box (top, left, size) in the 28x28 digit, and the digit's pixels)."""
        try:
            predictor = self._predictor(model_key)
            stage, channel = check_unit(stage, channel)
        except UnitError as exc:
            return {"error": str(exc)}
        w, b = unit_weights(predictor.model, stage, channel)
        offset, stride, size = receptive_field(stage)
        out = {"model": model_key, "stage": stage, "channel": channel, "weights": w.tolist(), "bias": b,
               "receptive_field": {"offset": offset, "stride": stride, "size": size}, "ready": False, "note": "",
               "top": []}
        reason = self.units.insight.unavailable()
        if reason:
            out["note"] = f"No top digits: {reason}."
            return out
        try:
            index = self.units.ready(predictor)
        except DataError as exc:
            out["note"] = f"No top digits: {str(exc).splitlines()[0]}"
            return out
        except IndexFailed as exc:
            out["note"] = f"No top digits: finding them failed ({exc}); the server tries again in a minute."
            return out
        if index is None:
            out["note"] = INDEXING_NOTE
            return out
        images = self.units.insight.data()[0].images
        out["ready"] = True
        out["top"] = [{"index": t.index, "label": t.label, "score": t.score, "peak": list(t.peak),
                       "box": list(t.box), "image": images[t.index].tolist()} for t in index.top(stage, channel)]
        return out


ACTIVATIONS_USAGE = 'send JSON: {"strokes": "<the canvas JSON>", "key": "<model key>"}'


def activations_query(raw: bytes) -> tuple[object, object]:
    """The request body -> (strokes, key); ValueError with the usage line for anything else, whatever
    went wrong in parsing (not JSON, not UTF-8, nested past the parser's depth, not an object)."""
    try:
        q = json.loads(raw)
        return q["strokes"], q["key"]
    except (ValueError, KeyError, TypeError, IndexError, RecursionError):
        raise ValueError(ACTIVATIONS_USAGE) from None


def maps_json(body: dict) -> str:
    """/activations' answer for the page as JSON text: every stage as one flat list (channel-major), 5
    significant digits (~93 KB for all nine stages), written directly rather than formatting floats and
    then rendering them again: half the time, which a flood of requests holds the GIL for."""
    if "stages" not in body:
        return json.dumps(body)
    rest = json.dumps({k: v for k, v in body.items() if k not in ("stages", "image")})
    stages = ",".join(json.dumps(k) + ":[" + ",".join(f"{x:.5g}" for x in np.asarray(v, np.float32).ravel().tolist())
                      + "]" for k, v in body["stages"].items())
    return rest[:-1] + ("," if rest != "{}" else "") + '"stages":{' + stages + "}}"


def activations_answer(handlers: NetworkHandlers, strokes, key) -> Response:
    """The maps as the page reads them, computed and rendered in a worker thread (about 19k numbers
    formatted: work that must not run on the event loop)."""
    body = handlers.activations(strokes, key)
    return Response(maps_json(body), status_code=400 if "error" in body else 200, media_type="application/json",
                    headers={"Cache-Control": "no-store"})


def activations_route(handlers: NetworkHandlers) -> Route:
    async def handle(request: Request) -> JSONResponse:
        try:
            strokes, key = activations_query(await request.body())
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return await run_in_threadpool(activations_answer, handlers, strokes, key)

    return Route(ACTIVATIONS_PATH, handle, methods=["POST"])


def unit_route(handlers: NetworkHandlers) -> Route:
    def handle(request: Request) -> JSONResponse:       # sync: Starlette runs it in its thread pool
        q = request.query_params
        try:
            channel = int(q.get("channel", ""))
        except ValueError:
            channel = q.get("channel", "")
        body = handlers.unit(q.get("key", ""), q.get("stage", ""), channel)
        return JSONResponse(body, status_code=400 if "error" in body else 200)

    return Route(UNIT_PATH, handle, methods=["GET"])


__all__ = ["MAP_STAGES", "STAGES", "NetworkHandlers", "activations_route", "unit_route"]
