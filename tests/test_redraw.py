"""MNIST re-drawn as canvas strokes (mnist_core/redraw.py), the canvas model, and the picker's two built-ins."""
from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest
import torch

from mnist_core import redraw
from mnist_core.checkpoint import describe, load_checkpoint, model_from_checkpoint
from mnist_core.config import TrainConfig, total_steps, train_samples
from mnist_core.data import Split, load_mnist
from mnist_core.model import count_parameters
from mnist_core.registry import CANVAS_KEY, SHIPPED_KEY, ModelRegistry
from mnist_core.store import RunError
from mnist_core.train import Trainer
from tests.conftest import ROOT, synthetic_digits

CANVAS = ROOT / "checkpoints" / "mnist_canvas.pt"


def _split(n: int, seed: int) -> Split:
    images, labels = synthetic_digits(n, seed)
    return Split(torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64)))


def _grow(m: np.ndarray) -> np.ndarray:
    """A boolean image grown by one pixel to its 4 neighbours."""
    g = m.copy()
    for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0)):
        g |= np.roll(np.roll(m, dy, 0), dx, 1)
    return g


def _overlap(drawn: np.ndarray, original: np.ndarray) -> tuple[float, float]:
    """(share of the drawing's ink on the original's ink, share of the original's ink the drawing covers),
    each ink grown by one pixel: strokes of another width along the same skeleton still overlap fully."""
    d, o = drawn >= 128, original >= 128
    return (d & _grow(o)).sum() / max(d.sum(), 1), (o & _grow(d)).sum() / max(o.sum(), 1)


def test_a_traced_mnist_digit_drawn_back_lies_on_the_original(real_mnist):
    _, test = load_mnist(real_mnist, download=False)
    on, covered = [], []
    for i in range(60):
        d = test.images[i].numpy()
        img = redraw.render(redraw.digit_strokes(d), redraw.Style(height=0.6))   # the page's own brush
        a, b = _overlap(img, d)
        on.append(a)
        covered.append(b)
    assert np.median(on) > 0.95 and np.median(covered) > 0.9, (np.median(on), np.median(covered))
    assert min(on) > 0.6


def _zhang_suen_by_the_book(mask: np.ndarray) -> np.ndarray:
    """Zhang-Suen as published, pixel by pixel: each sub-iteration marks from the image as it was, then
    removes what it marked."""
    img = np.pad(mask.astype(int), 1)
    while True:
        changed = False
        for step in (0, 1):
            marked = []
            for r in range(1, img.shape[0] - 1):
                for c in range(1, img.shape[1] - 1):
                    if not img[r, c]:
                        continue
                    p = [img[r + dy, c + dx] for dy, dx in redraw.NEIGHBOURS]         # P2..P9
                    a = sum(p[k] == 0 and p[(k + 1) % 8] == 1 for k in range(8))
                    p2, p4, p6, p8 = p[0], p[2], p[4], p[6]
                    c1, c2 = (p2 * p4 * p6, p4 * p6 * p8) if step == 0 else (p2 * p4 * p8, p2 * p6 * p8)
                    if 2 <= sum(p) <= 6 and a == 1 and c1 == 0 and c2 == 0:
                        marked.append((r, c))
            for r, c in marked:
                img[r, c] = 0
            changed = changed or bool(marked)
        if not changed:
            return img[1:-1, 1:-1].astype(bool)


def test_thinning_by_table_equals_zhang_suen_by_the_book():
    rng = np.random.default_rng(0)
    masks = [rng.random((18, 18)) < rng.uniform(0.3, 0.8) for _ in range(12)]
    yy, xx = np.mgrid[0:24, 0:24]
    masks += [(xx - 12) ** 2 + (yy - 12) ** 2 <= 49, (np.abs(yy - 12) <= 2) & (xx > 2) & (xx < 21)]
    for m in masks:
        assert np.array_equal(redraw.thin(m), _zhang_suen_by_the_book(m))
    bar = redraw.thin(masks[-1])
    assert bar.sum() >= 12 and bar.any(1).sum() == 1                   # a thick bar thins to one line


def test_chain_joins_the_first_pair_that_meets_first():
    a, b, c = [(0, 0), (0, 5)], [(0, 6), (0, 9)], [(0, 7), (3, 7)]
    # a's end meets both b and c: a-b is the first pair; then (a+b)'s end (0, 9) meets c's start.
    # (a-c first would leave two lines: a+c ends at (3, 7), out of b's reach.)
    assert redraw.chain([a, b, c]) == [[(0, 0), (0, 5), (0, 6), (0, 9), (0, 7), (3, 7)]]
    assert redraw.chain([a, [(5, 5)]]) == [a, [(5, 5)]]                # nothing within reach: kept apart


def _holes(img: np.ndarray) -> int:
    """Background pixels (< 128) that no path of background pixels links to the image's border."""
    free = img < 128
    reach = np.zeros_like(free)
    reach[0, :], reach[-1, :], reach[:, 0], reach[:, -1] = free[0, :], free[-1, :], free[:, 0], free[:, -1]
    while True:
        grown = _grow(reach) & free
        if np.array_equal(grown, reach):
            return int((free & ~reach).sum())
        reach = grown


def _blob_six() -> np.ndarray:
    """A 6 written small and bold: a thin stem ending in a loop so filled in that no hole shows."""
    yy, xx = np.mgrid[0:28, 0:28]
    img = np.zeros((28, 28), np.float64)
    img[((xx - 12) ** 2 + (yy - 17) ** 2) <= 5.5 ** 2] = 255                    # the filled-in loop
    stem = (np.abs(xx - (12 + (17 - yy) * 0.45)) <= 1.2) & (yy >= 4) & (yy <= 17)
    img[stem & (xx >= 7)] = 255
    return img.astype(np.uint8)


def test_a_filled_in_loop_is_drawn_round_not_thinned_to_a_line(monkeypatch):
    """A blob-headed 6 re-drawn keeps a loop (a hole in the drawing), as its writer's pen went round;
    thinned plainly (no core cut), it became a hook with no hole: the 6 read as an L."""
    six = _blob_six()
    assert _holes(six) == 0
    drawn = redraw.render(redraw.digit_strokes(six), redraw.Style(height=0.6, brush=14))
    assert _holes(drawn) >= 2, drawn
    monkeypatch.setattr(redraw, "CORE", float("inf"))
    plain = redraw.render(redraw.digit_strokes(six), redraw.Style(height=0.6, brush=14))
    assert _holes(plain) == 0


def test_depth_is_the_distance_to_the_background():
    mask = np.zeros((9, 9), bool)
    mask[1:8, 1:8] = True
    d = redraw.depth(mask)
    assert d[4, 4] == 4 and d[1, 1] == 1 and d[2, 4] == 2 and d[0, 0] == 0


def test_drawn_sets_are_the_same_for_a_seed_and_differ_across_seeds(tmp_path):
    split = _split(40, 3)
    a, styles_a = redraw.drawn(split, 5, cache=tmp_path / "a", workers=1)
    b, styles_b = redraw.drawn(split, 5, cache=tmp_path / "b", workers=1)
    c, _ = redraw.drawn(split, 6, cache=tmp_path / "b", workers=1)
    assert torch.equal(a.images, b.images) and np.array_equal(styles_a, styles_b)
    assert torch.equal(a.labels, split.labels) and not torch.equal(a.images, c.images)
    assert a.images.dtype == torch.uint8 and a.images.shape == (40, 28, 28) and (a.images.amax((1, 2)) > 200).all()
    lo, hi = redraw.STYLE_RANGES["slant"]
    slant = styles_a[:, [f.name for f in dataclasses.fields(redraw.Style)].index("slant")]
    assert (slant >= lo).all() and (slant <= hi).all() and slant.std() > 0.05


def test_the_cache_is_rebuilt_when_missing_or_unreadable(tmp_path):
    split = _split(12, 4)
    first, _ = redraw.drawn(split, 1, cache=tmp_path, workers=1)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert [f.split("-")[0] for f in files] == ["drawn", "traced"]
    for f in tmp_path.iterdir():
        f.unlink()
    again, _ = redraw.drawn(split, 1, cache=tmp_path, workers=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == files and torch.equal(first.images, again.images)
    drawn_file = next(tmp_path.glob("drawn-*"))
    drawn_file.write_bytes(b"not an npz")
    third, _ = redraw.drawn(split, 1, cache=tmp_path, workers=1)
    assert torch.equal(first.images, third.images) and drawn_file.stat().st_size > 1000


def test_the_cache_is_never_written_under_the_data_root(tmp_path, monkeypatch):
    data_root = tmp_path / "data"
    (data_root / "MNIST" / "raw").mkdir(parents=True)
    with pytest.raises(ValueError, match="inside the data folder"):
        redraw.drawn(_split(3, 1), 1, cache=data_root / "cache", workers=1, data_root=data_root)
    assert list(data_root.rglob("*.npz")) == []
    monkeypatch.delenv(redraw.CACHE_ENV, raising=False)
    assert redraw.cache_dir() == ROOT / ".cache"
    assert "/.cache/" in (ROOT / ".gitignore").read_text().split()     # git-ignored: never in the repository
    monkeypatch.setenv(redraw.CACHE_ENV, str(tmp_path / "elsewhere"))
    assert redraw.cache_dir() == tmp_path / "elsewhere"


def test_with_drawn_adds_the_twins_of_the_digits_it_keeps(tmp_path):
    train = _split(30, 2)
    plain, none = redraw.with_drawn(train, 0.0)
    assert len(plain) == 30 and none == []
    mixed, sets = redraw.with_drawn(train, 0.5, limit=20, variants=2, cache=tmp_path, workers=1)
    assert len(mixed) == 30 and torch.equal(mixed.labels[:20], train.labels[:20])
    assert torch.equal(mixed.labels[20:], train.labels[:10])
    assert not torch.equal(mixed.images[20:], train.images[:10])
    assert len(sets) == 2 and torch.equal(sets[0], mixed.images[20:]) and not torch.equal(sets[0], sets[1])
    cfg = TrainConfig(drawn=0.5, max_train_samples=20, batch_size=10, epochs=2)
    assert train_samples(cfg, 30) == 30 and total_steps(cfg, 30) == 6


def test_restyle_moves_a_drawing_as_a_hand_would():
    d = redraw.payload([np.array([[100.0, 100.0], [100.0, 200.0]])], brush=20)
    slanted = redraw.restyle(d, slant=0.2)
    (x0, y0), (x1, y1) = slanted["strokes"][0]
    assert (y0, y1) == (100.0, 200.0) and x0 > 100 > x1          # the top leans right
    moved = redraw.restyle(d, shift=(0.1, 0.0), scale=0.5, brush=12)
    assert moved["brush"] == 12 and moved["strokes"][0] == [[132.0, 125.0], [132.0, 175.0]]


def test_a_run_with_drawn_twins_stores_its_drawn_test_metrics(synthetic_root, tmp_path, monkeypatch):
    monkeypatch.setenv(redraw.CACHE_ENV, str(tmp_path))
    train, test = load_mnist(synthetic_root, download=False)
    t = Trainer(TrainConfig(epochs=2, batch_size=64, drawn=1.0, drawn_variants=2, max_train_samples=300),
                train, test)
    assert len(t.train_batches.labels) == 600 and len(t.twins) == 2
    seen = []
    for _ in t.run():    # each epoch trains on the next style set of the twins
        seen.append(t.train_batches.images[300:, 0].clone())
    assert torch.equal(seen[0], t.twins[0]) and torch.equal(seen[1], t.twins[1])
    ck = t.checkpoint()
    assert ck["config"]["drawn"] == 1.0 and 0 <= ck["drawn_metrics"]["accuracy"] <= 100
    assert describe(ck).startswith(f"{ck['test_metrics']['accuracy']:.2f}% MNIST, "
                                   f"{ck['drawn_metrics']['accuracy']:.2f}% drawn")
    plain = Trainer(TrainConfig(epochs=1, max_train_samples=100), train, test)
    list(plain.run())
    assert "drawn_metrics" not in plain.checkpoint()


def test_the_picker_lists_both_shipped_models_with_both_accuracies(tmp_path, tiny_checkpoint, synthetic_root):
    shutil.copy(tiny_checkpoint, tmp_path / "recipe.pt")
    ck = load_checkpoint(tiny_checkpoint)
    ck["drawn_metrics"] = {"accuracy": 91.25}
    torch.save(ck, tmp_path / "canvas.pt")
    reg = ModelRegistry(tmp_path / "recipe.pt", tmp_path / "runs", canvas=tmp_path / "canvas.pt")
    labels = dict((k, label) for label, k in reg.choices())
    assert list(labels) == [SHIPPED_KEY, CANVAS_KEY]
    acc = ck["test_metrics"]["accuracy"]
    assert labels[CANVAS_KEY] == f"Canvas model ({acc:.2f}% MNIST, 91.25% drawn, 1 epoch)"
    assert labels[SHIPPED_KEY] == f"Recipe model ({acc:.2f}%, 1 epoch)"
    with pytest.raises(RunError, match="shipped model cannot be deleted"):
        reg.delete(CANVAS_KEY, "anyone")
    assert reg.export(CANVAS_KEY, tmp_path / "out").name == "mnist_canvas.pt"


# ------------------------------------------------------------------------------ the shipped canvas model
@pytest.fixture(scope="module")
def canvas():
    assert CANVAS.is_file(), "checkpoints/mnist_canvas.pt must be committed"
    return load_checkpoint(CANVAS)


def test_the_canvas_model_is_the_recipe_network_trained_with_its_drawn_twin(canvas):
    model = model_from_checkpoint(canvas)
    assert count_parameters(model) == 7416
    cfg = TrainConfig.from_dict(canvas["config"])
    assert cfg.drawn > 0 and cfg.epochs == 15 and cfg.lr == 0.02 and cfg.rotation == 7.0
    assert canvas["status"] == "complete" and canvas["drawn_metrics"]["total"] == 10_000


@pytest.mark.parametrize("name", ["mnist_canvas.pt", "mnist_cnn.pt"])
def test_both_shipped_models_stored_metrics_equal_an_evaluation(name, real_mnist):
    """MNIST test and drawn test (10,000 re-drawn test digits, redraw.DRAWN_TEST_SEED): the picker's
    labels are what an evaluation gives now."""
    from mnist_core.batches import TensorBatches
    from mnist_core.evaluate import evaluate

    ckpt = load_checkpoint(ROOT / "checkpoints" / name)
    _, test = load_mnist(real_mnist, download=False)
    model = model_from_checkpoint(ckpt)
    mnist = evaluate(model, TensorBatches(test.images, test.labels, 500, shuffle=False))
    assert mnist["correct"] == ckpt["test_metrics"]["correct"] and mnist["accuracy"] >= 99.4
    twin, _ = redraw.drawn(test, redraw.DRAWN_TEST_SEED, data_root=real_mnist)
    drawn = evaluate(model, TensorBatches(twin.images, twin.labels, 500, shuffle=False))
    assert drawn["correct"] == ckpt["drawn_metrics"]["correct"] and drawn["total"] == 10_000


def test_the_cli_evaluates_on_the_drawn_test_set_and_stores_it(tmp_path, tiny_checkpoint, synthetic_root,
                                                               monkeypatch, capsys):
    from mnist_core.cli import main

    monkeypatch.setenv(redraw.CACHE_ENV, str(tmp_path / "cache"))
    ckpt = tmp_path / "model.pt"
    shutil.copy(tiny_checkpoint, ckpt)
    assert main(["evaluate", "--checkpoint", str(ckpt), "--data-dir", str(synthetic_root), "--no-download",
                 "--drawn", "--store"]) == 0
    out = capsys.readouterr().out
    stored = load_checkpoint(ckpt)
    assert f"drawn test set accuracy {stored['drawn_metrics']['accuracy']:.2f}%" in out
    before = load_checkpoint(tiny_checkpoint)["state_dict"]
    assert stored["drawn_metrics"]["total"] == 300
    assert all(torch.equal(v, stored["state_dict"][k]) for k, v in before.items())   # the weights as they were


def test_the_canvas_model_is_the_apps_default_when_given(tmp_path, tiny_checkpoint):
    from mnist_core.cli import CANVAS_CHECKPOINT
    from mnist_web.services import AppOptions, build_services
    from mnist_web.serving import parse_args

    assert parse_args([]).canvas_checkpoint == str(CANVAS_CHECKPOINT)       # demo.py serves both
    shutil.copy(tiny_checkpoint, tmp_path / "canvas.pt")
    for canvas, default in ((tmp_path / "canvas.pt", CANVAS_KEY), (None, SHIPPED_KEY),
                            (tmp_path / "missing.pt", SHIPPED_KEY)):
        services = build_services(AppOptions(checkpoint=tiny_checkpoint, runs_dir=tmp_path / "runs",
                                             canvas=canvas, train_enabled=False))
        try:
            assert services.default_key == default
            assert [k for _, k in services.registry.choices()][:2] == ([SHIPPED_KEY, CANVAS_KEY] if default ==
                                                                      CANVAS_KEY else [SHIPPED_KEY])
        finally:
            services.close()
