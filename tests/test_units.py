"""The network view's server side: stage activations against PyTorch hooks and the folded numpy
reference, receptive-field boxes checked by autograd, the top-9 index (real MNIST: against an
independent computation on a random subset of the 60,000), /activations and /unit, bad input."""
from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch

from mnist_core.checkpoint import load_checkpoint
from mnist_core.data import DataError
from mnist_core.fold import fold, forward
from mnist_core.insight import InsightService
from mnist_core.predict import Predictor
from mnist_core.registry import ModelRegistry
from mnist_core.units import (
    CHANNELS,
    INDEXING_NOTE,
    MAP_STAGES,
    STAGES,
    TOP,
    UnitError,
    UnitIndex,
    UnitService,
    check_unit,
    receptive_field,
    stage_activations,
    unit_weights,
)
from mnist_web.network import NetworkHandlers
from tests.network_ref import hooked_stages

STROKE_ONE = json.dumps({"width": 320, "height": 320, "brush": 22, "strokes": [[[150, 40], [155, 160], [160, 280]]]})


@pytest.fixture(scope="module")
def predictor(shipped_checkpoint):
    return Predictor.from_file(shipped_checkpoint)


def random_digits(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 28, 28, generator=g) > 0.7).float() * torch.rand(n, 28, 28, generator=g)


def test_stage_activations_equal_hooks_and_the_folded_reference(predictor):
    images = random_digits(3)
    ref = hooked_stages(predictor.model, images, predictor.mean, predictor.std)
    layers = fold(predictor.model)
    for i, img in enumerate(images.numpy()):
        acts = stage_activations(predictor.model, img, predictor.mean, predictor.std)
        assert {k: list(v.shape) for k, v in acts.items()} == {
            n: [c] if size == 1 else [c, size, size] for n, c, size in STAGES}
        for name, a in acts.items():
            np.testing.assert_allclose(a, ref[name][i].numpy(), atol=1e-5, err_msg=name)
        logp, folded = forward(layers, img, predictor.mean, predictor.std)   # what the page computes
        for name, at in [("conv1", 0), ("conv2", 1), ("transition", 2), ("conv3", 3), ("conv4", 4), ("conv5", 5)]:
            np.testing.assert_allclose(acts[name], folded[at], atol=1e-4, err_msg=name)
        np.testing.assert_allclose(acts["gap"], folded[6].ravel(), atol=1e-4)
        np.testing.assert_allclose(acts["out"] - np.log(np.exp(acts["out"]).sum()), logp, atol=1e-4)


def _support(model, stage, y, x, image, mean=0.0, std=1.0):
    """(first row, last row, first column, last column) of the input pixels that reach cell (y, x)."""
    from mnist_core.units import _maps
    image = image.clone().requires_grad_(True)
    with torch.enable_grad():
        m = _maps(model, ((image - mean) / std).reshape(1, 1, 28, 28))[stage]
        (g,) = torch.autograd.grad(m[0, :, y, x].sum(), image)
    rows, cols = np.nonzero(g.abs().numpy() > 0)
    return rows.min(), rows.max(), cols.min(), cols.max()


def test_receptive_fields_are_the_model_comments_and_exact(predictor):
    """The box of every stage: the real model's gradients never leave it, and in a copy where every
    pixel reaches every cell it can (all weights 1, BatchNorm the identity, the max-pool an average
    pool over the same windows) they fill it exactly."""
    import copy

    assert [receptive_field(s)[2] for s in MAP_STAGES] == [3, 5, 6, 10, 14, 18, 22]
    dense = copy.deepcopy(predictor.model).eval()
    for mod in dense.modules():
        if isinstance(mod, torch.nn.Conv2d):
            torch.nn.init.ones_(mod.weight)
        elif isinstance(mod, torch.nn.BatchNorm2d):
            mod.reset_parameters()
            mod.running_var.fill_(1.0)
    dense.trans[1] = torch.nn.AvgPool2d(2)
    image = random_digits(1, 5)[0] * 0.5 + 0.25
    for s in MAP_STAGES:
        offset, stride, size = receptive_field(s)
        side = dict((n, z) for n, _, z in STAGES)[s]
        for (y, x) in [(0, 0), (side // 2, side - 1), (side - 1, 1)]:
            top, left = offset + y * stride, offset + x * stride
            box = (top, top + size - 1, left, left + size - 1)
            r0, r1, c0, c1 = _support(predictor.model, s, y, x, image, predictor.mean, predictor.std)
            assert r0 >= box[0] and r1 <= box[1] and c0 >= box[2] and c1 <= box[3], (s, y, x)
            assert _support(dense, s, y, x, torch.ones(28, 28)) == box, (s, y, x)


def test_check_unit_refuses_bad_requests():
    for stage, channel, words in [("conv9", 0, "unknown stage"), ("gap", 0, "unknown stage"),
                                  (None, 0, "unknown stage"), ("conv1", 8, "0-7"), ("conv2", -1, "0-15"),
                                  ("conv3", 1.5, "whole number"), ("conv3", True, "whole"), ("conv3", "2", "whole")]:
        with pytest.raises(UnitError, match=words):
            check_unit(stage, channel)
    assert check_unit("conv6", 15.0) == ("conv6", 15)


def test_unit_weights_are_the_folded_ones(predictor):
    w, b = unit_weights(predictor.model, "conv1", 3)
    np.testing.assert_allclose(w, predictor.model.conv1[0].weight[3].detach().numpy(), atol=1e-7)
    w, b = unit_weights(predictor.model, "conv4", 2)
    bn = predictor.model.conv3[2]
    a = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach().numpy()
    np.testing.assert_allclose(w, predictor.model.conv4[0].weight[2].detach().numpy() * a[:, None, None], atol=1e-6)
    assert w.shape == (16, 3, 3) and isinstance(b, float)
    assert unit_weights(predictor.model, "transition", 0)[0].shape == (16, 1, 1)


def test_index_on_synthetic_digits_is_exact(predictor):
    images = (random_digits(700, 3) * 255).to(torch.uint8)
    labels = torch.arange(700) % 10
    index = UnitIndex.build(predictor.model, images, labels, predictor.mean, predictor.std, batch=128)
    ref = hooked_stages(predictor.model, images.float() / 255, predictor.mean, predictor.std)
    assert index.channels == 88
    for s in MAP_STAGES:
        peaks = ref[s].flatten(2).max(2).values          # [N, C]
        want = torch.sort(peaks, 0, descending=True).values[:TOP].T.numpy()
        np.testing.assert_allclose(index.scores[s], want, atol=1e-5, err_msg=s)
        for c in (0, CHANNELS[s] - 1):
            for t in index.top(s, c):
                assert t.label == t.index % 10
                m = ref[s][t.index, c]
                assert abs(float(m[t.peak]) - t.score) < 1e-5 and abs(float(m.max()) - t.score) < 1e-5


@pytest.fixture(scope="module")
def real_index(real_mnist, predictor):
    service = InsightService(real_mnist)
    train, _ = service.data()
    t0 = time.perf_counter()
    index = UnitIndex.build(predictor.model, train.images, train.labels, predictor.mean, predictor.std)
    return index, train, time.perf_counter() - t0


def test_real_top9_are_the_best_of_the_60000(real_index, predictor):
    """Each channel's 9: their scores recomputed independently (hooks) match, the peak is where the index
    says, and no digit of a random 2,000-digit subset of the 60,000 beats the 9th best."""
    index, train, seconds = real_index
    assert len(train) == 60_000 and index.channels == 88
    assert index.nbytes < 20_000_000
    print(f"unit index: {seconds:.1f} s, {index.nbytes:,} bytes")
    subset = torch.from_numpy(np.random.default_rng(26).choice(60_000, 2000, replace=False))
    ref = hooked_stages(predictor.model, train.images[subset].float() / 255, predictor.mean, predictor.std)
    for s in MAP_STAGES:
        ninth = index.scores[s][:, TOP - 1]
        peaks = ref[s].flatten(2).max(2).values.numpy()           # [2000, C]
        for c in range(CHANNELS[s]):
            # a digit of the subset above the 9th best must be one of the 9 (it may well be)
            above = {int(i) for i in subset[peaks[:, c] > ninth[c] + 1e-5]}
            assert above <= set(index.indices[s][c].tolist()), (s, c, above)
        for c in range(CHANNELS[s]):
            top = index.top(s, c)
            assert len(top) == TOP and len({t.index for t in top}) == TOP
            got = hooked_stages(predictor.model, train.images[[t.index for t in top]].float() / 255,
                                predictor.mean, predictor.std)[s][:, c]
            for j, t in enumerate(top):
                assert t.label == int(train.labels[t.index])
                assert abs(float(got[j].max()) - t.score) < 1e-4 and abs(float(got[j][t.peak]) - t.score) < 1e-4
            assert all(a.score >= b.score for a, b in zip(top, top[1:], strict=False))


# ----------------------------------------------------------------------------------- the endpoints

@pytest.fixture(scope="module")
def handlers(shipped_checkpoint, synthetic_root, tmp_path_factory):
    registry = ModelRegistry(shipped_checkpoint, tmp_path_factory.mktemp("runs"))
    return NetworkHandlers(registry, UnitService(InsightService(synthetic_root)))


def test_activations_endpoint(handlers, predictor):
    out = handlers.activations(STROKE_ONE, "shipped")
    assert out["empty"] is False and out["shapes"]["conv6"] == [16, 4, 4] and out["shapes"]["out"] == [10]
    json.dumps(out)
    ref = hooked_stages(predictor.model, np.asarray(out["image"])[None], predictor.mean, predictor.std)
    for name, values in out["stages"].items():
        np.testing.assert_allclose(np.asarray(values), ref[name][0].numpy(), atol=1e-4, err_msg=name)
    assert handlers.activations(json.dumps({"width": 320, "height": 320, "brush": 22, "strokes": []}),
                                "shipped") == {"empty": True, "reason": "nothing drawn"}
    for strokes, key, words in [("{not json", "shipped", ""), (STROKE_ONE, "nope", "No model called 'nope'"),
                                (STROKE_ONE, None, "No model called"), ("[1, 2]", "shipped", "")]:
        got = handlers.activations(strokes, key)
        assert set(got) == {"error"} and words in got["error"] and "Traceback" not in got["error"], got


def test_unit_endpoint_note_then_nine(handlers):
    for args, words in [(("nope", "conv1", 0), "No model called"), (("shipped", "conv7", 0), "unknown stage"),
                        (("shipped", "conv1", 8), "0-7"), (("shipped", "conv2", "x"), "whole number")]:
        got = handlers.unit(*args)
        assert set(got) == {"error"} and words in got["error"], got
    first = handlers.unit("shipped", "conv5", 4)
    assert np.asarray(first["weights"]).shape == (8, 3, 3) and first["receptive_field"]["size"] == 18
    if not first["ready"]:
        assert first["note"] == INDEXING_NOTE and first["top"] == []
    deadline = time.time() + 60
    while not (got := handlers.unit("shipped", "conv5", 4))["ready"] and time.time() < deadline:
        time.sleep(0.2)
    assert got["ready"] and len(got["top"]) == TOP
    for t in got["top"]:
        top, left, size = t["box"]
        assert (top, left) == (2 * t["peak"][0], 2 * t["peak"][1]) and size == 18
        assert np.asarray(t["image"]).shape == (28, 28)
    json.dumps(got)


def test_unit_without_mnist_says_why(shipped_checkpoint, tmp_path):
    h = NetworkHandlers(ModelRegistry(shipped_checkpoint, tmp_path / "runs"), UnitService(InsightService(tmp_path)))
    got = h.unit("shipped", "conv1", 0)
    assert got["ready"] is False and got["note"].startswith("No top digits: MNIST is not on disk")
    with pytest.raises(DataError):
        h.units.index(h.registry.get("shipped"))


def test_service_builds_once_in_the_background(shipped_checkpoint, synthetic_root):
    service = UnitService(InsightService(synthetic_root))
    p = Predictor.from_checkpoint(load_checkpoint(shipped_checkpoint))
    assert service.ready(p) is None and service.ready(p) is None    # one build under way, not two
    deadline = time.time() + 60
    while (index := service.ready(p)) is None and time.time() < deadline:
        time.sleep(0.1)
    assert index is not None and service.ready(p) is index and index.channels == 88


def test_a_failed_index_build_says_so_instead_of_indexing_forever(shipped_checkpoint, synthetic_root, monkeypatch):
    """The data read but the build broke (here: out of memory, simulated): the unit view's note says so
    and stops promising an index; after units.RETRY_SECONDS the next call tries again."""
    from mnist_core import units as units_mod

    calls = []

    def broken(*a, **k):
        calls.append(1)
        raise MemoryError("cannot allocate 188 MB")

    monkeypatch.setattr(units_mod.UnitIndex, "build", staticmethod(broken))
    h = NetworkHandlers(ModelRegistry(shipped_checkpoint, synthetic_root / "runs"),
                        UnitService(InsightService(synthetic_root)))
    assert h.unit("shipped", "conv2", 3)["note"] == INDEXING_NOTE
    deadline = time.time() + 30
    while (got := h.unit("shipped", "conv2", 3))["note"] == INDEXING_NOTE and time.time() < deadline:
        time.sleep(0.05)
    assert got["ready"] is False and got["top"] == []
    assert got["note"].startswith("No top digits: finding them failed (cannot allocate 188 MB)"), got["note"]
    assert h.unit("shipped", "conv2", 3)["note"] == got["note"] and len(calls) == 1   # reported, not rebuilt
    monkeypatch.setattr(units_mod, "RETRY_SECONDS", 0)
    assert h.unit("shipped", "conv2", 3)["note"] == INDEXING_NOTE                   # later: one more try
    deadline = time.time() + 30
    while len(calls) < 2 and time.time() < deadline:
        time.sleep(0.05)
    assert len(calls) == 2


def test_activations_route_for_a_page_without_its_network(handlers, predictor):
    """POST /mnist/activations: the maps of a settled drawing as flat lists, equal to /activations (and
    so to PyTorch); bad bodies get one line and 400, a blank canvas says so."""
    from starlette.applications import Starlette
    from starlette.testclient import TestClient

    from mnist_core.raster import prepare_strokes
    from mnist_web.network import activations_route

    c = TestClient(Starlette(routes=[activations_route(handlers)]))
    seven = json.dumps({"width": 320, "height": 320, "brush": 22,
                        "strokes": [[[60, 50], [260, 50]], [[260, 50], [140, 280]]]})
    r = c.post("/mnist/activations", json={"strokes": seven, "key": "shipped"})
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    body = r.json()
    ref = hooked_stages(predictor.model, prepare_strokes(seven).image.reshape(1, 28, 28), predictor.mean, predictor.std)
    for name, values in body["stages"].items():
        want = ref[name][0].numpy().ravel()
        assert len(values) == want.size and np.abs(np.asarray(values) - want).max() < 1e-4 * max(1, np.abs(want).max())
    assert body["shapes"]["conv1"] == [8, 26, 26] and len(r.content) < 200_000
    blank = c.post("/mnist/activations", json={"strokes": "", "key": "shipped"}).json()
    assert blank["empty"] is True
    for bad, words in [(b"not json", "send JSON"), (json.dumps({"key": "shipped"}).encode(), "send JSON"),
                       (json.dumps({"strokes": seven, "key": "../etc"}).encode(), "No model called")]:
        r = c.post("/mnist/activations", content=bad)
        assert r.status_code == 400 and words in r.json()["error"] and "Traceback" not in r.text, r.text
