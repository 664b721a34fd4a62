"""The multi-model trainer (K seeds as one batched network) is the single Trainer, K times over.

Checked on synthetic data against K=3 single `Trainer` runs: the same batches (data order and
rotation angles) bit for bit, the same initial weights, and after a few SGD steps over two epochs
(with a learning-rate step between them) the same weights, BatchNorm statistics and metrics. In
float64 the two agree to rounding (1e-9); in float32 the convolution kernels round differently and
a near-tie in a max-pool can amplify that over many steps, so float32 is checked on few steps only.
"""
import pytest
import torch

from mnist_core.config import ConfigError, TrainConfig
from mnist_core.data import Split
from mnist_core.model import Net
from mnist_core.multi import MultiNet, MultiTrainer
from mnist_core.train import Trainer
from tests.conftest import synthetic_digits

SEEDS = [1, 2, 3]


def _split(n: int, seed: int) -> Split:
    images, labels = synthetic_digits(n, seed)
    return Split(torch.from_numpy(images), torch.from_numpy(labels).long())


@pytest.fixture(scope="module")
def data():
    return _split(400, 0), _split(150, 1)


def _cfg(**kw) -> TrainConfig:
    base = dict(device="cpu", epochs=2, batch_size=64, max_train_samples=192, step_size=1, gamma=0.5)
    return TrainConfig(**{**base, **kw})


def _single(cfg: TrainConfig, seed: int, data, dtype=torch.float32) -> Trainer:
    trainer = Trainer(TrainConfig(**{**cfg.to_dict(), "seed": seed}), *data)
    if dtype != torch.float32:
        class Cast:  # the same batches, cast: Trainer itself always trains in float32
            def __init__(self, batches):
                self.batches = batches

            def __len__(self):
                return len(self.batches)

            def __iter__(self):
                return ((x.to(dtype), y) for x, y in self.batches)

        trainer.model.to(dtype)          # in place: the optimizer keeps the same Parameter objects
        trainer.train_batches, trainer.test_batches = Cast(trainer.train_batches), Cast(trainer.test_batches)
    return trainer


def _compare(cfg, data, dtype, atol_weights, atol_metrics):
    multi = MultiTrainer(cfg, SEEDS, *data, dtype=dtype)
    epochs = list(multi.run())
    assert len(epochs) == cfg.epochs and all(len(e) == len(SEEDS) for e in epochs)
    assert [e[0]["lr"] for e in epochs] == [0.02, 0.01][:cfg.epochs]
    for k, seed in enumerate(SEEDS):
        single = _single(cfg, seed, data, dtype)
        history = [r.as_dict() for r in single.run()]
        mine = multi.single_state_dict(k)
        theirs = single.model.state_dict()
        assert mine.keys() == theirs.keys()
        for key, value in theirs.items():
            assert mine[key].shape == value.shape, key
            torch.testing.assert_close(mine[key], value.cpu().contiguous(), atol=atol_weights, rtol=0,
                                       msg=lambda m, key=key, seed=seed: f"seed {seed}, {key}: {m}")
        for a, b in zip(history, multi.history[k], strict=True):
            assert a["epoch"] == b["epoch"] and a["lr"] == b["lr"]
            for field in ("train_loss", "train_accuracy", "test_loss", "test_accuracy"):
                assert b[field] == pytest.approx(a[field], abs=atol_metrics), (seed, a["epoch"], field)
    return multi


def test_batches_are_the_single_trainers_batches(data):
    cfg = _cfg(max_train_samples=300)   # 4 full batches and one of 44
    multi = MultiTrainer(cfg, SEEDS, *data)
    singles = [_single(cfg, s, data) for s in SEEDS]
    for _ in range(2):                  # two epochs: a fresh permutation and fresh angles each
        got = list(multi.batches())
        want = [list(t.train_batches) for t in singles]
        assert len(got) == 5 and [x.shape[0] for x, _ in got] == [64, 64, 64, 64, 44]
        for i, (x, y) in enumerate(got):
            for k in range(len(SEEDS)):
                wx, wy = want[k][i]
                assert torch.equal(y[:, k], wy)
                assert torch.equal(x[:, k], wx[:, 0])
    # different seeds really see different data
    assert not torch.equal(got[0][1][:, 0], got[0][1][:, 1])


def test_initial_weights_are_the_single_trainers(data):
    multi = MultiTrainer(_cfg(), SEEDS, *data)
    for k, seed in enumerate(SEEDS):
        single = _single(_cfg(), seed, data)
        for key, value in single.model.state_dict().items():
            assert torch.equal(multi.single_state_dict(k)[key], value.contiguous()), key


def test_training_equals_single_trainers_float64(data):
    # 6 SGD steps in two epochs at two learning rates: weights, BN statistics, losses, accuracies
    _compare(_cfg(), data, torch.float64, atol_weights=1e-9, atol_metrics=1e-9)


def test_training_equals_single_trainers_float32(data):
    # the production precision, on 3 steps (one epoch)
    _compare(_cfg(epochs=1), data, torch.float32, atol_weights=2e-5, atol_metrics=1e-4)


def test_models_do_not_interact():
    # the gradient of model k's loss touches only model k's slices of every parameter
    torch.manual_seed(0)
    net = MultiNet(3)
    x = torch.randn(8, 3, 28, 28)
    out = net(x)
    assert out.shape == (8, 3, 10)
    out[:, 1].sum().backward()
    for name, p in net.named_parameters():
        n = p.shape[0] // 3
        assert p.grad[:n].abs().max() == 0 and p.grad[2 * n:].abs().max() == 0, name
        assert p.grad[n:2 * n].abs().max() > 0, name


def test_state_dict_round_trip():
    nets = []
    for s in (5, 6):
        torch.manual_seed(s)
        nets.append(Net(dropout=0.0))
    multi = MultiNet(2)
    multi.load_singles(nets)
    back = Net(dropout=0.0)
    back.load_state_dict(multi.single_state_dict(1))
    x = torch.randn(4, 1, 28, 28)
    nets[1].eval(), back.eval(), multi.eval()
    torch.testing.assert_close(back(x), nets[1](x))
    torch.testing.assert_close(multi(x.expand(-1, 2, -1, -1))[:, 1], nets[1](x), atol=1e-5, rtol=0)


def test_bad_options_are_refused(data):
    with pytest.raises(ConfigError, match="init"):
        MultiTrainer(_cfg(), SEEDS, *data, init="zeros")
    with pytest.raises(ConfigError, match="seed"):
        MultiTrainer(_cfg(), [], *data)
    with pytest.raises(ConfigError, match="bn_momentum"):
        MultiTrainer(_cfg(), SEEDS, *data, bn_momentum=0.0)


def test_sweep_options_change_the_run(data):
    base = MultiTrainer(_cfg(epochs=1), SEEDS[:1], *data)
    other = MultiTrainer(_cfg(epochs=1), SEEDS[:1], *data, init="kaiming_normal", bn_momentum=0.01)
    assert not torch.equal(base.model.conv2[0].weight, other.model.conv2[0].weight)
    assert other.model.conv2[2].momentum == 0.01
    list(other.run())
    assert 0 < other.history[0][0]["train_loss"] < 2.4
