"""Forecasting: cleaning, chronological windows, no look-ahead, metrics, CLI end to end."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from grutune.cli import app
from grutune.config import DataConfig, ModelConfig
from grutune.exceptions import DataError
from grutune.metrics.scores import forecast_errors, forecast_metrics, mase_scale
from grutune.nn.model import (
    SMOOTH_START,
    ForecastModel,
    baseline_forecast,
    make_model,
    smoothed_forecast,
)
from grutune.search_space import load_space
from grutune.tasks import get_task
from grutune.tasks.series_frame import clean_series


def make_series(n: int = 300, seed: int = 0) -> pd.DataFrame:
    """Daily values with a weekly season, a slow trend and noise; one covariate."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    y = 20 + 0.02 * t + 3 * np.sin(2 * np.pi * t / 7) + 0.3 * rng.standard_normal(n)
    return pd.DataFrame({"date": pd.date_range("2024-01-01", periods=n, freq="D")
                         .strftime("%Y-%m-%d"), "load": y.round(4),
                         "temp": (10 + rng.standard_normal(n)).round(3)})


def _prepare(path, **kwargs):
    task = get_task("forecast")
    cfg = DataConfig(path=str(path), task="forecast", time_column="date", target_column="load",
                     **kwargs)
    space = load_space(task.default_space(task.space_context(cfg)), None)
    return task, task.prepare(cfg, None, space)


# --- cleaning ------------------------------------------------------------------------

def test_clean_series_sorts_fills_gaps_and_counts():
    frame = make_series(40).sample(frac=1, random_state=0)  # shuffled rows
    frame = frame.drop(index=[10, 11])  # a two-day gap
    frame.loc[20, "load"] = None  # an isolated missing value
    clean = clean_series(frame, "date", ["load"], "d.csv")
    assert clean.freq == "D" and clean.season == 7 and len(clean.values) == 40
    assert clean.gaps == 2 and clean.filled == 3
    assert clean.values.index.is_monotonic_increasing
    original = make_series(40)["load"]
    # linear interpolation between the neighbours of the gap
    assert clean.values["load"].iloc[10] == pytest.approx(
        original[9] + (original[12] - original[9]) / 3)


@pytest.mark.parametrize("frame,message", [
    (pd.DataFrame({"date": ["2024-01-01", "2024-01-02", "2024-01-02"], "load": [1, 2, 3]}),
     "has '2024-01-02' twice (data rows 2 and 3)"),
    (pd.DataFrame({"date": ["2024-01-01", "soon", "2024-01-03"], "load": [1, 2, 3]}),
     "unparseable time 'soon' (data row 2)"),
    (pd.DataFrame({"date": ["2024-01-01", "2024-01-02", "2024-01-03"], "load": [1, "x", 3]}),
     "has the non-numeric value 'x' (data row 2)"),
    (pd.DataFrame({"date": pd.date_range("2024-01-01", periods=12).astype(str),
                   "load": ["spam", "ham"] * 6}), "holds labels, not numbers"),
    (pd.DataFrame({"date": pd.date_range("2024-01-01", periods=12).astype(str),
                   "load": [0, 1] * 6}), "only takes the values [0, 1], like a class label"),
    (pd.DataFrame({"date": pd.date_range("2024-01-01", periods=12).astype(str),
                   "load": [3.0] * 12}), "target 'load' is constant (every value is 3.0)"),
    (pd.DataFrame({"date": ["2024-01-01", "2024-01-02", "2024-01-03"],
                   "load": [1.0, float("inf"), 3.0]}), "has the value inf in data row 2"),
    (pd.DataFrame({"date": ["2024-01-01", "2024-01-02T00:00:00+01:00", "2024-01-03"],
                   "load": [1.0, 2.0, 3.0]}), "mixes times with a UTC offset (first "
     "'2024-01-02T00:00:00+01:00' in data row 2) and times without one (first '2024-01-01' "
     "in data row 1)"),
])
def test_clean_series_refuses_bad_series(frame, message):
    with pytest.raises(DataError, match=None) as err:
        clean_series(frame, "date", ["load"], "d.csv")
    assert message in str(err.value) and str(err.value).startswith("d.csv: ")


def test_numeric_times_and_row_order():
    frame = pd.DataFrame({"t": [1990.0, 1990.5, 1991.5, 1992.0], "y": [1.0, 2.0, 4.0, 5.0]})
    clean = clean_series(frame, "t", ["y"], "d.csv")
    assert clean.time_kind == "number" and clean.gaps == 1
    assert clean.values["y"].tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert clean_series(frame, None, ["y"], "d.csv").time_kind == "row"


# --- windows and split ------------------------------------------------------------------

def test_windows_never_straddle_parts_and_test_rolls_by_horizon(tmp_path):
    path = tmp_path / "s.csv"
    make_series(300).to_csv(path, index=False)
    task, prep = _prepare(path, horizon=7)
    state, split = prep.state, prep.split
    n, window, h = 300, state["window"], 7
    train_end = pd.Timestamp(split["train"][1])
    val_end = pd.Timestamp(split["val"][1])
    times = pd.date_range("2024-01-01", periods=n, freq="D")
    assert state["season"] == 7 and window == max(state["season"], 56)  # 8 x max(7, 7)
    # targets: y of a window = the scaled values right after its input
    scaled = (make_series(300)["load"].to_numpy() - state["center"][0]) / state["scale"][0]
    for part, data in (("train", prep.train), ("val", prep.val), ("test", prep.test)):
        ys = data.y[..., 0].numpy()
        starts = [int(np.flatnonzero(np.isclose(scaled, row[0], atol=1e-5))[0]) for row in ys]
        for start, row, x in zip(starts, ys, data.x[..., 0].numpy(), strict=True):
            np.testing.assert_allclose(row, scaled[start:start + h], atol=1e-5)
            np.testing.assert_allclose(x, scaled[start - window:start], atol=1e-5)
            first, last = times[start], times[start + h - 1]
            if part == "train":
                assert last <= train_end
            elif part == "val":
                assert train_end < first and last <= val_end
            else:
                assert val_end < first
        if part == "test":
            assert np.all(np.diff(starts) == h) and starts[-1] + h == n


def test_scaling_is_fitted_on_the_training_part_only(tmp_path):
    series = make_series(300)
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    series.to_csv(a, index=False)
    changed = series.copy()
    changed.loc[250:, "load"] *= 10  # only the test period differs
    changed.to_csv(b, index=False)
    state_a, state_b = _prepare(a)[1].state, _prepare(b)[1].state
    assert state_a["center"] == state_b["center"] and state_a["scale"] == state_b["scale"]
    assert state_a["mase_scale"] == state_b["mase_scale"]


def test_no_look_ahead(tmp_path):
    """Changing values after a window's last input leaves that window's forecast unchanged."""
    series = make_series(300)
    a = tmp_path / "a.csv"
    series.to_csv(a, index=False)
    task, prep = _prepare(a, horizon=7, covariates="temp")
    torch.manual_seed(0)
    cfg = task.model_config({"embed_dim": 8, "cell": "gru", "hidden_size": 8, "num_layers": 2,
                             "bidirectional": True, "pooling": "attention", "dropout": 0.0,
                             "init": "default", "lookback": 14, "baseline": "seasonal",
                             "window_norm": True}, prep.state)
    model = ForecastModel(cfg).eval()
    torch.nn.init.normal_(model.head.weight)  # a model whose GRU output matters
    with torch.no_grad():
        before = model(prep.test.x, prep.test.lengths)
    cut = 300 - 2 * 7  # the second-to-last test window's origin
    changed = series.copy()
    changed.loc[cut:, ["load", "temp"]] += 50.0
    b = tmp_path / "b.csv"
    changed.to_csv(b, index=False)
    _, prep_b = _prepare(b, horizon=7, covariates="temp")
    with torch.no_grad():
        after = model(prep_b.test.x, prep_b.test.lengths)
    # every test window whose input ends at or before `cut` forecasts the same
    torch.testing.assert_close(after[:-1], before[:-1], rtol=0, atol=0)
    assert not torch.allclose(after[-1], before[-1])  # the change is visible later on


def test_baselines_and_model_start_as_the_baseline():
    past = torch.tensor([[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]]).unsqueeze(-1)  # [1, 6, 1]
    assert baseline_forecast(past, "naive", 4, 3).flatten().tolist() == [6.0] * 4
    assert baseline_forecast(past, "seasonal", 4, 3).flatten().tolist() == [4.0, 5.0, 6.0, 4.0]
    cfg = ModelConfig(num_outputs=4, input_dim=1, embed_dim=4, hidden_size=4, horizon=4,
                      targets=1, season=3, baseline="seasonal", window_norm=True)
    with torch.no_grad():  # the head starts at zero: the untrained model is its baseline
        assert torch.equal(ForecastModel(cfg)(past, torch.tensor([6])),
                           baseline_forecast(past, "seasonal", 4, 3))


def test_the_smoothed_anchor_by_hand():
    """Season 1: alpha near 1 is the last value, alpha near 0 the window mean, alpha 0.5
    the exponentially weighted mean; a repeating season plus a level is continued exactly."""
    past = torch.tensor([1.0, 2.0, 4.0]).view(1, 3, 1)
    near = lambda logit: smoothed_forecast(past, torch.tensor([logit]), 2, 1)  # noqa: E731
    torch.testing.assert_close(near(14.0), torch.full((1, 2, 1), 4.0), atol=1e-4, rtol=0)
    torch.testing.assert_close(near(-14.0), torch.full((1, 2, 1), 7 / 3), atol=1e-4, rtol=0)
    weighted = (0.125 * 1 + 0.25 * 2 + 0.5 * 4) / 0.875  # alpha 0.5: weights 0.5^age
    torch.testing.assert_close(near(0.0), torch.full((1, 2, 1), weighted))
    for logit in (-200.0, 200.0):  # alpha rounds to 0 or 1 in float32: still finite
        assert torch.isfinite(near(logit)).all()
    torch.testing.assert_close(near(200.0), torch.full((1, 2, 1), 4.0))
    season = torch.tensor([3.0, -1.0, -2.0])  # deviations from the season's mean (zero)
    periodic = (10.0 + season.repeat(4)).view(1, 12, 1)
    for logit in (-2.0, 0.0, 2.0):
        out = smoothed_forecast(periodic, torch.tensor([logit]), 5, 3).flatten()
        torch.testing.assert_close(out, 10.0 + season.repeat(2)[:5])


def _anchored(baseline: str) -> ModelConfig:
    """A small forecaster of 2 targets, horizon 3, season 4, on ``baseline``."""
    return ModelConfig(num_outputs=6, input_dim=2, embed_dim=4, hidden_size=4, horizon=3,
                       targets=2, season=4, baseline=baseline, kind="forecast")


def test_a_smooth_anchored_model_starts_as_its_anchor_learns_alpha_and_reloads():
    past = torch.randn(4, 12, 2)
    cfg = _anchored("smooth")
    model = ForecastModel(cfg)
    out = model(past, torch.full((4,), 12))
    torch.testing.assert_close(out, smoothed_forecast(past, torch.full((2,), SMOOTH_START),
                                                      3, 4))
    out.abs().mean().backward()
    assert model.smoothing.grad is not None and model.smoothing.grad.abs().sum() > 0
    again = make_model(cfg)
    again.load_state_dict(model.state_dict())  # a bundle's weights carry the learned alpha
    torch.testing.assert_close(again(past, torch.full((4,), 12)), out.detach())


@pytest.mark.parametrize("baseline", ["smooth", "seasonal"])
def test_an_anchored_forecaster_exports_to_onnx(baseline, tmp_path):
    """Each anchor goes through the ONNX graph: the exported model forecasts as the model."""
    from grutune.export import _onnx, _onnx_runner
    from grutune.nn.recurrence import plain_gru

    torch.manual_seed(0)
    model = make_model(_anchored(baseline)).eval()
    torch.nn.init.normal_(model.head.weight)  # the network's part matters too
    x, lengths = torch.randn(5, 12, 2), torch.full((5,), 12)
    with plain_gru(), torch.no_grad():  # as export_bundle traces it
        _onnx(model, x, lengths, tmp_path / "m.onnx")
    with torch.no_grad():
        want = model(x, lengths).numpy()
    np.testing.assert_allclose(_onnx_runner(tmp_path / "m.onnx")(x, lengths), want,
                               atol=1e-5, rtol=0)


# --- metrics ---------------------------------------------------------------------------

def test_forecast_metrics_by_hand():
    y = np.array([[[10.0], [20.0]], [[30.0], [40.0]]])  # [2 windows, 2 steps, 1 target]
    pred = y + np.array([[[1.0], [-3.0]], [[2.0], [0.0]]])
    scale = mase_scale(np.array([[1.0], [3.0], [4.0], [8.0]]), season=1)  # |2|,|1|,|4| -> 7/3
    errors = forecast_errors(y, pred, scale)
    assert errors["mae"] == pytest.approx(1.5)
    assert errors["rmse"] == pytest.approx(np.sqrt((1 + 9 + 4 + 0) / 4))
    assert errors["mase"] == pytest.approx(1.5 / (7 / 3))
    assert errors["mape"] == pytest.approx(100 * np.mean([0.1, 0.15, 2 / 30, 0.0]))
    assert errors["smape"] == pytest.approx(100 * np.mean([2 / 21, 6 / 37, 4 / 62, 0.0]))
    assert errors["mae_by_step"] == [1.5, 1.5]
    zero = forecast_errors(np.zeros((1, 2, 1)), np.ones((1, 2, 1)), np.ones(1))
    assert zero["mape"] is None and "near) zero" in zero["mape_note"]
    both = forecast_metrics(y, pred, {"naive": y + 3.0, "seasonal_naive": y + 6.0}, scale,
                            ["y"])
    assert both["best_baseline"] == "naive"
    assert both["skill"] == pytest.approx(1 - 1.5 / 3.0)


# --- command line ------------------------------------------------------------------------

def _tune(runner, path, run_dir, *extra):
    return runner.invoke(app, ["tune", str(path), "--task", "forecast", "--time", "date",
                               "--target", "load", "--trials", "2", "--max-epochs", "3",
                               "--repeats", "1", "--workers", "1", "--run-dir", str(run_dir),
                               *extra])


def test_cli_tune_and_predict_the_next_horizon(runner, tmp_path):
    path = tmp_path / "load.csv"
    series = make_series(300)
    series.to_csv(path, index=False)
    run_dir = tmp_path / "run"
    result = _tune(runner, path, run_dir, "--covariates", "temp", "--horizon", "7")
    assert result.exit_code == 0, result.output
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["task"] == "forecast" and metrics["horizon"] == 7
    assert set(metrics["baselines"]) == {"naive", "seasonal_naive"}
    assert metrics["skill"] == pytest.approx(
        1 - metrics["mase"] / min(b["mase"] for b in metrics["baselines"].values()))
    # the ensemble is the best-first prefix of the top trials that scores best on validation
    chosen = metrics["model"]["member_validation"]
    assert chosen == sorted(chosen) and metrics["validation"]["mase"] <= chosen[0] + 1e-9
    saved = pd.read_csv(run_dir / "test_predictions.csv")
    assert len(saved) == metrics["n_windows"] * 7
    # predicting from the history up to the last test origin repeats that window's forecast
    history = tmp_path / "history.csv"
    series.iloc[:-7].to_csv(history, index=False)
    out = tmp_path / "forecast.csv"
    result = runner.invoke(app, ["predict", str(run_dir / "model"), str(history), "--out",
                                 str(out)])
    assert result.exit_code == 0, result.output
    forecast = pd.read_csv(out)
    assert forecast["date"].tolist() == series["date"].iloc[-7:].tolist()
    last = saved[saved["window"] == saved["window"].max()]
    np.testing.assert_allclose(forecast["load"], last["forecast"], rtol=1e-5)


@pytest.mark.parametrize("case,message", [
    ("non-numeric target", "column 'load' has the non-numeric value 'twelve' (data row 5)"),
    ("too short", "the series has 40 time steps; lookback"),
    ("duplicate timestamps", "has '2024-01-03' twice (data rows 3 and 4)"),
    ("unparseable time", "unparseable time '2024-13-45' (data row 7)"),
    ("label column", "forecast column 'load' holds labels, not numbers"),
    ("folds", "--folds: a forecast study validates on the period after training"),
])
def test_bad_forecast_input_exits_2(runner, tmp_path, case, message):
    series = make_series(300)
    extra: list[str] = []
    if case == "non-numeric target":
        series["load"] = series["load"].astype(object)
        series.loc[4, "load"] = "twelve"
    elif case == "too short":
        series = series.iloc[:40]
    elif case == "duplicate timestamps":
        series.loc[3, "date"] = series.loc[2, "date"]
    elif case == "unparseable time":
        series.loc[6, "date"] = "2024-13-45"
    elif case == "label column":
        series["load"] = np.where(np.arange(300) % 2, "up", "down")
    else:
        extra = ["--folds", "2"]
    path = tmp_path / "bad.csv"
    series.to_csv(path, index=False)
    run_dir = tmp_path / "run"
    result = _tune(runner, path, run_dir, *extra)
    assert result.exit_code == 2, result.output
    assert message in result.output, result.output
    assert "Traceback" not in result.output and not run_dir.exists()


@pytest.mark.realdata
@pytest.mark.parametrize("name,steps,horizon,season", [
    ("sunspots", 3177, 12, 12), ("gas", 476, 12, 12), ("taylor", 4032, 48, 48)])
def test_builtin_forecast_datasets_prepare(name, steps, horizon, season):
    task = get_task("forecast")
    cfg = DataConfig(dataset=name, task="forecast")
    prep = task.prepare(cfg, None, load_space(task.default_space(task.space_context(cfg)), None))
    assert prep.split["steps"] == steps
    assert (prep.state["horizon"], prep.state["season"]) == (horizon, season)
    assert prep.summary["interpolated"] == 0 and len(prep.test) >= 5


def test_several_targets_are_forecast_together(tmp_path):
    path = tmp_path / "two.csv"
    make_series(200).to_csv(path, index=False)
    task = get_task("forecast")
    cfg = DataConfig(path=str(path), task="forecast", time_column="date",
                     target_column="load,temp", horizon=5)
    prep = task.prepare(cfg, None, load_space(task.default_space(task.space_context(cfg)), None))
    assert prep.test.y.shape[1:] == (5, 2) and prep.state["targets"] == ["load", "temp"]
    naive = baseline_forecast(prep.test.x, "naive", 5, 1)  # a "model" that repeats the last
    metrics = task.evaluate(naive, prep.test, prep.state)
    assert set(metrics["per_target"]) == {"load", "temp"}
    assert metrics["mase"] == pytest.approx(metrics["baselines"]["naive"]["mase"])
    assert metrics["mase"] == pytest.approx(
        np.mean([m["mase"] for m in metrics["per_target"].values()]))
