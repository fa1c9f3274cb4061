"""The whole CLI on real data (a small sample of BBC News), resume, and predict."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from grutune.bundle import load_bundle
from grutune.cli import app

from .conftest import finished_trials, interrupt_after_first_trial

pytestmark = pytest.mark.realdata


def test_quick_bbc_run_writes_everything_and_predict_reproduces(runner, tmp_path):
    run_dir = tmp_path / "bbc"
    result = runner.invoke(app, ["tune", "--trials", "2", "--max-epochs", "1", "--sample",
                                 "300", "--folds", "1", "--repeats", "1", "--workers", "1",
                                 "--run-dir", str(run_dir)])
    assert result.exit_code == 0, result.stderr
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for key in ("accuracy", "precision_macro", "recall_macro", "f1_macro", "roc_auc",
                "confusion_matrix", "per_class", "log_loss", "pr_auc"):
        assert key in metrics
    assert len(metrics["confusion_matrix"]) == 5
    assert sum(map(sum, metrics["confusion_matrix"])) == metrics["n"]
    trials = pd.read_csv(run_dir / "trials.csv")
    assert len(trials) == 2 and {"number", "state", "value", "epochs", "seconds"} <= set(trials)
    split = json.loads((run_dir / "split.json").read_text())["split"]
    assert len(split["test"]) == metrics["n"]
    bundle = load_bundle(run_dir / "model")
    assert bundle.state["labels"] == ["business", "entertainment", "politics", "sports", "tech"]

    # predict on the saved test rows reproduces the test predictions exactly
    saved = pd.read_csv(run_dir / "test_predictions.csv")
    rows = tmp_path / "rows.csv"
    saved[["text"]].to_csv(rows, index=False)
    out = tmp_path / "preds.csv"
    result = runner.invoke(app, ["predict", str(run_dir / "model"), str(rows), "--out", str(out)])
    assert result.exit_code == 0, result.stderr
    preds = pd.read_csv(out)
    assert preds["prediction"].tolist() == saved["prediction"].tolist()
    prob_cols = [c for c in preds if c.startswith("prob_")]
    assert (preds[prob_cols].to_numpy() == saved[prob_cols].to_numpy()).all()
    accuracy = (saved["prediction"] == saved["topic"]).mean()
    assert accuracy == pytest.approx(metrics["accuracy"])


@pytest.mark.parametrize("workers", [1, 2])  # SQLite, one process; journal, two workers
def test_killed_run_resumes_with_trials_and_split_intact(tmp_path, workers):
    run_dir = tmp_path / "kill"
    cmd = [sys.executable, "-m", "grutune", "tune", "--sample", "200", "--trials", "4",
           "--max-epochs", "2", "--run-dir", str(run_dir), "--budget", "5m", "--workers",
           str(workers), "--folds", "1", "--repeats", "1", "--no-baseline", "--no-refit"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    deadline = time.time() + 240
    while finished_trials(run_dir) < 1 and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(0.5)  # into the next trial
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = finished_trials(run_dir)
    assert done_before >= 1
    split_before = (run_dir / "split.json").read_text()
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "Resuming: " in result.stderr
    assert (run_dir / "split.json").read_text() == split_before
    trials = pd.read_csv(run_dir / "trials.csv")
    complete = trials[trials["state"].isin(["COMPLETE", "PRUNED"])]
    assert len(complete) >= 4
    assert finished_trials(run_dir) >= done_before
    # the trials the killed run's workers were running are failed, not left RUNNING
    assert not (trials["state"] == "RUNNING").any()
    assert "left running by a killed run" in result.stderr


def test_ctrl_c_stops_after_the_epoch_and_records_the_trial(tmp_path):
    from .conftest import make_texts

    data = tmp_path / "texts.csv"
    make_texts(150).to_csv(data, index=False)
    run_dir = tmp_path / "sigint"
    cmd = [sys.executable, "-m", "grutune", "tune", str(data), "--trials", "50",
           "--max-epochs", "40", "--run-dir", str(run_dir), "--budget", "5m", "--workers", "1",
           "--folds", "1", "--repeats", "1", "--no-baseline"]
    code, stderr, trials = interrupt_after_first_trial(cmd, run_dir)
    assert code == 130, stderr
    assert "stopping after this epoch" in stderr
    stopped = trials[trials["fail_reason"].fillna("").str.startswith("interrupted after epoch")]
    assert len(stopped) == 1 and stopped.iloc[0]["state"] == "FAIL"
    # the finished trials' best model was still evaluated and saved
    assert (run_dir / "metrics.json").is_file() and (run_dir / "model" / "bundle.json").is_file()


def test_population_run_records_trials_like_single_ones(runner, tmp_path):
    """--population 3: trials trained together appear in the study and trials.csv exactly
    as single trials do (one row each, own parameters, curves and value), share the
    architecture, and the final model is built from them."""
    import optuna

    from grutune.nn.population import POPULATION_PARAMS

    run_dir = tmp_path / "pop"
    result = runner.invoke(app, ["tune", "--trials", "6", "--max-epochs", "2", "--sample",
                                 "300", "--population", "3", "--workers", "1",
                                 "--folds", "1", "--repeats", "1", "--pruner", "none",
                                 "--run-dir", str(run_dir)])
    assert result.exit_code == 0, result.stderr
    study = optuna.load_study(study_name="bbc-news-sample300",
                              storage=f"sqlite:///{run_dir / 'study.db'}")
    trials = study.get_trials()
    assert [t.number for t in trials] == list(range(6))
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    groups = {tuple(t.user_attrs["population"]) for t in trials if "population" in t.user_attrs}
    assert groups, "no trials were trained as a population"
    for group in groups:
        members = [trials[n] for n in group]
        for name in POPULATION_PARAMS:
            assert len({str(m.user_attrs["config"][name]) for m in members}) == 1, name
        # each member has its own curve, epochs and value
        for m in members:
            assert len(m.user_attrs["history"]) == m.user_attrs["epochs"] == 2
            assert m.value == max(e["val_metric"] for e in m.user_attrs["history"])
    table = pd.read_csv(run_dir / "trials.csv")
    assert table["number"].tolist() == list(range(6))
    assert table["value"].tolist() == pytest.approx([t.value for t in trials])
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert trials[metrics["best_trial"]].value == study.best_value
