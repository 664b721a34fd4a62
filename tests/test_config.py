import dataclasses

import pytest

from mnist_core.config import ConfigError, TrainConfig, make_config


def test_defaults_are_the_recipe():
    c = TrainConfig()
    assert (c.epochs, c.lr, c.momentum, c.step_size, c.gamma, c.rotation) == (15, 0.02, 0.9, 6, 0.1, 7.0)


def test_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        TrainConfig().epochs = 3


@pytest.mark.parametrize("field,value,words", [
    ("epochs", 0, "epochs"), ("epochs", 51, "epochs"), ("lr", -1.0, "lr"), ("lr", float("nan"), "lr"),
    ("batch_size", 0, "batch_size"), ("batch_size", 5000, "batch_size"), ("max_train_samples", 0, "max_train_samples"),
    ("momentum", 1.5, "momentum"), ("dropout", 1.0, "dropout"), ("epochs", 2.5, "whole number"),
    ("epochs", "3", "epochs"), ("epochs", True, "epochs"), ("device", "tpu", "device"), ("gamma", 0.0, "gamma"),
])
def test_bad_values_give_clear_errors(field, value, words):
    with pytest.raises(ConfigError, match=words):
        TrainConfig(**{field: value})


def test_make_config_accepts_ui_values():
    c = make_config(epochs=3.0, lr="0.01", batch_size=None, max_train_samples=1000.0, device="cpu")
    assert (c.epochs, c.lr, c.batch_size, c.max_train_samples) == (3, 0.01, TrainConfig().batch_size, 1000)
    assert isinstance(c.epochs, int)


@pytest.mark.parametrize("values", [dict(epochs=0), dict(lr=-1), dict(batch_size=0), dict(max_train_samples=0),
                                    dict(lr="abc"), dict(epochs=3.5), dict(nonsense=1)])
def test_make_config_refuses(values):
    with pytest.raises(ConfigError):
        make_config(**values)


def test_round_trip_through_dict():
    c = TrainConfig(epochs=3, seed=7)
    assert TrainConfig.from_dict({**c.to_dict(), "unknown_future_key": 1}) == c


def test_rotation_interpolation_choices():
    assert TrainConfig(rotation_interpolation="nearest").rotation_interpolation == "nearest"
    with pytest.raises(ConfigError, match="rotation_interpolation"):
        TrainConfig(rotation_interpolation="cubic")
