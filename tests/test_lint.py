"""The search-space linter: each warning on its own, and silence on the default spaces."""

from __future__ import annotations

import pytest

from grutune.config import StudyConfig
from grutune.tasks import default_space, get_task
from grutune.tuning.lint import lint

SUMMARY = {"rows": {"train": 1000}, "steps": {"train": 2000}}


def _cfg(max_epochs: int = 20) -> StudyConfig:
    return StudyConfig(study_name="s", run_dir="r", max_epochs=max_epochs)


@pytest.mark.parametrize("task", ["text", "series", "forecast"])
def test_default_spaces_are_clean(task):
    space = default_space(task, {"lookback": [24, 48, 96]})
    assert lint(space, _cfg(get_task(task).default_max_epochs), SUMMARY) == []


@pytest.mark.parametrize("overrides,max_epochs,summary,expected", [
    ({"num_layers": 1, "layer_dropout": 0.3}, 20, SUMMARY,
     "dropout between layers does nothing with a single layer"),
    ({"warmup_epochs": {"low": 0, "high": 5}}, 5, SUMMARY,
     "never train at their peak learning rate"),
    ({"schedule": "cosine", "patience": 3}, 40, SUMMARY,
     "cosine annealing spans --max-epochs 40"),
    ({"schedule": "exponential", "exp_gamma": 0.5}, 60, SUMMARY,
     "exponential decay with exp_gamma 0.5 cuts the rate to 0.1% by epoch 10"),
    ({"batch_size": [64, 256]}, 20, {"rows": {"train": 100}},
     "batch_size reaches 256 but the training split has 100 rows"),
])
def test_each_warning(overrides, max_epochs, summary, expected):
    space = default_space("text").apply(overrides)
    warnings = lint(space, _cfg(max_epochs), summary)
    assert len(warnings) == 1 and expected in warnings[0], warnings


def test_lookback_longer_than_the_series_allows():
    space = default_space("forecast", {"lookback": [24, 48]}).apply({"lookback": [48, 600]})
    warnings = lint(space, _cfg(60), {"rows": {"train": 900}, "steps": {"train": 1000}})
    assert len(warnings) == 1 and "lookback reaches 600 steps" in warnings[0]
