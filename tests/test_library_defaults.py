"""The library owns every default: Python and the command line resolve them one way."""

from __future__ import annotations

import json

import pytest

from grutune.config import DataConfig, StudyConfig
from grutune.exceptions import ConfigError
from grutune.tuning.workers import default_workers
from grutune.workflows.tune import resolve


@pytest.mark.parametrize("dataset, task, epochs", [("sunspots", "forecast", 60),
                                                   ("gunpoint", "series", 100),
                                                   ("bbc-news", "text", 20)])
def test_a_dataset_alone_resolves_every_default(dataset, task, epochs):
    data, study = resolve(DataConfig(dataset=dataset))
    assert (data.task, study.max_epochs, study.workers) == (task, epochs, default_workers())
    assert (study.study_name, study.run_dir) == (dataset, f"runs/{dataset}")
    assert (study.trials, study.budget_s) == (StudyConfig.trials, StudyConfig.budget_s)


def test_nothing_given_is_the_default_dataset():
    data, study = resolve()
    assert data.dataset == "bbc-news" and data.task == "text"


def test_given_values_win_and_files_name_the_study():
    data, study = resolve(DataConfig(path="my data.csv", sample=50),
                          StudyConfig(max_epochs=2, workers=1), prefix="compare-")
    assert data.task == "text" and study.study_name == "compare-my-data-sample50"
    assert (study.max_epochs, study.workers) == (2, 1)


def test_unknown_task_is_refused_by_the_registry():
    from grutune.tasks import get_task

    with pytest.raises(ConfigError, match="--task: must be one of"):
        get_task(resolve(DataConfig(path="x.csv", task="no-such-task"))[0].task)


@pytest.mark.realdata
def test_tune_from_python_with_a_dataset_only(tmp_path, monkeypatch):
    """``tune(DataConfig(dataset="sunspots"))`` works from Python: the forecast task, its
    epochs and the default run directory come from the library (only the budget is cut
    here: two small trials that stop at their first epoch without progress; the
    baseline, refit and report, which other tests check, are off)."""
    from grutune.workflows.tune import tune

    monkeypatch.chdir(tmp_path)
    space = tmp_path / "space.yaml"
    space.write_text("patience: 1\nhidden_size: 16\n")
    result = tune(DataConfig(dataset="sunspots"),
                  StudyConfig(trials=2, repeats=1, workers=1, baseline=False, refit=False,
                              report=False, space_path=str(space)))
    config = json.loads((tmp_path / "runs" / "sunspots" / "config.json").read_text())
    assert config["data"]["task"] == "forecast" and config["study"]["max_epochs"] == 60
    assert result.metrics["task"] == "forecast"
