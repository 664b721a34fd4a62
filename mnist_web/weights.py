"""GET /mnist/weights?key=K: the chosen model's folded weights for the page's own forward pass.

The key is the model picker's (the model store's keys: "shipped", "runs/<file>.pt"), never a path; an
unknown or unreadable key gets the picker's message with 404. The body is fold.payload (about 40 KB of
JSON: each layer's spec and weights, and the network view's stages, both derived from the one description
of the network in mnist_core/arch.py) plus what the page shows with it (the model's description, the
"not sure" threshold, the "not a digit" stats: novelty_payload, about 26 KB more), bounded by MAX_BYTES;
an ETag (a hash of the body, so it changes with anything in it) and `Cache-Control: no-cache` let the
browser keep it and revalidate with one cheap 304. The body is a part of the model (mnist_core/parts.py):
made once, kept and dropped with it by the store.
"""
from __future__ import annotations

import base64
import hashlib
import json

import numpy as np
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mnist_core.checkpoint import CheckpointError
from mnist_core.fold import payload
from mnist_core.predict import UNSURE_BELOW, Predictor
from mnist_core.store import ModelStore

PATH = "/mnist/weights"
MAX_BYTES = 100_000
MAX_KEY_CHARS = 300


def novelty_payload(predictor: Predictor) -> dict | None:
    """The model's "not a digit" stats for the page (mnist_core/novelty.py), or None without them: the
    threshold, the layers whose means are the features, and the class means [10 x D] and the whitening's
    upper triangle (row by row) as float32 in base64, the exact numbers the server computes with."""
    scorer = predictor.novelty
    if scorer is None:
        return None
    b64 = lambda a: base64.b64encode(np.ascontiguousarray(a, "<f4").tobytes()).decode()    # noqa: E731
    return {"kind": scorer.stats["kind"], "layers": list(scorer.stats["layers"]), "threshold": scorer.threshold,
            "features": int(scorer.means.shape[1]), "means": b64(scorer.means),
            "whiten": b64(scorer.whiten[np.triu_indices(len(scorer.whiten))])}


def weights_body(predictor: Predictor, key: str) -> bytes:
    data = payload(predictor.model, {"mean": predictor.mean, "std": predictor.std})
    data.update(key=key, description=predictor.description, unsure_below=UNSURE_BELOW,
                novelty=novelty_payload(predictor))
    return json.dumps(data, separators=(",", ":")).encode()


def tagged_body(predictor: Predictor) -> tuple[str, bytes]:
    """(ETag, body) of a model's weights (predictor.name is its key in the store)."""
    body = weights_body(predictor, predictor.name)
    return f'"{hashlib.sha256(body).hexdigest()[:20]}"', body


class WeightsEndpoint:
    """The route's handler; the body is a part of each loaded model (the store reloads a changed file)."""

    def __init__(self, registry: ModelStore) -> None:
        self.registry = registry

    def body(self, key: str) -> tuple[str, bytes]:
        return self.registry.part(self.registry.get(key), "weights", tagged_body)

    def handle(self, request: Request) -> Response:     # sync: Starlette runs it in its thread pool
        key = request.query_params.get("key", "")
        if not key or len(key) > MAX_KEY_CHARS or key not in self.registry.paths():
            shown = key if len(key) <= 80 else key[:80] + "..."
            return JSONResponse({"error": f"No model called {shown!r}: pick one from the list."}, status_code=404)
        try:
            etag, body = self.body(key)
        except CheckpointError as exc:
            return JSONResponse({"error": f"Could not load that model: {exc}."}, status_code=404)
        if len(body) > MAX_BYTES:
            return JSONResponse({"error": "the model's weights are over the page's size limit"}, status_code=413)
        headers = {"ETag": etag, "Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        return Response(body, media_type="application/json", headers=headers)


def weights_route(registry: ModelStore) -> Route:
    return Route(PATH, WeightsEndpoint(registry).handle, methods=["GET"])
