"""The report: each figure's data (values, not pixels), and real reports in a real browser."""

from __future__ import annotations

import shutil
from pathlib import Path

import optuna
import pandas as pd
import pytest
import torch
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial

from grutune.cli import app
from grutune.reporting import data as rd
from grutune.reporting.page import build_report
from grutune.tasks import views

from .browser import ARTIFACTS, chromium, open_page

DISTS = {"lr": FloatDistribution(1e-4, 1e-1, log=True),
         "pooling": CategoricalDistribution(["mean", "max"])}


def _study() -> optuna.Study:
    """Five complete trials, one pruned (curve 0.5, 0.6), one failed."""
    study = optuna.create_study(direction="maximize")
    rows = [(1e-3, "mean", 0.80), (2e-3, "mean", 0.90), (4e-3, "max", 0.85),
            (3e-2, "max", 0.30), (5e-4, "mean", 0.70)]
    for lr, pooling, value in rows:
        study.add_trial(create_trial(params={"lr": lr, "pooling": pooling}, distributions=DISTS,
                                     value=value, intermediate_values={1: value - 0.1,
                                                                       2: value}))
    study.add_trial(create_trial(params={"lr": 8e-2, "pooling": "max"}, distributions=DISTS,
                                 state=TrialState.PRUNED, intermediate_values={1: 0.5, 2: 0.6}))
    study.add_trial(create_trial(params={"lr": 1e-3, "pooling": "mean"}, distributions=DISTS,
                                 state=TrialState.FAIL))
    return study


def test_counts_and_history_with_running_best():
    study = _study()
    assert rd.trial_counts(study) == {"complete": 5, "pruned": 1, "fail": 1, "running": 0}
    hist = rd.history(study)
    assert hist["number"].tolist() == [0, 1, 2, 3, 4, 5]
    assert hist["score"].tolist() == pytest.approx([0.8, 0.9, 0.85, 0.3, 0.7, 0.6])
    assert hist["best"].tolist() == pytest.approx([0.8, 0.9, 0.9, 0.9, 0.9, 0.9])
    assert hist["state"].tolist()[-1] == "pruned"


def test_slice_points_and_best_range_in_words():
    study = _study()
    points = rd.slice_points(study, "lr")
    assert points["number"].tolist() == [0, 1, 2, 3, 4, 5]  # the failed trial has no score
    assert points.loc[points["number"] == 5, "score"].item() == pytest.approx(0.6)
    text = rd.best_range_text("lr", list(zip(points["value"], points["score"], strict=True)),
                              True)
    # best quarter of 6 trials = 2 trials: lr 2e-3 (0.90) and 4e-3 (0.85); above 4e-3 the
    # best score was the pruned 8e-2 trial's 0.6
    assert text == ("best trials had lr between 0.002 and 0.004; lr above 0.004 scored at "
                    "most 0.6")
    cats = rd.slice_points(study, "pooling")
    text = rd.best_range_text("pooling", list(zip(cats["value"], cats["score"], strict=True)),
                              True, top=0.5)
    assert text == "best trials had pooling = mean (2 of 3)"  # 0.90 mean, 0.85 max, 0.80 mean
    assert rd.best_range_text("lr", [], True) == "no finished trial set lr"


def test_importances_name_the_parameters_and_sum_to_one():
    scores = rd.importances(_study())
    assert set(scores) == {"lr", "pooling"}
    shares = [s.share for s in scores.values()]
    assert sum(shares) == pytest.approx(1.0)
    assert shares == sorted(shares, reverse=True)
    assert all(0.0 <= s.low <= s.share <= s.high <= 1.0 for s in scores.values())
    assert rd.importances(optuna.create_study()) == {}


def test_importances_find_the_factor_that_decides_and_say_when_none_stands_apart():
    """40 trials whose score is lr's distance from 1e-2 plus a little noise: lr's
    resampled share stays above the others' (the note names it); with the scores
    shuffled against the parameters nothing decides and the note says so."""
    import numpy as np

    rng = np.random.default_rng(0)
    dists = {"lr": FloatDistribution(1e-4, 1.0, log=True), "dropout": FloatDistribution(0, 0.5),
             "decay": FloatDistribution(0, 1)}
    params = [{k: float(rng.uniform(0.0, 0.5)) for k in ("dropout", "decay")}
              | {"lr": float(10 ** rng.uniform(-4, 0))} for _ in range(40)]
    scores = [-abs(np.log10(p["lr"]) + 2) + rng.normal(0, 0.05) for p in params]
    for shuffled in (False, True):
        values = rng.permutation(scores) if shuffled else scores
        study = optuna.create_study(direction="maximize")
        for p, v in zip(params, values, strict=True):
            study.add_trial(create_trial(params=p, distributions=dists, value=float(v)))
        imp = rd.importances(study)
        note = rd.importance_note(imp, 40)
        if not shuffled:
            assert list(imp)[0] == "lr" and imp["lr"].low > 0.5
            assert note.endswith("lr stands apart from the rest.")
        else:
            assert "No factor stands apart" in note


def test_intermediate_curves_keep_states():
    curves = rd.intermediate(_study())
    assert len(curves) == 6
    assert curves[5] == {"number": 5, "state": "pruned", "steps": [1, 2], "values": [0.5, 0.6]}


def test_roc_macro_is_the_mean_curve_and_auc():
    metrics = {"roc_curve": {"a": {"fpr": [0, 1], "tpr": [0, 1], "auc": 0.5},
                             "b": {"fpr": [0, 0, 1], "tpr": [0, 1, 1], "auc": 1.0}}}
    curves = views.roc(metrics)
    assert curves["macro"]["auc"] == pytest.approx(0.75)
    at_half = curves["macro"]["tpr"][50]  # fpr grid point 0.5
    assert at_half == pytest.approx((0.5 + 1.0) / 2)


def test_precision_recall_curves_by_hand():
    """One-vs-rest curves from each class's own probability column, labels compared as
    text (a class written 1 matches the column prob_1)."""
    frame = pd.DataFrame({"label": [1, 2, 1, 2], "prediction": [1, 2, 2, 2],
                          "prob_1": [0.9, 0.2, 0.4, 0.3], "prob_2": [0.1, 0.8, 0.6, 0.7]})
    curves = views.precision_recall(frame, "label", ["1", "2"])
    # class 1 (rows 0 and 2) by falling threshold: 0.9 -> 1 of 1 right, recall 1/2;
    # 0.4 -> 2 of 2, recall 1; 0.3 -> 2 of 3; 0.2 -> 2 of 4; the curve starts at full
    # recall and ends at (recall 0, precision 1)
    assert curves["1"]["precision"] == pytest.approx([1 / 2, 2 / 3, 1, 1, 1])
    assert curves["1"]["recall"] == pytest.approx([1, 1, 1, 1 / 2, 0])
    # class 2 (rows 1 and 3): thresholds 0.8, 0.7 (both right), 0.6 (2 of 3), 0.1 (2 of 4)
    assert curves["2"]["precision"] == pytest.approx([1 / 2, 2 / 3, 1, 1, 1])
    assert curves["2"]["recall"] == pytest.approx([1, 1, 1, 1 / 2, 0])


def test_forecast_frame_keeps_the_latest_window_per_time():
    frame = pd.DataFrame({"window": [0, 0, 1, 1], "step": [1, 2, 1, 2],
                          "time": ["t1", "t2", "t2", "t3"], "target": "v",
                          "actual": [1.0, 2.0, 2.0, 3.0], "forecast": [1.1, 2.2, 2.1, 3.1],
                          "naive": [0.0] * 4, "seasonal_naive": [0.5] * 4})
    out = views.forecast_frame(frame)
    assert out["time"].tolist() == ["t1", "t2", "t3"]
    assert out["forecast"].tolist() == [1.1, 2.1, 3.1]


def test_horizon_errors_table():
    metrics = {"mae_by_step": [1.0, 2.0], "baselines": {"naive": {"mae_by_step": [1.5, 2.5]},
                                                         "seasonal_naive": {"mae": 3.0}}}
    out = views.horizon_errors(metrics)
    assert out.columns.tolist() == ["step", "model", "naive"]
    assert out["naive"].tolist() == [1.5, 2.5]


# --- real runs, real browser ---------------------------------------------------------

RUNS = {  # each run with one worker and no seed repeats: these tests are about the report
    "text": ["--sample", "300", "--folds", "1", "--trials", "4", "--max-epochs", "2"],
    "forecast": ["--dataset", "gas", "--trials", "4", "--max-epochs", "2"],
    "series": ["--dataset", "gunpoint", "--trials", "4", "--max-epochs", "3", "--folds", "1"],
}
SECTIONS = {"text": "Classification", "forecast": "Forecast", "series": "Classification"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    from typer.testing import CliRunner

    runner = CliRunner()
    root = tmp_path_factory.mktemp("reports")
    out = {}
    for kind, args in RUNS.items():
        run_dir = root / kind
        tracking = ["--mlflow", (root / "mlruns").as_uri()] if kind == "text" else []
        result = runner.invoke(app, ["tune", *args, *tracking, "--workers", "1", "--repeats",
                                     "1", "--run-dir", str(run_dir)])
        assert result.exit_code == 0, result.output
        out[kind] = run_dir
    return out


@pytest.mark.realdata
@pytest.mark.parametrize("kind", list(RUNS))
def test_every_run_writes_a_report_with_its_sections(runs, kind):
    page = (runs[kind] / "report.html").read_text()
    for section in ("Summary", "Key factors", "Search", "Best model", SECTIONS[kind]):
        assert f"<h2>{section}" in page, section
    assert page.count("<script>") == 1 + page.count("Plotly.newPlot")  # plotly.js once
    assert "cdn.plot.ly" not in page.split("</script>", 1)[1]  # no CDN outside the library
    assert "Test metrics" in page


@pytest.mark.realdata
@pytest.mark.parametrize("kind", list(RUNS))
def test_metrics_json_has_an_interval_for_every_scalar_metric(runs, kind):
    import json

    from grutune.metrics.intervals import scalar_metrics

    metrics = json.loads((runs[kind] / "metrics.json").read_text())
    intervals = metrics["intervals"]
    expected = {k for k in scalar_metrics(metrics)
                if k not in ("n", "n_windows", "horizon", "season", "best_trial", "skill")}
    assert expected - set(intervals) == set(), expected - set(intervals)
    for key, (low, high) in intervals.items():
        value = scalar_metrics(metrics)[key]
        assert low <= value + 1e-9 and value - 1e-9 <= high, key
    page = (runs[kind] / "report.html").read_text()
    assert "percentile bootstrap" in page


@pytest.mark.realdata
@pytest.mark.skipif(chromium() is None, reason="chromium not installed (.ci/run installs it)")
@pytest.mark.parametrize("kind", list(RUNS))
def test_report_renders_in_a_browser_offline(runs, kind):
    report = open_page(runs[kind] / "report.html", ARTIFACTS / f"report-{kind}.png")
    assert report.errors == []
    outside = [u for u in report.requests
               if not (u.startswith("data:") or u == (runs[kind] / "report.html").as_uri())]
    assert outside == []
    assert len(report.drawn) >= 8 and all(report.drawn), report.drawn
    assert (ARTIFACTS / f"report-{kind}.png").stat().st_size > 10_000


@pytest.mark.realdata
def test_report_command_rebuilds_and_works_before_metrics_exist(runs, runner, tmp_path):
    copy = tmp_path / "running"
    shutil.copytree(runs["text"], copy)
    for name in ("metrics.json", "test_predictions.csv", "report.html"):
        (copy / name).unlink()
    result = runner.invoke(app, ["report", str(copy)])
    assert result.exit_code == 0, result.stderr
    page = (copy / "report.html").read_text()
    assert "No test metrics yet" in page and "<h2>Search" in page
    result = runner.invoke(app, ["report", str(tmp_path / "nowhere")])
    assert result.exit_code == 2 and "nowhere: no such directory" in result.stderr
    (tmp_path / "empty").mkdir()
    result = runner.invoke(app, ["report", str(tmp_path / "empty")])
    assert result.exit_code == 2 and "not a grutune run directory" in result.stderr


def test_report_of_a_synthetic_run_dir_without_study(tmp_path):
    """A run directory with only its config (a study that has not started) still gets a
    page: named after its dataset, with the summary and no metrics yet."""
    (tmp_path / "config.json").write_text('{"data": {"dataset": "x"}}')
    path = build_report(tmp_path)
    assert path == tmp_path / "report.html"
    page = path.read_text()
    assert "<title>grutune report: x</title>" in page and "<h2>Summary" in page
    assert "No test metrics yet" in page


@pytest.mark.realdata
@pytest.mark.parametrize("kind,fmt", [("text", "onnx"), ("text", "torchscript"),
                                      ("forecast", "onnx")])
def test_export_matches_the_bundle_on_real_test_inputs(runs, kind, fmt, tmp_path):
    from grutune.export import TOLERANCE, export_bundle

    out = tmp_path / f"model-{kind}.{fmt}"
    result = export_bundle(runs[kind] / "model", fmt, out)
    assert out.exists() and result.path == out
    assert result.max_abs_diff <= TOLERANCE
    assert result.rows > 0
    if kind == "text":  # variable lengths went through the exported graph
        assert result.lengths[0] < result.lengths[1]


@pytest.mark.realdata
def test_an_exported_forecaster_forecasts_in_the_data_units_as_predict_does(runs, tmp_path):
    """The ONNX file of a forecaster reads raw values and writes unscaled forecasts: fed
    the last window of gas production, it gives ``grutune predict``'s numbers."""
    import numpy as np

    from grutune.api import load
    from grutune.data.datasets import get_dataset
    from grutune.export import _onnx_runner, export_bundle

    history = get_dataset("gas").loader()[0].iloc[:400]
    model = load(runs["forecast"] / "model")
    want = model.forecast(history)["value"].to_numpy()
    out = export_bundle(runs["forecast"] / "model", "onnx", tmp_path / "gas.onnx").path
    window = model.bundle.state["window"]
    x = torch.tensor(history["value"].to_numpy(np.float32)[-window:]).reshape(1, window, 1)
    got = _onnx_runner(out)(x, torch.tensor([window]))  # [1, H, 1]
    assert got.shape == (1, len(want), 1)
    np.testing.assert_allclose(got.reshape(-1), want, rtol=1e-4)
    assert want.min() > 1000  # data units (gas production in the thousands), not scaled


@pytest.mark.realdata
def test_export_command_prints_the_check(runs, runner):
    result = runner.invoke(app, ["export", str(runs["text"] / "model"), "--format", "onnx"])
    assert result.exit_code == 0, result.stderr
    assert "match the bundle's within" in result.stderr
    result = runner.invoke(app, ["export", str(runs["text"] / "model"), "--format", "tflite"])
    assert result.exit_code == 2 and "--format" in result.stderr


@pytest.mark.realdata
def test_mlflow_file_store_holds_every_trial_and_the_bundle(runs):
    from mlflow.tracking import MlflowClient

    study = rd.read_run(runs["text"]).study
    client = MlflowClient((runs["text"].parent / "mlruns").as_uri())
    experiment = client.get_experiment_by_name(f"grutune-{study.study_name}")
    logged = client.search_runs([experiment.experiment_id], max_results=100)
    parents = [r for r in logged if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1
    parent = parents[0]
    children = [r for r in logged if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(int(r.data.tags["optuna.trial"]) for r in children) == \
        [t.number for t in study.trials]
    assert parent.data.metrics["test.accuracy"] == pytest.approx(
        rd.read_run(runs["text"]).metrics["accuracy"])
    assert "model/bundle.json" in [a.path for a in client.list_artifacts(parent.info.run_id,
                                                                          "model")]
    for run in children:
        trial = study.trials[int(run.data.tags["optuna.trial"])]
        assert float(run.data.params["lr"]) == pytest.approx(trial.params["lr"])
        curve = client.get_metric_history(run.info.run_id, "val_metric")
        assert [m.step for m in curve] == list(range(1, trial.user_attrs["epochs"] + 1))


@pytest.mark.realdata
def test_dashboard_serves_the_run_on_localhost(runs):
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "grutune", "dashboard", str(runs["text"]),
                             "--port", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies",
                                            timeout=5) as r:
                    body = r.read().decode()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.5)
        study = rd.read_run(runs["text"]).study
        assert study.study_name in body
    finally:
        proc.terminate()
        proc.wait(timeout=30)
