"""Every sampler and pruner runs a small study end to end; storages by URL; resume."""

from __future__ import annotations

import json

import optuna
import pandas as pd
import pytest

from grutune.config import DataConfig, StudyConfig
from grutune.exceptions import ConfigError
from grutune.pipeline import tune
from grutune.study import make_storage

from .conftest import make_texts


@pytest.fixture(scope="module")
def data_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "texts.csv"
    make_texts(20).to_csv(path, index=False)
    return path


def _tune(data_path, run_dir, trials=3, **study_kw):
    data = DataConfig(path=str(data_path))
    study = StudyConfig(study_name="s", run_dir=str(run_dir), trials=trials, budget_s=None,
                        max_epochs=3, **{"workers": 1, **study_kw})
    return tune(data, study)


@pytest.mark.parametrize("sampler", ["tpe", "random", "grid", "cmaes", "qmc", "gp"])
def test_every_sampler(data_path, tmp_path, sampler):
    result = _tune(data_path, tmp_path / sampler, sampler=sampler)
    trials = pd.read_csv(tmp_path / sampler / "trials.csv")
    assert len(trials) == 3
    assert 0 <= result.best_value <= 1
    # the first trial of a new study is the space's defaults (warm start)
    assert trials.loc[0, "param_lr"] == pytest.approx(2e-2)


@pytest.mark.parametrize("pruner", ["median", "percentile", "asha", "hyperband", "none"])
def test_every_pruner(data_path, tmp_path, pruner):
    _tune(data_path, tmp_path / pruner, trials=4, pruner=pruner)
    trials = pd.read_csv(tmp_path / pruner / "trials.csv")
    assert set(trials["state"]) <= {"COMPLETE", "PRUNED"}
    assert (trials["state"] == "COMPLETE").any()


def test_rerun_resumes_and_adds_only_missing_trials(data_path, tmp_path):
    _tune(data_path, tmp_path / "r", trials=2)
    split = (tmp_path / "r" / "split.json").read_text()
    _tune(data_path, tmp_path / "r", trials=3)
    trials = pd.read_csv(tmp_path / "r" / "trials.csv")
    assert list(trials["number"]) == [0, 1, 2]
    assert (tmp_path / "r" / "split.json").read_text() == split
    _tune(data_path, tmp_path / "r", trials=3)  # nothing left to do: evaluates only
    assert len(pd.read_csv(tmp_path / "r" / "trials.csv")) == 3
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path}/r/study.db")
    best = study.trials[metrics["best_trial"]]
    assert best.value == study.best_value  # ties are broken by validation loss


def test_journal_storage(data_path, tmp_path):
    url = f"journal:{tmp_path}/journal.log"
    _tune(data_path, tmp_path / "j", trials=2, storage=url)
    study = optuna.load_study(study_name="s", storage=make_storage(url))
    assert len(study.trials) == 2


def test_unknown_storage_scheme():
    with pytest.raises(ConfigError, match="unknown storage"):
        make_storage("redis://localhost")


def test_trials_csv_blanks_parameters_that_did_not_apply(data_path, tmp_path):
    _tune(data_path, tmp_path / "b", trials=1)
    row = pd.read_csv(tmp_path / "b" / "trials.csv").iloc[0]
    assert row["param_optimizer"] == "adamw" and pd.isna(row["param_momentum"])
    assert row["param_cell"] == "gru"


def test_top_trials_break_ties_by_validation_loss():
    from grutune.evaluate import top_trials

    study = optuna.create_study(direction="maximize")
    for value, loss in [(0.9, 0.5), (1.0, 0.3), (1.0, 0.1), (0.95, 0.01)]:
        trial = optuna.trial.create_trial(value=value, user_attrs={"val_loss": loss})
        study.add_trial(trial)
    assert [t.number for t in top_trials(study, 3)] == [2, 1, 3]
