"""The tensor input pipeline: order, normalization, rotation (range, one angle per image, interpolation)."""
import pytest
import torch

from mnist_core.batches import TensorBatches, rotate
from mnist_core.config import MNIST_MEAN, MNIST_STD


def _line_angles(y):
    """Tilt (degrees) of a thin horizontal line in each [N,28,28] image."""
    rows = torch.arange(28.0)[:, None]
    left = (y[:, :, 4:8] * rows).sum((1, 2)) / y[:, :, 4:8].sum((1, 2))
    right = (y[:, :, 20:24] * rows).sum((1, 2)) / y[:, :, 20:24].sum((1, 2))
    return torch.rad2deg(torch.atan((right - left) / 16.0))


def _lines(n):
    x = torch.zeros(n, 1, 28, 28)
    x[:, :, 14, 2:26] = 1.0
    return x


def test_rotation_keeps_mass_and_stays_in_frame():
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(64, 1, 28, 28)
    x[:, :, 4:24, 11:17] = 1.0                    # an MNIST-sized upright stroke, 20 px tall
    y = rotate(x, 7.0, g)
    mass = y.sum((1, 2, 3)) / x.sum((1, 2, 3))
    assert torch.all((mass > 0.98) & (mass < 1.02))
    assert y[..., :2, :].abs().sum() == 0 and y[..., -2:, :].abs().sum() == 0   # nothing pushed to the border
    assert not torch.equal(y[0], y[1])             # one angle per image


@pytest.mark.parametrize("max_deg", [7.0, 30.0])
def test_rotation_angle_range(max_deg):
    # a thin horizontal line's tilt tells the angle: none beyond the range, both signs, most of the range used
    g = torch.Generator().manual_seed(1)
    slope = _line_angles(rotate(_lines(256), max_deg, g)[:, 0])
    assert slope.abs().max() < max_deg + 0.5
    assert slope.min() < -0.6 * max_deg and slope.max() > 0.6 * max_deg
    assert slope.mean().abs() < max_deg / 5        # centred on 0
    # the sign convention: a positive draw turns the line one way, a negative one the other way, not mirrored
    assert (slope > 1).sum() > 50 and (slope < -1).sum() > 50


def test_no_rotation_is_the_identity():
    x = torch.rand(4, 1, 28, 28)
    assert rotate(x, 0.0) is x
    assert rotate(x, -3.0) is x
    small = rotate(x, 0.5, torch.Generator().manual_seed(0))     # any positive range rotates
    assert small is not x and not torch.equal(small, x)


def test_nearest_rotation_only_moves_existing_values():
    # nearest sampling copies pixels: every output value is 0 or one of the input values
    g = torch.Generator().manual_seed(2)
    x = torch.zeros(8, 1, 28, 28)
    x[:, :, 6:22, 12:16] = 0.7
    y = rotate(x, 7.0, g, mode="nearest")
    vals = torch.unique(y)
    assert torch.all((vals == 0) | torch.isclose(vals, torch.tensor(0.7))) and len(vals) == 2
    # bilinear (the function's default) blends: values in between appear
    yb = rotate(x, 7.0, torch.Generator().manual_seed(2))
    assert len(torch.unique(yb)) > 10


def test_same_generator_seed_same_angles():
    a = rotate(_lines(16), 7.0, torch.Generator().manual_seed(5))
    b = rotate(_lines(16), 7.0, torch.Generator().manual_seed(5))
    c = rotate(_lines(16), 7.0, torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


def _u8(n):
    return torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(n))


def test_unshuffled_unrotated_batches_are_the_normalized_images_in_order():
    imgs, labels = _u8(10), torch.arange(10) % 7
    b = TensorBatches(imgs, labels, 4, shuffle=False)
    assert len(b) == 3
    got = list(b)
    assert [len(y) for _, y in got] == [4, 4, 2]
    x = torch.cat([x for x, _ in got])
    assert x.shape == (10, 1, 28, 28) and x.dtype == torch.float32
    assert torch.allclose(x, (imgs[:, None].float() / 255 - MNIST_MEAN) / MNIST_STD, atol=1e-6)
    assert torch.equal(torch.cat([y for _, y in got]), labels)


def test_own_normalization_constants_and_4d_input():
    imgs = _u8(3)[:, None]
    (x, _), = TensorBatches(imgs, torch.zeros(3, dtype=torch.long), 8, shuffle=False, mean=0.5, std=0.25)
    assert torch.allclose(x, (imgs.float() / 255 - 0.5) / 0.25, atol=1e-6)


@pytest.mark.parametrize("n,bs,batches", [(10, 3, 4), (9, 3, 3), (1, 64, 1), (64, 64, 1), (65, 64, 2)])
def test_length_and_every_sample_once_per_pass(n, bs, batches):
    imgs = torch.arange(n, dtype=torch.float32).div(n).mul(255).round().to(torch.uint8)[:, None, None].expand(n, 28, 28)
    labels = torch.arange(n)
    b = TensorBatches(imgs.contiguous(), labels, bs, generator=torch.Generator().manual_seed(0))
    assert len(b) == batches
    for _ in range(2):
        seen = [y for _, y in b]
        assert len(seen) == batches and all(len(y) <= bs for y in seen)
        assert sorted(torch.cat(seen).tolist()) == list(range(n))


def test_shuffled_batches_keep_images_with_their_labels_and_reshuffle_each_pass():
    n = 50
    imgs = torch.arange(n, dtype=torch.uint8)[:, None, None].expand(n, 28, 28).contiguous()
    labels = torch.arange(n)
    b = TensorBatches(imgs, labels, 8, generator=torch.Generator().manual_seed(3))
    orders = []
    for _ in range(2):
        xs, ys = zip(*b, strict=True)
        x, y = torch.cat(xs), torch.cat(ys)
        pixel = torch.round((x[:, 0, 5, 5] * MNIST_STD + MNIST_MEAN) * 255).long()
        assert torch.equal(pixel, y)                   # each image travels with its own label
        orders.append(y.tolist())
    assert orders[0] != list(range(n)) and orders[1] != list(range(n)) and orders[0] != orders[1]
    again = [y.tolist() for _, y in TensorBatches(imgs, labels, 8, generator=torch.Generator().manual_seed(3))]
    assert sum(again, []) == orders[0]                 # same seed, same order


def test_rotation_and_interpolation_reach_the_batches():
    n = 128
    imgs = torch.zeros(n, 28, 28, dtype=torch.uint8)
    imgs[:, 14, 2:26] = 255
    labels = torch.zeros(n, dtype=torch.long)
    for mode in ("nearest", "bilinear"):
        b = TensorBatches(imgs, labels, 64, rotation=10.0, generator=torch.Generator().manual_seed(0),
                          interpolation=mode)
        x = torch.cat([x for x, _ in b])[:, 0] * MNIST_STD + MNIST_MEAN
        angles = _line_angles(x.clamp(min=0))
        assert angles.abs().max() < 10.5 and angles.min() < -6 and angles.max() > 6
        levels = len(torch.unique(torch.round(x * 255)))
        assert (levels == 2) if mode == "nearest" else (levels > 10)
    default = torch.cat([x for x, _ in TensorBatches(imgs, labels, 64, rotation=10.0)])   # bilinear by default
    assert len(torch.unique(torch.round((default * MNIST_STD + MNIST_MEAN) * 255))) > 10
    unrotated = torch.cat([x for x, _ in TensorBatches(imgs, labels, 64, shuffle=False)])
    assert torch.allclose(unrotated[:, 0, 14, 2:26], torch.full((n, 24), (1 - MNIST_MEAN) / MNIST_STD))


def test_memory_format():
    # with one channel NCHW and NHWC have the same strides, so the layout request is accepted and harmless
    b = TensorBatches(_u8(4), torch.zeros(4, dtype=torch.long), 4, shuffle=False, memory_format=torch.channels_last)
    (x, _), = b
    assert x.is_contiguous(memory_format=torch.channels_last) and x.is_contiguous()
