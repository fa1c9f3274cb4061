"""Samplers and pruners act as configured; every sampler runs a small study end to end;
storages by URL; resume."""

from __future__ import annotations

import json
import math

import numpy as np
import optuna
import pandas as pd
import pytest

from grutune.config import DataConfig, StudyConfig
from grutune.exceptions import ConfigError
from grutune.tasks import default_space
from grutune.tuning.study import WARMUP_EPOCHS, make_pruner, make_sampler, make_storage
from grutune.workflows.tune import tune

from .conftest import make_texts


@pytest.fixture(scope="module")
def data_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "texts.csv"
    make_texts(20).to_csv(path, index=False)
    return path


def _tune(data_path, run_dir, trials=3, **study_kw):
    """A small study: one worker, one validation split, no seed repeats."""
    data = DataConfig(path=str(data_path))
    study = StudyConfig(study_name="s", run_dir=str(run_dir), trials=trials, budget_s=None,
                        max_epochs=3, **{"workers": 1, "folds": 1, "repeats": 1, **study_kw})
    return tune(data, study)


@pytest.mark.parametrize("sampler", ["tpe", "random", "grid", "cmaes", "qmc", "gp"])
def test_every_sampler(data_path, tmp_path, sampler):
    result = _tune(data_path, tmp_path / sampler, sampler=sampler)
    trials = pd.read_csv(tmp_path / sampler / "trials.csv")
    assert len(trials) == 3
    assert 0 <= result.best_value <= 1
    # the first trial of a new study is the space's defaults (warm start)
    assert trials.loc[0, "param_lr"] == pytest.approx(2e-2)


# --- samplers and pruners at work, on synthetic values (no training) ----------------------

def _curves(pruner: str, trials: int = 16, max_epochs: int = 8) -> dict[int, int]:
    """A study of alternating good (rising) and bad (flat, low) validation curves reported
    epoch by epoch, as the objective reports them; {pruned trial: epoch it stopped at}."""
    study = optuna.create_study(study_name="curves", direction="maximize",
                                pruner=make_pruner(pruner, max_epochs))
    stopped = {}
    for number in range(trials):
        trial = study.ask()
        for epoch in range(1, max_epochs + 1):
            value = 0.5 + 0.05 * epoch if number % 2 == 0 else 0.2 + 0.01 * epoch
            trial.report(value, epoch)
            if trial.should_prune():
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                stopped[number] = epoch
                break
        else:
            study.tell(trial, value)
    return stopped


@pytest.mark.parametrize("pruner", ["median", "percentile", "asha", "hyperband"])
def test_every_pruner_stops_the_bad_curves_after_the_warm_up(pruner):
    """Each pruner grutune builds acts within a study of grutune's size: it stops most bad
    curves, never a good one, and none before WARMUP_EPOCHS."""
    stopped = _curves(pruner)
    bad = set(range(1, 16, 2))
    assert set(stopped) <= bad, stopped
    assert len(stopped) >= len(bad) // 2, stopped
    assert min(stopped.values()) >= WARMUP_EPOCHS


def test_pruner_none_stops_nothing():
    assert _curves("none") == {}


def _free_space(names=("lr", "dropout", "hidden_size")):
    """The text space with every other parameter fixed at its default."""
    space = default_space("text")
    return space.apply({n: space[n].default for n in space.names
                        if n not in names and space[n].kind != "fixed"
                        and space[n].default is not None})


def _score(params: dict) -> float:
    """A synthetic validation score, best at lr 3e-3, dropout 0.1, hidden size 128."""
    return (-abs(math.log10(params["lr"]) - math.log10(3e-3)) - abs(params["dropout"] - 0.1)
            - 0.3 * (params["hidden_size"] != 128))


def _search(sampler: str, space, trials: int, seed: int = 0) -> list[dict]:
    study = optuna.create_study(direction="maximize",
                                sampler=make_sampler(sampler, seed, space))
    sampled = []
    for _ in range(trials):
        trial = study.ask()
        params = space.sample(trial)
        sampled.append(params)
        study.tell(trial, _score(params))
    return sampled


@pytest.mark.parametrize("sampler", ["tpe", "gp", "cmaes"])
def test_model_based_samplers_beat_random_search(sampler):
    """After their start-up trials, TPE, GP and CMA-ES sample better configurations of
    grutune's space than random search with the same seed and budget."""
    space = _free_space()
    later = {name: np.mean([_score(p) for p in _search(name, space, 20)[-10:]])
             for name in (sampler, "random")}
    assert later[sampler] > later["random"] + 0.3, later


def test_qmc_sampler_spreads_the_learning_rate_evenly():
    """QMC (scrambled Sobol): after its first, random trial, 8 trials put exactly one
    learning rate in each eighth of the log range; random search would cluster."""
    space = _free_space()
    lrs = [p["lr"] for p in _search("qmc", space, 9)[1:]]
    low, high = math.log10(space["lr"].low), math.log10(space["lr"].high)
    eighths = sorted(int(8 * (math.log10(lr) - low) / (high - low)) for lr in lrs)
    assert eighths == list(range(8)), eighths


def test_grid_sampler_walks_distinct_points_of_the_grid():
    space = default_space("text").for_grid()
    grid = space.grid()
    points = [tuple(p[name] for name in grid) for p in _search("grid", space, 12)]
    assert len(set(points)) == 12
    for point in points:
        assert all(value in grid[name] for name, value in zip(grid, point, strict=True))


def test_random_sampler_follows_the_seed():
    space = _free_space()
    first, again, other = (_search("random", space, 5, seed) for seed in (0, 0, 1))
    assert first == again and first != other
    assert len({p["lr"] for p in first}) == 5



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
    from grutune.tuning.evaluate import top_trials

    study = optuna.create_study(direction="maximize")
    for value, loss in [(0.9, 0.5), (1.0, 0.3), (1.0, 0.1), (0.95, 0.01)]:
        trial = optuna.trial.create_trial(value=value, user_attrs={"val_loss": loss})
        study.add_trial(trial)
    assert [t.number for t in top_trials(study, 3)] == [2, 1, 3]


def test_a_run_whose_own_study_file_is_gone_or_empty_is_not_restarted(tmp_path):
    """A re-run in a directory whose config.json records a study in study.db, now deleted
    or emptied, would start a new study and silently replace the old model: refused. A
    report opens no empty file (opening it would write a new schema there)."""
    from grutune.exceptions import ConfigError
    from grutune.tuning.study import check_own_study, recorded_storage

    check_own_study(tmp_path, None, None)  # a new directory: nothing to check
    (tmp_path / "config.json").write_text('{"study": {"storage": null}}')
    with pytest.raises(ConfigError, match="study.db .or study.journal. is missing or empty"):
        check_own_study(tmp_path, None, None)
    (tmp_path / "study.db").write_bytes(b"")
    with pytest.raises(ConfigError, match="missing or empty"):
        check_own_study(tmp_path, None, None)
    assert recorded_storage(tmp_path, {}) == ""
    assert (tmp_path / "study.db").stat().st_size == 0
    check_own_study(tmp_path, None, "sqlite:///elsewhere.db")  # the user names the storage
    make_storage(f"sqlite:///{tmp_path / 'study.db'}")  # a real study file: resumable
    check_own_study(tmp_path, None, None)
    assert recorded_storage(tmp_path, {}).endswith("study.db")
