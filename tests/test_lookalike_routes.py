"""GET /mnist/lookalikes and GET /mnist/digits (mnist_web/lookalike_routes.py): the note while the index is
built, the binary index (the codes the server searches), ETag / 304, unknown keys, the digits' bounds and
caching, no MNIST on disk."""
from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from starlette.applications import Starlette
from starlette.testclient import TestClient

from mnist_core.fold import pooled_affine
from mnist_core.insight import INDEXING_NOTE, InsightService, quantise
from mnist_core.registry import ModelRegistry
from mnist_web.lookalike_routes import DIGITS_PATH, INDEX_MAGIC, INDEX_PATH, MAX_IDS, lookalike_routes


@pytest.fixture(scope="module")
def served(tmp_path_factory, synthetic_root, shipped_checkpoint):
    registry = ModelRegistry(shipped_checkpoint, tmp_path_factory.mktemp("runs"))
    insight = InsightService(synthetic_root, parts=registry)
    with TestClient(Starlette(routes=list(lookalike_routes(registry, insight)))) as client:
        yield client, registry, insight


def index_response(client, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while True:
        r = client.get(INDEX_PATH, params={"key": "shipped"})
        if r.status_code != 202 or time.monotonic() > deadline:
            return r
        time.sleep(0.1)


def parse(body: bytes):
    n, d = np.frombuffer(body[8:16], "<u4")
    floats = np.frombuffer(body[16:16 + 12 * d], "<f4").reshape(3, d)
    labels = np.frombuffer(body[16 + 12 * d:16 + 12 * d + n], np.uint8)
    codes = np.frombuffer(body[16 + 12 * d + n:], np.int8).reshape(n, d)
    return floats, labels, codes


def test_index_says_it_is_being_built_then_serves_the_searched_codes(served):
    client, registry, insight = served
    first = client.get(INDEX_PATH, params={"key": "shipped"})
    assert first.status_code == 202 and first.json() == {"note": INDEXING_NOTE}
    assert first.headers["retry-after"] and first.headers["cache-control"] == "no-store"
    r = index_response(client)
    assert r.status_code == 200 and r.headers["content-type"] == "application/octet-stream"
    body = r.content
    assert body[:8] == INDEX_MAGIC
    (scale, a, b), labels, codes = parse(body)
    predictor = registry.get("shipped")
    index = insight.feature_index(predictor)
    assert codes.shape == (len(index), 16) and len(body) == 16 + 12 * 16 + 17 * len(index)
    assert np.array_equal(codes, index.codes.numpy()) and np.array_equal(labels, index.labels.numpy())
    assert np.allclose(scale, index.scale.numpy())
    # a, b: the head's folded BatchNorm (the page's pooled output -> the model's features; the browser
    # test shows the page then finds the server's 8)
    expected_a, expected_b = pooled_affine(predictor.model)
    assert np.allclose(a, expected_a) and np.allclose(b, expected_b) and not np.allclose(a, 1.0)

def test_index_etag_304_and_unknown_keys(served):
    client, _, _ = served
    r = index_response(client)
    etag = r.headers["etag"]
    assert r.headers["cache-control"] == "no-cache"
    again = client.get(INDEX_PATH, params={"key": "shipped"}, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    for bad in ("", "nope", "runs/none.pt", "../checkpoints/mnist_cnn.pt", "x" * 400):
        r = client.get(INDEX_PATH, params={"key": bad})
        assert r.status_code == 404 and "pick one" in r.json()["error"], bad
    assert client.get(INDEX_PATH).status_code == 404


def test_digits_by_id_cacheable_and_bounded(served):
    client, _, insight = served
    train, _ = insight.data()
    r = client.get(DIGITS_PATH, params={"ids": "3,0,3"})
    assert r.status_code == 200
    assert "immutable" in r.headers["cache-control"] and "max-age=" in r.headers["cache-control"]
    got = np.frombuffer(r.content, np.uint8).reshape(3, 28, 28)
    assert np.array_equal(got, train.images[[3, 0, 3]].numpy())
    ok = ",".join(["1"] * MAX_IDS)
    assert client.get(DIGITS_PATH, params={"ids": ok}).status_code == 200
    for bad in ("", ok + ",1", "1,,2", "-1", "1.5", "a", "1 2", "9" * 7):
        assert client.get(DIGITS_PATH, params={"ids": bad}).status_code == 400, bad
    assert client.get(DIGITS_PATH, params={"ids": str(len(train.images))}).status_code == 404


def test_without_mnist_both_routes_say_why(tmp_path, shipped_checkpoint):
    registry = ModelRegistry(shipped_checkpoint, tmp_path / "runs")
    insight = InsightService(tmp_path / "no-data", parts=registry)
    with TestClient(Starlette(routes=list(lookalike_routes(registry, insight)))) as client:
        r = client.get(INDEX_PATH, params={"key": "shipped"})
        assert r.status_code == 404 and r.json()["error"].startswith("No look-alikes: MNIST is not on disk")
        r = client.get(DIGITS_PATH, params={"ids": "1"})
        assert r.status_code == 404 and "MNIST is not on disk" in r.json()["error"]


def test_quantised_codes_are_within_half_a_step():
    f = torch.randn(500, 16)
    f = f / f.norm(dim=1, keepdim=True)
    codes, scale = quantise(f)
    assert codes.dtype == torch.int8 and int(codes.abs().max()) == 127
    assert float((codes.float() * scale - f).abs().max()) <= float(scale.max()) / 2 + 1e-7
