"""The recipe table of docs/training.md and chosen defaults, checked in the config and in what the Trainer
builds from it."""
import pytest
import torch

from mnist_core.config import LIMITS, MNIST_MEAN, MNIST_STD, TrainConfig
from mnist_core.data import Split
from mnist_core.train import Trainer

README_RECIPE = {
    "epochs": 15, "lr": 0.02, "momentum": 0.9, "step_size": 6, "gamma": 0.1,     # the design's
    "rotation": 7.0, "rotation_interpolation": "nearest",                          # -7..+7 degrees, nearest
    "batch_size": 64, "dropout": 0.0,                                              # chosen by measurement
    "drawn": 0.0, "drawn_variants": 3,        # the recipe trains on MNIST only; the canvas model: drawn=0.5
    "seed": 1, "max_train_samples": None, "device": "auto", "eval_batch_size": 500,
    "channels_last": True, "cuda_graphs": True,
}


def test_config_defaults_are_the_documented_recipe():
    assert TrainConfig().to_dict() == README_RECIPE
    assert (MNIST_MEAN, MNIST_STD) == (0.1307, 0.3081)


def test_documented_limits():
    # docs/training.md: "1-50 epochs, batch size 1-4,096, 1-60,000 samples"
    assert (LIMITS["epochs"] == (1, 50) and LIMITS["batch_size"] == (1, 4096)
            and LIMITS["max_train_samples"] == (1, 60_000))


def _tiny():
    return Split(torch.zeros(130, 28, 28, dtype=torch.uint8), torch.arange(130) % 10)


def test_the_trainer_builds_the_recipe():
    t = Trainer(TrainConfig(device="cpu"), _tiny(), _tiny())
    opt = t.optimizer
    assert type(opt) is torch.optim.SGD and len(opt.param_groups) == 1
    g = opt.param_groups[0]
    assert g["lr"] == 0.02 and g["momentum"] == 0.9 and g["weight_decay"] == 0 and not g["nesterov"]
    assert sum(p.numel() for p in g["params"]) == 7416
    s = t.scheduler
    assert type(s) is torch.optim.lr_scheduler.StepLR and s.step_size == 6 and s.gamma == 0.1
    assert t.model.dropout == 0.0 and all(m.p == 0.0 for m in t.model.modules() if isinstance(m, torch.nn.Dropout))
    b = t.train_batches
    assert b.batch_size == 64 and b.rotation == 7.0 and b.interpolation == "nearest" and b.shuffle
    assert (b.mean, b.std) == (0.1307, 0.3081) and len(b) == 3
    e = t.test_batches
    assert e.batch_size == 500 and e.rotation == 0 and not e.shuffle
    assert t.device == torch.device("cpu") and t.graphed is None


@pytest.mark.parametrize("override", [{"lr": 0.1, "momentum": 0.5}, {"step_size": 2, "gamma": 0.5},
                                      {"dropout": 0.2}, {"batch_size": 16, "rotation": 15.0,
                                                         "rotation_interpolation": "bilinear"}])
def test_the_trainer_follows_other_settings(override):
    t = Trainer(TrainConfig(device="cpu", **override), _tiny(), _tiny())
    got = {"lr": t.optimizer.param_groups[0]["lr"], "momentum": t.optimizer.param_groups[0]["momentum"],
           "step_size": t.scheduler.step_size, "gamma": t.scheduler.gamma, "dropout": t.model.dropout,
           "batch_size": t.train_batches.batch_size, "rotation": t.train_batches.rotation,
           "rotation_interpolation": t.train_batches.interpolation}
    assert {k: got[k] for k in override} == override
    if "dropout" in override:
        assert all(m.p == override["dropout"] for m in t.model.modules() if isinstance(m, torch.nn.Dropout))


def test_seed_decides_the_initial_weights():
    a = Trainer(TrainConfig(device="cpu", seed=1), _tiny(), _tiny()).model.head.weight
    b = Trainer(TrainConfig(device="cpu", seed=1), _tiny(), _tiny()).model.head.weight
    c = Trainer(TrainConfig(device="cpu", seed=2), _tiny(), _tiny()).model.head.weight
    assert torch.equal(a, b) and not torch.equal(a, c)
