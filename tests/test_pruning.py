"""The pruner acts in a real study: trials whose validation curve falls behind are
stopped early, by grutune's default (median) pruner, in a real ``tune`` run."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import optuna
import pandas as pd
import pytest

from grutune.config import DataConfig, StudyConfig
from grutune.tuning.study import STARTUP_TRIALS, WARMUP_EPOCHS
from grutune.workflows.tune import tune

from .conftest import make_texts

PRUNED, COMPLETE = optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.COMPLETE
MAX_EPOCHS = 6
# A small fixed model; the learning rate either learns the topics in a few epochs or
# barely moves the weights, so about half of the trials fall behind the median.
SPACE = """\
embed_dim: 16
hidden_size: 16
num_layers: 1
bidirectional: false
optimizer: adamw
schedule: constant
warmup_epochs: 0
patience: 6
batch_size: 16
lr: [1.0e-5, 3.0e-2]
"""


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """12 trials of up to 6 epochs with the default pruner, one at a time."""
    root = tmp_path_factory.mktemp("pruning")
    make_texts(30).to_csv(root / "texts.csv", index=False)
    (root / "space.yaml").write_text(SPACE)
    study_cfg = StudyConfig(study_name="p", run_dir=str(root / "run"), trials=12,
                            budget_s=None, max_epochs=MAX_EPOCHS, sampler="random",
                            space_path=str(root / "space.yaml"), folds=1, repeats=1,
                            workers=1)
    assert study_cfg.pruner == "median"  # the default is what this run tests
    tune(DataConfig(path=str(root / "texts.csv")), study_cfg)
    return root / "run"


def _study(run_dir: Path) -> optuna.Study:
    return optuna.load_study(study_name="p", storage=f"sqlite:///{run_dir / 'study.db'}")


def test_the_default_pruner_stops_trials_before_max_epochs(run_dir):
    """Some trials are pruned, each after the warm-up and before the last epoch, and
    trials.csv records them so, with the epochs they ran; the run still ends with its
    test metrics."""
    study, table = _study(run_dir), pd.read_csv(run_dir / "trials.csv")
    pruned = study.get_trials(states=(PRUNED,))
    assert len(pruned) >= 2, [t.state.name for t in study.trials]
    for trial in pruned:
        epochs = max(trial.intermediate_values)
        assert WARMUP_EPOCHS <= epochs < MAX_EPOCHS, trial.intermediate_values
        assert trial.user_attrs["epochs"] == epochs
        row = table[table["number"] == trial.number].iloc[0]
        assert row["state"] == "PRUNED" and row["epochs"] == epochs
    complete = study.get_trials(states=(COMPLETE,))
    assert complete and all(len(t.intermediate_values) == MAX_EPOCHS for t in complete)
    assert json.loads((run_dir / "metrics.json").read_text())["split"] == "test"


def test_pruned_trials_were_below_the_median_of_finished_ones(run_dir):
    """The pruner saw each epoch's validation accuracy at that epoch's step: a pruned
    trial's best value up to its last epoch is below the median, at that epoch, of the
    trials complete before it (the median pruner's rule, checked on the recorded curves)."""
    study = _study(run_dir)
    for trial in study.get_trials(states=(PRUNED,)):
        step = max(trial.intermediate_values)
        before = [t.intermediate_values[step] for t in study.trials
                  if t.state == COMPLETE and t.number < trial.number]
        assert len(before) >= STARTUP_TRIALS
        best = max(trial.intermediate_values.values())
        assert best < statistics.median(before), (trial.number, best, before)
