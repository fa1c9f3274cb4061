"""Search space: sampling, conditional parameters, YAML overrides and their rules."""

from __future__ import annotations

import optuna
import pytest

from grutune.exceptions import ConfigError
from grutune.search_space import load_space, train_config
from grutune.tasks import default_space


def _sample(space, seed=0, n=30):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    out = []
    for _ in range(n):
        trial = study.ask()
        out.append((space.sample(trial), trial.params))
        study.tell(trial, 0.0)
    return out


def test_conditional_parameters_only_when_they_apply():
    for values, suggested in _sample(default_space("text")):
        assert ("momentum" in suggested) == (values["optimizer"] in ("sgd", "rmsprop"))
        assert ("layer_dropout" in suggested) == (values["num_layers"] > 1)
        assert ("weight_decay" in suggested) == (values["regularization"] == "weight_decay")
        assert ("step_size" in suggested) == (values["schedule"] == "step")
        assert "cell" not in suggested and values["cell"] == "gru"  # fixed by default
        cfg = train_config(values, max_epochs=10, seed=0)
        assert (cfg.weight_decay > 0) + (cfg.l2_penalty > 0) == 1


def test_defaults_are_the_warm_start_trial():
    d = default_space("text").defaults()
    assert d["optimizer"] == "adamw" and "momentum" not in d
    assert ("weight_decay" in d) != ("l2_penalty" in d)


def _space(tmp_path, text):
    path = tmp_path / "space.yaml"
    path.write_text(text)
    return load_space(default_space("text"), str(path))


def test_overrides_range_choices_fixed(tmp_path):
    space = _space(tmp_path, "lr: {low: 1e-4, high: 1e-2, log: true}\n"
                              "hidden_size: [16, 32]\ncell: [gru, lstm]\nbatch_size: 64\n")
    assert (space["lr"].low, space["lr"].high) == (1e-4, 1e-2)
    assert space["hidden_size"].choices == (16, 32)
    assert space["cell"].kind == "categorical"
    assert space["batch_size"].kind == "fixed" and space["batch_size"].default == 64
    for values, _ in _sample(space, n=10):
        assert values["hidden_size"] in (16, 32) and values["batch_size"] == 64


@pytest.mark.parametrize(("text", "message"), [
    ("lr: {low: 0.1, high: 0.01}", "lr: low must be < high, got low=0.1 high=0.01"),
    ("lr: {low: -0.1, high: 0.01}", "lr: must be between"),
    ("lr: {low: 0, high: 0.01, log: true}", "must be between"),
    ("lrate: 0.1", "unknown parameter 'lrate'"),
    ("optimizer: [adamw, lion]", "optimizer: must be one of"),
    ("dropout: 1.5", "dropout: must be between"),
    ("hidden_size: 12.5", "hidden_size: must be a whole number"),
    ("hidden_size: []", "empty list"),
    ("lr: {low: 0.1}", "a range needs exactly low, high"),
    ("pooling: {low: 1, high: 2}", "takes choices"),
    ("- 1\n- 2", "expected a mapping"),
    ("lr: [", "not valid YAML"),
    ("batch_size: abc", "expected a number"),
])
def test_invalid_space_files(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")):
        _space(tmp_path, text)


def test_grid_has_every_free_parameter():
    grid = default_space("text").grid()
    assert grid["lr"] == sorted(grid["lr"]) and len(grid["lr"]) == 3
    assert "cell" not in grid and grid["pooling"] == ["last", "mean", "max", "attention"]


def test_grid_walks_key_factors_and_named_ones_only():
    space = default_space("text").apply({"pooling": ["mean", "max"]}).for_grid()
    grid = space.grid()
    assert set(grid) == {"lr", "hidden_size", "dropout", "batch_size", "pooling"}
    assert space["init"].kind == "fixed" and space["init"].default == "xavier"


def test_grid_too_large_is_refused():
    with pytest.raises(ConfigError, match="grid has .* points"):
        default_space("text").apply({"embed_dim": list(range(1, 300)),
                                     "init": ["default", "xavier", "he", "orthogonal"]}
                                    ).for_grid()
