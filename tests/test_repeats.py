"""Seed repeats choose by the interval's bound; seeded studies repeat exactly."""

from __future__ import annotations

import json

import optuna
import pandas as pd
import pytest

from grutune.cli import app
from grutune.tuning.repeats import Repeated, choose, plan, refit_seconds


def _trial(number: int, seconds: float = 10.0) -> optuna.trial.FrozenTrial:
    return optuna.trial.create_trial(value=0.9, user_attrs={"seconds": seconds,
                                                            "seed": number})


def _repeated(number: int, values: list[float]) -> Repeated:
    trial = _trial(number)
    trial.number = number
    return Repeated(trial, seeds=list(range(len(values))), val=values, test=values)


def test_choose_prefers_the_steady_configuration_over_the_lucky_one():
    lucky = _repeated(0, [0.99, 0.80, 0.97])  # best single run, wide interval
    steady = _repeated(1, [0.92, 0.93, 0.925])
    assert choose([lucky, steady], "maximize") is steady
    # an error to minimize: the upper bound decides
    assert choose([_repeated(0, [0.1, 0.5, 0.12]), _repeated(1, [0.2, 0.21, 0.2])],
                  "minimize").trial.number == 1


def test_choose_breaks_ties_towards_the_better_ranked_trial():
    a, b = _repeated(3, [0.9, 0.9]), _repeated(7, [0.9, 0.9])
    assert choose([a, b], "maximize") is a


def test_plan_keeps_room_for_the_refit():
    """A refit of the costliest planned configuration's seeds must fit after the repeats:
    its best epoch's share of the trial's time, on 85/70 of the rows, per seed."""
    trials = [_trial(0, 30), _trial(1, 60)]
    for t in trials:
        t.user_attrs.update(epochs=10, best_epoch=7)  # a refit: 0.7 x 85/70 of the time
    assert refit_seconds(trials[1]) == pytest.approx(60 * 0.7 * 85 / 70)
    # repeats alone: (30 + 60) x 2 = 180 s; with the refit's room: + 51 x 3 = 333 s
    assert plan(trials, 3, budget_s=200) == (trials, "")
    chosen, note = plan(trials, 3, budget_s=200, refit=True)
    assert chosen == trials[:1] and "top 1" in note  # 60 + 25.5 x 3 = 136.5 s fits
    assert plan(trials, 3, budget_s=340, refit=True) == (trials, "")


def test_plan_fits_the_budget_by_dropping_the_last_configurations():
    trials = [_trial(0, 30), _trial(1, 60), _trial(2, 120)]
    chosen, note = plan(trials, 3, budget_s=200)  # 2 new seeds each: 60, 120, 240 s
    assert chosen == trials[:2] and "top 2" in note
    chosen, note = plan(trials, 3, budget_s=None)
    assert chosen == trials and note == ""
    chosen, note = plan(trials, 3, budget_s=10)
    assert chosen == [] and "skipped" in note
    assert plan(trials, 1, None) == ([], "seed repeats off (--repeats 1)")


@pytest.mark.realdata
def test_final_model_comes_from_seed_repeats(runner, tmp_path):
    run_dir = tmp_path / "rep"
    result = runner.invoke(app, ["tune", "--sample", "300", "--folds", "1", "--trials", "4",
                                 "--max-epochs", "2", "--repeats", "2", "--repeat-top", "2",
                                 "--workers", "1", "--no-baseline", "--no-refit",
                                 "--run-dir", str(run_dir)])
    assert result.exit_code == 0, result.stderr
    metrics = json.loads((run_dir / "metrics.json").read_text())
    record = metrics["seed_repeats"]
    configs = record["configurations"]
    assert len(configs) == 2 and all(len(c["seeds"]) == 2 for c in configs)
    for c in configs:
        low, high = c["validation_interval"]
        assert low <= c["validation_mean"] <= high
        assert len(c["test"]) == 2
    best_low = max(c["validation_interval"][0] for c in configs)
    chosen = next(c for c in configs if c["trial"] == record["chosen_trial"])
    assert chosen["validation_interval"][0] == best_low
    assert metrics["model"]["members"] == [record["chosen_trial"]]
    bundle = json.loads((run_dir / "model" / "bundle.json").read_text())
    assert len(bundle["members"]) == 2  # the chosen configuration's two seed models
    assert "Seed repeats" in result.stderr


@pytest.mark.realdata
def test_a_seeded_study_repeats_its_trial_values_on_cpu(runner, tmp_path):
    values = []
    for name in ("a", "b"):
        run_dir = tmp_path / name
        result = runner.invoke(app, ["tune", "--sample", "200", "--folds", "1", "--trials",
                                     "3", "--max-epochs", "2", "--workers", "1", "--repeats",
                                     "1", "--seed", "7", "--no-baseline", "--no-refit",
                                     "--run-dir", str(run_dir)])
        assert result.exit_code == 0, result.stderr
        values.append(pd.read_csv(run_dir / "trials.csv")[["number", "state", "value"]])
    pd.testing.assert_frame_equal(values[0], values[1])
