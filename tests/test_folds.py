"""Cross-validation for small training sets: folds, trial values, fold checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch

from grutune.config import DataConfig, StudyConfig
from grutune.data.cache import SequenceData
from grutune.data.folds import make_folds, resolve_folds
from grutune.exceptions import ConfigError
from grutune.workflows.tune import tune

from .conftest import make_texts


def _data(labels: list[int], first: int = 1, width: int = 4) -> SequenceData:
    """Row i's first value is first + i (an id); lengths vary."""
    n = len(labels)
    lengths = torch.tensor([1 + i % width for i in range(n)])
    x = (torch.arange(n).unsqueeze(1) + first).repeat(1, width)
    return SequenceData(x, lengths, torch.tensor(labels))


def test_folds_partition_train_and_val_stratified():
    train, val = _data([0] * 12 + [1] * 8), _data([0] * 3 + [1] * 2, first=100)
    folds = make_folds(train, val, 5, seed=0)
    held = torch.cat([v.x[:, 0] for _, v in folds]).tolist()
    assert sorted(held) == sorted(torch.cat([train.x[:, 0], val.x[:, 0]]).tolist())
    for fold_train, fold_val in folds:
        assert len(fold_train) + len(fold_val) == 25
        assert fold_val.y.tolist().count(0) == 3 and fold_val.y.tolist().count(1) == 2
        assert not set(fold_train.x[:, 0].tolist()) & set(fold_val.x[:, 0].tolist())
        assert fold_val.x.shape[1] == int(fold_val.lengths.max())  # cut to its own width


def test_too_many_folds_for_the_smallest_class():
    with pytest.raises(ConfigError, match="smallest class has 3 rows"):
        make_folds(_data([0] * 10 + [1] * 2), _data([1]), 5, seed=0)


def test_auto_folds_only_for_small_data():
    assert resolve_folds(None, 120) == 5 and resolve_folds(None, 800) == 1
    assert resolve_folds(1, 120) == 1


def _cv_run(tmp_path, name: str, **study) -> tuple[Path, dict]:
    """A 3-trial, 3-fold study on a small text file; (run directory, metrics.json)."""
    path = tmp_path / "t.csv"
    make_texts(20).to_csv(path, index=False)
    run_dir = tmp_path / name
    tune(DataConfig(path=str(path)),
         StudyConfig(study_name=name, run_dir=str(run_dir), trials=3, budget_s=None,
                     max_epochs=3, folds=3, **{"workers": 1, **study}))
    return run_dir, json.loads((run_dir / "metrics.json").read_text())


def test_cross_validated_study_scores_out_of_fold_and_ensembles_fold_models(tmp_path):
    run_dir, metrics = _cv_run(tmp_path, "cv", ensemble=2, repeats=1)
    assert metrics["model"]["folds"] == 3 and len(metrics["model"]["members"]) == 2
    assert metrics["validation"]["scheme"].startswith("3-fold")
    study = optuna.load_study(study_name="cv", storage=f"sqlite:///{run_dir}/study.db")
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    for t in complete:
        assert len(t.user_attrs["fold_values"]) == 3
        # the pooled out-of-fold accuracy lies within the fold accuracies' range
        assert min(t.user_attrs["fold_values"]) - 1e-9 <= t.value
        assert t.value <= max(t.user_attrs["fold_values"]) + 1e-9
    kept = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert kept == sorted(f"trial-{n}-fold-{i}.safetensors"
                          for n in metrics["model"]["members"] for i in range(3))
    bundle = json.loads((run_dir / "model" / "bundle.json").read_text())
    assert len(bundle["members"]) == 6
    assert np.isfinite(metrics["accuracy"])


def test_seed_repeats_under_cross_validation_keep_every_seed_and_fold(tmp_path):
    run_dir, metrics = _cv_run(tmp_path, "cvr", repeats=2, repeat_top=2)
    record = metrics["seed_repeats"]
    assert len(record["configurations"]) == 2
    assert metrics["model"]["members"] == [record["chosen_trial"]]
    bundle = json.loads((run_dir / "model" / "bundle.json").read_text())
    assert len(bundle["members"]) == 2 * 3  # seeds x folds
