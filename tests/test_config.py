import dataclasses

import pytest

from mnist_core.config import ConfigError, TrainConfig, TrainingBudget, estimate_seconds, make_config, total_steps


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


def test_make_config_accepts_json_numbers():
    c = make_config(epochs=3.0, lr=1, batch_size=32, max_train_samples=1000.0, device="cpu")
    assert (c.epochs, c.lr, c.batch_size, c.max_train_samples) == (3, 1.0, 32, 1000)
    assert isinstance(c.epochs, int) and isinstance(c.max_train_samples, int) and isinstance(c.lr, float)
    assert make_config(max_train_samples=None).max_train_samples is None   # the CLI's "all 60,000"


@pytest.mark.parametrize("values", [dict(epochs=0), dict(lr=-1), dict(batch_size=0), dict(max_train_samples=0),
                                    dict(lr="abc"), dict(epochs=3.5), dict(nonsense=1)])
def test_make_config_refuses(values):
    with pytest.raises(ConfigError):
        make_config(**values)


@pytest.mark.parametrize("name", ["epochs", "batch_size", "step_size", "seed", "max_train_samples", "eval_batch_size"])
@pytest.mark.parametrize("value,shown", [(2.5, "2.5"), (True, "True"), (False, "False"), (None, "empty field"),
                                         ("3", "'3'"), (float("nan"), "nan"), (float("inf"), "inf")])
def test_whole_number_fields_are_not_coerced(name, value, shown):
    with pytest.raises(ConfigError) as e:
        make_config(nullable=(), **{name: value})
    msg = str(e.value)
    assert msg.startswith(f"{name} must be a whole number between") and shown in msg, msg
    assert "\n" not in msg


@pytest.mark.parametrize("name", ["lr", "momentum", "gamma", "rotation", "dropout"])
@pytest.mark.parametrize("value", [True, None, "0.5", [0.1]])
def test_number_fields_are_not_coerced(name, value):
    with pytest.raises(ConfigError, match=f"^{name} must be a number between"):
        make_config(**{name: value})


def test_none_is_refused_for_text_settings_too():
    with pytest.raises(ConfigError, match="device must be set"):
        make_config(device=None)


def test_budget_accepts_the_recipe_and_bounds_steps_and_time():
    b = TrainingBudget()
    recipe = TrainConfig()
    assert total_steps(recipe) == 15 * 938
    assert b.max_steps == 2 * total_steps(recipe) and b.max_seconds == pytest.approx(2 * estimate_seconds(recipe))
    assert 100 < estimate_seconds(recipe) < 200      # docs/training.md's "about 2.5 minutes" on 2 CPU cores
    b.check(recipe)                                  # the default recipe is always accepted
    b.check(TrainConfig(epochs=30))                  # twice the recipe: the bound itself
    with pytest.raises(ConfigError, match="optimizer steps"):
        b.check(TrainConfig(epochs=31))
    with pytest.raises(ConfigError, match="optimizer steps"):
        b.check(TrainConfig(epochs=1, batch_size=1))  # 60,000 steps
    with pytest.raises(ConfigError, match="minutes on this CPU"):
        b.check(TrainConfig(epochs=40, batch_size=4096))   # few steps, but 2.4M images
    b.check(TrainConfig(epochs=40, batch_size=4096), on_cpu=False)  # the time bound is the CPU's
    small = TrainingBudget(max_steps=10, max_seconds=1.0)
    with pytest.raises(ConfigError, match="limit on this server is 10"):
        small.check(TrainConfig(epochs=1, max_train_samples=704, batch_size=64))
    small.check(TrainConfig(epochs=1, max_train_samples=640, batch_size=64), on_cpu=False)


def test_round_trip_through_dict():
    c = TrainConfig(epochs=3, seed=7)
    assert TrainConfig.from_dict({**c.to_dict(), "unknown_future_key": 1}) == c


def test_rotation_interpolation_choices():
    assert TrainConfig(rotation_interpolation="nearest").rotation_interpolation == "nearest"
    with pytest.raises(ConfigError, match="rotation_interpolation"):
        TrainConfig(rotation_interpolation="cubic")
