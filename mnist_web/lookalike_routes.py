"""What the page needs to find look-alikes itself: GET /mnist/lookalikes?key=K (the model's quantised
feature index of the training digits) and GET /mnist/digits?ids=1,2,3 (those digits' 28x28 pixels).

/mnist/lookalikes: the key is the model picker's, never a path (unknown: 404 with the picker's message).
The body is binary, little-endian (INDEX_MAGIC, then uint32 N and D, D float32 scales, D float32 a and
D float32 b, N uint8 labels, N x D int8 codes: about 1 MB for MNIST's 60,000): exactly the codes the
server searches (mnist_core/insight.py FeatureIndex), and a, b (mnist_core/fold.py pooled_affine) that
turn the page's pooled features into the server's, so the page finds the same nearest 8. An ETag (a hash of the body)
and `Cache-Control: no-cache` give a cheap 304 on revalidation; the body is a part of the model
(mnist_core/parts.py), kept and dropped with it. While the index is being built (once per model, in the
store's one background worker) the answer is 202 with {"note": INDEXING_NOTE} and Retry-After; without
MNIST on disk, 404 with the reason. The page asks /explain_strokes meanwhile (web/explain.js).

/mnist/digits: 1..MAX_IDS training-set indices -> their pixels, 784 uint8 bytes each, in the order asked.
A training digit never changes while the server runs: `Cache-Control: public, max-age=...,
immutable`.
"""
from __future__ import annotations

import hashlib
import struct

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mnist_core.checkpoint import CheckpointError
from mnist_core.data import DataError
from mnist_core.fold import pooled_affine
from mnist_core.insight import INDEXING_NOTE, FeatureIndex, InsightService
from mnist_core.predict import Predictor
from mnist_core.store import ModelStore

INDEX_PATH = "/mnist/lookalikes"
DIGITS_PATH = "/mnist/digits"
INDEX_MAGIC = b"MNLA1\0\0\0"
MAX_INDEX_BYTES = 2_000_000
MAX_KEY_CHARS = 300
MAX_IDS = 16                 # one explanation needs 8
MAX_IDS_CHARS = 200
DIGIT_MAX_AGE_S = 86_400 * 365
BUILDING_RETRY_S = 2


def index_body(index: FeatureIndex, predictor: Predictor) -> bytes:
    """The binary body described in the module's docstring."""
    n, d = index.codes.shape
    a, b = pooled_affine(predictor.model)
    return b"".join([INDEX_MAGIC, struct.pack("<II", n, d),
                     *(v.astype("<f4").tobytes() for v in (index.scale.numpy(), a, b)),
                     index.labels.numpy().astype("u1").tobytes(), index.codes.numpy().tobytes()])


def _tagged(body: bytes) -> tuple[str, bytes]:
    return f'"{hashlib.sha256(body).hexdigest()[:20]}"', body


def _error(message: str, status: int, **headers) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers or None)


class LookalikeEndpoints:
    """The two routes' handlers over the model store (keys, the model's parts) and the insight service
    (MNIST, the feature index)."""

    def __init__(self, registry: ModelStore, insight: InsightService) -> None:
        self.registry, self.insight = registry, insight

    def index(self, request: Request) -> Response:     # sync: Starlette runs it in its thread pool
        key = request.query_params.get("key", "")
        if not key or len(key) > MAX_KEY_CHARS or key not in self.registry.paths():
            shown = key if len(key) <= 80 else key[:80] + "..."
            return _error(f"No model called {shown!r}: pick one from the list.", 404)
        reason = self.insight.unavailable()
        if reason:
            return _error(f"No look-alikes: {reason}.", 404)
        try:
            predictor = self.registry.get(key)
            found = self.insight.ready_index(predictor)
        except CheckpointError as exc:
            return _error(f"Could not load that model: {exc}.", 404)
        except DataError as exc:
            return _error(f"No look-alikes: {str(exc).splitlines()[0]}", 404)
        if found is None:
            return JSONResponse({"note": INDEXING_NOTE}, status_code=202,
                                headers={"Retry-After": str(BUILDING_RETRY_S), "Cache-Control": "no-store"})
        etag, body = self.registry.part(predictor, "lookalike_body", lambda p: _tagged(index_body(found, p)))
        if len(body) > MAX_INDEX_BYTES:
            return _error("the look-alike index is over the page's size limit", 413)
        headers = {"ETag": etag, "Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        return Response(body, media_type="application/octet-stream", headers=headers)

    def digits(self, request: Request) -> Response:
        raw = request.query_params.get("ids", "")
        parts = raw.split(",") if raw and len(raw) <= MAX_IDS_CHARS else []
        if not parts or len(parts) > MAX_IDS or not all(p.isdecimal() and len(p) <= 6 for p in parts):
            return _error(f"ids: 1 to {MAX_IDS} training-digit numbers, comma-separated", 400)
        try:
            train, _ = self.insight.data()
        except DataError as exc:
            return _error(f"No training digits: {str(exc).splitlines()[0]}", 404)
        ids = [int(p) for p in parts]
        if max(ids) >= len(train.images):
            return _error(f"ids must be below {len(train.images)}", 404)
        body = b"".join(train.images[i].numpy().astype("u1").tobytes() for i in ids)
        return Response(body, media_type="application/octet-stream",
                        headers={"Cache-Control": f"public, max-age={DIGIT_MAX_AGE_S}, immutable",
                                 "X-Content-Type-Options": "nosniff"})


def lookalike_routes(registry: ModelStore, insight: InsightService) -> tuple[Route, Route]:
    """(the index route, the digits route)."""
    ends = LookalikeEndpoints(registry, insight)
    return Route(INDEX_PATH, ends.index, methods=["GET"]), Route(DIGITS_PATH, ends.digits, methods=["GET"])
