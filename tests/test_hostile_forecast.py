"""Hostile forecast input: non-finite values, time zones, flags, constants, quiet repairs.

Refusals go through ``hostile.assert_refused`` (exit 2, one ``error:`` line naming file,
data row, column and value, no traceback, nothing written); behaviour tests tune and
predict small series through the CLI (1 trial, 1 epoch: about 10 s each).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from grutune.cli import app
from grutune.data.readers import show
from grutune.exceptions import DataError
from grutune.tasks.series_frame import clean_series

from .hostile import assert_refused

QUICK = ["--horizon", "5", "--trials", "1", "--max-epochs", "1", "--repeats", "1",
         "--workers", "1"]
HISTORY = 150  # predict histories: the first 150 rows of a model's series


def _daily(n: int = 200) -> pd.DataFrame:
    """Naive daily times, a trending sine target ``y`` and a 0/1 weekend flag ``holiday``."""
    t = np.arange(n)
    return pd.DataFrame({"ts": pd.date_range("2020-01-01", periods=n, freq="D")
                         .strftime("%Y-%m-%d"),
                         "y": 10 + 3 * np.sin(t / 5) + t / 50,
                         "holiday": (t % 7 >= 5).astype(int)})


def _zoned(start: str, n: int, freq: str, zone: str) -> pd.DataFrame:
    """A series at local ``freq`` steps in ``zone`` (tz-aware times), with a daily cycle."""
    times = pd.date_range(start, periods=n, freq=freq, tz=zone)
    t = np.arange(n)
    period = 24 if freq == "h" else 7
    return pd.DataFrame({"ts": times, "y": 5 + np.sin(2 * np.pi * t / period) + t / 100})


def _iso(frame: pd.DataFrame) -> pd.DataFrame:
    """Times as ISO strings with their UTC offsets (2021-03-28T03:00:00+02:00)."""
    return frame.assign(ts=[t.isoformat() for t in frame["ts"]])


def _save(frame: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    elif path.suffix == ".jsonl":  # a bare Infinity, as JavaScript writes it
        text = frame.to_json(orient="records", lines=True)
        path.write_text(text.replace('"Infinity"', "Infinity"), encoding="utf-8")
    else:
        frame.to_csv(path, index=False)
    return path


def _tune(runner: CliRunner, path: Path, run_dir: Path, covariates: bool = False):
    extra = ["--covariates", "holiday"] if covariates else []
    return runner.invoke(app, ["tune", str(path), "--task", "forecast", "--time", "ts",
                               "--target", "y", *extra, *QUICK, "--run-dir", str(run_dir)])


# --- models shared by the predict cases (tuned once per module) --------------------------

MODELS = {
    # name: (series, file name, with the holiday covariate); zoned CSV times: ISO strings
    "daily": (_daily, "daily.csv", True),
    "berlin-hourly-spring": (lambda: _zoned("2021-03-25", 240, "h", "Europe/Berlin"),
                             "berlin.parquet", False),
    "new-york-hourly-fall": (lambda: _zoned("2021-11-04", 240, "h", "America/New_York"),
                             "new-york.csv", False),
    "sydney-daily-fall": (lambda: _zoned("2021-03-01", 200, "D", "Australia/Sydney"),
                          "sydney.parquet", False),
    "berlin-daily-spring": (lambda: _zoned("2021-01-01", 200, "D", "Europe/Berlin"),
                            "berlin-daily.csv", False),
}


class _Models:
    """Tunes each of ``MODELS`` on first use; the daily one from data with two repairs."""

    def __init__(self, root: Path):
        self.root, self.done = root, {}

    def series(self, name: str) -> pd.DataFrame:
        """The model's series as written to its file (zoned CSV times as ISO strings)."""
        make, file, _ = MODELS[name]
        frame = make()
        return _iso(frame) if file.endswith(".csv") and name != "daily" else frame

    def __call__(self, name: str) -> tuple[Path, object]:
        if name not in self.done:
            file, covariates = MODELS[name][1:]
            frame = self.series(name)
            if name == "daily":  # one empty value (data row 21) and one missing day
                frame.loc[20, "y"] = np.nan
                frame = frame.drop(index=40).reset_index(drop=True)
            path = _save(frame, self.root / file)
            run_dir = self.root / f"run-{name}"
            result = _tune(CliRunner(), path, run_dir, covariates)
            assert result.exit_code == 0, (result.stderr, result.output, result.exception)
            self.done[name] = (run_dir, result)
        return self.done[name]


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> _Models:
    return _Models(tmp_path_factory.mktemp("models"))


# --- tune refusals ----------------------------------------------------------------------

def _set(column: str, row: int, value: object):
    def change(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.copy()
        frame[column] = frame[column].astype(object if isinstance(value, str) else float)
        frame.loc[row, column] = value
        return frame
    return change


def _mixed_times(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    frame.loc[9, "ts"] = "2020-01-10T00:00:00+01:00"
    return frame


def _aware_then_naive(frame: pd.DataFrame) -> pd.DataFrame:
    hourly = _iso(_zoned("2021-03-25", 200, "h", "Europe/Berlin"))
    hourly.loc[19, "ts"] = "2021-03-25 19:00:00"
    return hourly.assign(holiday=frame["holiday"])


TUNE_CASES = {
    "inf target": (_set("y", 5, np.inf), "d.csv",
                   "d.csv: forecast target 'y' has the value inf in data row 6; values must "
                   "be finite numbers between"),
    "-inf target": (_set("y", 9, -np.inf), "d.csv",
                    "forecast target 'y' has the value -inf in data row 10"),
    "1e40 target": (_set("y", 0, 1e40), "d.csv",
                    "forecast target 'y' has the value 1e+40 in data row 1"),
    "just above float32": (_set("y", 120, 3.5e38), "d.csv",
                           "forecast target 'y' has the value 3.5e+38 in data row 121; "
                           "values must be finite numbers between -3.403e+38 and 3.403e+38 "
                           "(the models compute in float32)"),
    "beyond float32 after scaling": (
        lambda f: _set("y", 190, 3e38)(f.assign(y=0.01 * np.sin(np.arange(200) / 5))), "d.csv",
        "d.csv: forecast column 'y' has the value 3e+38 in data row 191 (time 2020-07-09 "
        "00:00:00), 4."),
    "-1e39 covariate": (_set("holiday", 150, -1e39), "d.csv",
                        "forecast covariate 'holiday' has the value -1e+39 in data row 151"),
    "inf covariate": (_set("holiday", 3, np.inf), "d.csv",
                      "forecast covariate 'holiday' has the value inf in data row 4"),
    "inf in parquet": (_set("y", 7, np.inf), "d.parquet",
                       "d.parquet: forecast target 'y' has the value inf in data row 8"),
    "Infinity in json lines": (_set("y", 11, "Infinity"), "d.jsonl",
                               "d.jsonl: forecast target 'y' has the value inf in data row 12"),
    "1e40 as text": (lambda f: f.assign(y=f["y"].astype(str).where(f.index != 30, "1e40")),
                     "d.jsonl", "forecast target 'y' has the value 1e+40 in data row 31"),
    "inf as text in json lines": (_set("holiday", 2, "inf"), "d.jsonl",
                                  "forecast covariate 'holiday' has the value inf in data "
                                  "row 3"),
    "all-missing target": (lambda f: f.assign(y=np.nan), "d.csv",
                           "forecast target 'y' has no values (all 200 data rows are empty)"),
    "all-missing covariate": (lambda f: f.assign(holiday=np.nan), "d.csv",
                              "forecast covariate 'holiday' has no values (all 200 data rows "
                              "are empty); an empty column cannot be interpolated"),
    "constant target": (lambda f: f.assign(y=5), "d.csv",
                        "forecast target 'y' is constant (every value is 5); a constant "
                        "series cannot be scaled or forecast"),
    "constant float target": (lambda f: f.assign(y=2.5), "d.parquet",
                              "forecast target 'y' is constant (every value is 2.5)"),
    "constant covariate": (lambda f: f.assign(holiday=1), "d.csv",
                           "forecast covariate 'holiday' is constant (every value is 1); it "
                           "carries no information"),
    "naive then aware times": (_mixed_times, "d.csv",
                               "time column 'ts' mixes times with a UTC offset (first "
                               "'2020-01-10T00:00:00+01:00' in data row 10) and times without "
                               "one (first '2020-01-01' in data row 1)"),
    "aware then naive times": (_aware_then_naive, "d.csv",
                               "time column 'ts' mixes times with a UTC offset (first "
                               "'2021-03-25T00:00:00+01:00' in data row 1) and times without "
                               "one (first '2021-03-25 19:00:00' in data row 20)"),
    "mixed times in json lines": (_mixed_times, "d.jsonl", "mixes times with a UTC offset"),
    "long covariate value": (_set("holiday", 4, "x" * 5000), "d.csv",
                             "forecast column 'holiday' has the non-numeric value "
                             "'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'... (data row 5); "
                             "forecasting needs a numeric series (a covariate must be numbers"),
    "long bad time": (_set("ts", 6, "y" * 5000), "d.csv",
                      f"unparseable time {show('y' * 5000)} (data row 7)"),
}


@pytest.mark.parametrize("name", list(TUNE_CASES))
def test_tune_refuses(tmp_path, name):
    change, file, message = TUNE_CASES[name]
    path = _save(change(_daily()), tmp_path / file)
    args = ["tune", path, "--task", "forecast", "--time", "ts", "--target", "y",
            "--covariates", "holiday", *QUICK, "--run-dir", tmp_path / "run"]
    line = assert_refused(args, message, [tmp_path])
    assert len(line) < 400, line  # values are quoted cut short


# --- predict refusals -------------------------------------------------------------------

def _history(frame: pd.DataFrame, change=None) -> pd.DataFrame:
    history = frame.iloc[:HISTORY].reset_index(drop=True)
    return change(history) if change else history


PREDICT_CASES = {
    "inf in the history": ("daily", _set("y", 5, np.inf), "history.csv",
                           "history.csv: forecast target 'y' has the value inf in data row 6"),
    "-inf covariate in the history": ("daily", _set("holiday", 99, -np.inf), "history.csv",
                                      "forecast covariate 'holiday' has the value -inf in "
                                      "data row 100"),
    "1e40 in the history": ("daily", _set("y", 149, 1e40), "history.parquet",
                            "history.parquet: forecast target 'y' has the value 1e+40 in "
                            "data row 150"),
    "all-missing covariate in the history": ("daily", lambda f: f.assign(holiday=np.nan),
                                             "history.csv", "forecast covariate 'holiday' "
                                             "has no values (all 150 data rows are empty)"),
    "too large after scaling": ("daily", _set("holiday", 149, 3e38), "history.csv",
                                "history.csv: forecast covariate 'holiday' has the value "
                                "3e+38 in data row 150, 6.696e+38 after scaling like the "
                                "training data: beyond float32's range"),
    "mixed times in the history": ("daily", _mixed_times, "history.csv",
                                   "mixes times with a UTC offset (first "
                                   "'2020-01-10T00:00:00+01:00' in data row 10)"),
    "offsets for a model without": ("daily", lambda f: f.assign(
        ts=[f"{t}T00:00:00+01:00" for t in f["ts"]]), "history.csv",
        "history.csv: the times have UTC offsets and are daily or coarser (used as local "
        "wall-clock times); the model was trained on times that had no UTC offset"),
    "no offsets for a UTC model": ("berlin-hourly-spring", lambda f: f.assign(
        ts=f["ts"].dt.tz_localize(None)), "history.parquet",
        "the times have no UTC offset; the model was trained on times that had UTC offsets "
        "and were sub-daily"),
    "no offsets for a local-time model": ("berlin-daily-spring", lambda f: f.assign(
        ts=[t[:10] for t in f["ts"]]), "history.csv",
        "the model was trained on times that had UTC offsets and were daily or coarser"),
    "inf in an hourly zoned history": ("new-york-hourly-fall", _set("y", 80, np.inf),
                                       "history.csv",
                                       "forecast target 'y' has the value inf in data row 81"),
}


@pytest.mark.parametrize("name", list(PREDICT_CASES))
def test_predict_refuses(models, tmp_path, name):
    model, change, file, message = PREDICT_CASES[name]
    run_dir, _ = models(model)
    history = _save(_history(models.series(model), change), tmp_path / file)
    args = ["predict", run_dir / "model", history, "--out", tmp_path / "forecast.csv"]
    assert_refused(args, message, [tmp_path, run_dir])


# --- flags, constants and the rules' scope ----------------------------------------------

def test_flag_covariate_tunes_and_forecasts(models, tmp_path):
    """A 0/1 covariate (a holiday flag) is a covariate, not a class-label target."""
    run_dir, _ = models("daily")
    state = json.loads((run_dir / "split.json").read_text())
    assert "holiday" in state["summary"]["description"]
    history = _save(_history(_daily()), tmp_path / "history.csv")
    result = CliRunner().invoke(app, ["predict", str(run_dir / "model"), str(history)])
    assert result.exit_code == 0, result.stderr
    forecast = pd.read_csv(pd.io.common.StringIO(result.stdout))
    assert len(forecast) == 5 and np.isfinite(forecast["y"]).all()
    assert forecast["ts"].tolist() == pd.date_range("2020-05-30", periods=5).strftime(
        "%Y-%m-%d").tolist()


def _frame(y, c=None, n: int = 30) -> pd.DataFrame:
    frame = pd.DataFrame({"t": pd.date_range("2024-01-01", periods=n).strftime("%Y-%m-%d"),
                          "y": y})
    return frame if c is None else frame.assign(c=c)


def test_target_and_covariate_rules():
    wiggle = np.sin(np.arange(30.0))
    flag = np.arange(30) % 2
    assert clean_series(_frame(wiggle, flag), "t", ["y", "c"], "d.csv", 1).freq == "D"
    # the class-label rule is the target's alone, and is only for training
    with pytest.raises(DataError, match="forecast target 'y' only takes the values "
                                        r"\[0, 1\], like a class label"):
        clean_series(_frame(flag, wiggle), "t", ["y", "c"], "d.csv", 1)
    with pytest.raises(DataError, match=r"forecast target 'y' is constant \(every value is "
                                        r"7\.5\); a constant series cannot be scaled"):
        clean_series(_frame(7.5), "t", ["y"], "d.csv")
    # a history may be flat: the model's scaling comes from the training data
    flat = clean_series(_frame(7.5, 0), "t", ["y", "c"], "h.csv", 1, training=False)
    assert flat.values["y"].eq(7.5).all() and flat.values["c"].eq(0).all()
    with pytest.raises(DataError, match="has the value inf in data row 3"):
        clean_series(_frame(np.where(np.arange(30) == 2, np.inf, wiggle)), "t", ["y"],
                     "h.csv", training=False)


def test_naive_times_keep_their_state(tmp_path):
    """Data without offsets prepares exactly as before: no time basis in the state."""
    from grutune.config import DataConfig
    from grutune.search_space import load_space
    from grutune.tasks import get_task

    path = _save(_daily(), tmp_path / "d.csv")
    task = get_task("forecast")
    cfg = DataConfig(path=str(path), task="forecast", time_column="ts", target_column="y",
                     covariates="holiday", horizon=5)
    prep = task.prepare(cfg, None, load_space(task.default_space(task.space_context(cfg)), None))
    assert "time_basis" not in prep.state and prep.summary["time_basis"] is None
    assert prep.summary["repairs"] == "" and prep.split["first"] == "2020-01-01 00:00:00"


# --- quiet repairs are said out loud ----------------------------------------------------

def test_tune_reports_and_records_its_repairs(models):
    run_dir, result = models("daily")
    expected = ("interpolated 3 missing values: 1 missing time step inserted (first "
                "2020-02-10 00:00:00); column 'y' empty in 1 data row (first data row 21)")
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert any(expected in line and "daily.csv" in line for line in warnings), result.stderr
    summary = json.loads((run_dir / "split.json").read_text())["summary"]
    assert summary["repairs"] == expected
    assert summary["interpolated"] == 3 and summary["gaps_filled"] == 1


def test_predict_warns_when_it_fills_the_history(models, tmp_path):
    run_dir, _ = models("daily")
    history = _history(_daily())
    history.loc[6, "y"] = np.nan
    history.loc[[8, 9], "holiday"] = np.nan
    history = history.drop(index=100)  # a missing day, 2020-04-10
    path = _save(history, tmp_path / "history.csv")
    result = CliRunner().invoke(app, ["predict", str(run_dir / "model"), str(path)])
    assert result.exit_code == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [f"warning: {path}: interpolated 5 missing values: 1 missing time step "
                     "inserted (first 2020-04-10 00:00:00); column 'y' empty in 1 data row "
                     "(first data row 7); column 'holiday' empty in 2 data rows (first data "
                     "row 9)"], result.stderr
    forecast = pd.read_csv(pd.io.common.StringIO(result.stdout))
    assert np.isfinite(forecast["y"]).all()


def test_predict_is_quiet_when_nothing_is_filled(models, tmp_path):
    run_dir, _ = models("daily")
    path = _save(_history(_daily()), tmp_path / "history.csv")
    result = CliRunner().invoke(app, ["predict", str(run_dir / "model"), str(path)])
    assert result.exit_code == 0 and "warning" not in result.stderr, result.stderr


# --- time zones -------------------------------------------------------------------------

# (zone, a local start a few days before the change, the direction of the change)
DST = [("Europe/Berlin", "2021-03-25", "spring"), ("Europe/Berlin", "2021-10-28", "fall"),
       ("America/New_York", "2021-03-11", "spring"), ("America/New_York", "2021-11-04", "fall"),
       ("Australia/Sydney", "2021-04-01", "fall"), ("Australia/Sydney", "2021-09-30", "spring")]


@pytest.mark.parametrize("zone,start,direction", DST)
@pytest.mark.parametrize("freq", ["h", "D"])
@pytest.mark.parametrize("written", ["tz-aware", "iso strings"])
def test_dst_keeps_the_series_regular(zone, start, direction, freq, written):
    frame = _zoned(start, 24 * 8 if freq == "h" else 40, freq, zone)
    offsets = {t.utcoffset() for t in frame["ts"]}
    assert len(offsets) == 2  # the series crosses the change
    if written == "iso strings":
        frame = _iso(frame)
    clean = clean_series(frame, "ts", ["y"], "d.csv")
    assert clean.gaps == 0 and clean.filled == 0 and len(clean.values) == len(frame)
    np.testing.assert_allclose(clean.values["y"], _zoned(start, len(frame), freq, zone)["y"])
    index = clean.values.index
    if freq == "h":  # hourly: in UTC, one hour apart across the change
        assert clean.basis == "utc" and clean.freq == "h" and clean.season == 24
        assert str(index.tz) == "UTC" and (np.diff(index.asi8) == np.diff(index.asi8)[0]).all()
        assert index[0] == pd.Timestamp(start, tz=zone).tz_convert("UTC")
    else:  # daily: local calendar days, the offset dropped
        assert clean.basis == "local" and clean.freq == "D" and clean.season == 7
        assert index.tz is None
        assert list(index) == list(pd.date_range(start, periods=len(frame), freq="D"))


def test_fixed_offset_and_utc_strings():
    """One offset throughout (or Z) follows the same rule: sub-daily in UTC."""
    hours = pd.date_range("2024-01-01", periods=48, freq="h")
    for suffix, shift in (("+05:30", 5.5), ("Z", 0.0)):
        frame = pd.DataFrame({"t": [t.isoformat() + suffix for t in hours],
                              "y": np.sin(np.arange(48.0))})
        clean = clean_series(frame, "t", ["y"], "d.csv")
        assert clean.basis == "utc" and clean.freq == "h"
        assert clean.values.index[0] == pd.Timestamp("2024-01-01", tz="UTC") - \
            pd.Timedelta(hours=shift)


@pytest.mark.parametrize("name", list(MODELS)[1:])
def test_dst_through_tune_and_predict(models, tmp_path, name):
    run_dir, _ = models(name)
    summary = json.loads((run_dir / "split.json").read_text())["summary"]
    series = models.series(name)
    history = _history(series)
    zoned = MODELS[name][0]()["ts"]
    assert len({t.utcoffset() for t in zoned.iloc[:HISTORY]}) == 2  # crosses the change
    path = _save(history, tmp_path / ("history" + Path(MODELS[name][1]).suffix))
    out = tmp_path / "forecast.csv"
    result = CliRunner().invoke(app, ["predict", str(run_dir / "model"), str(path), "--out",
                                      str(out)])
    assert result.exit_code == 0, (result.stderr, result.exception)
    forecast = pd.read_csv(out)
    assert len(forecast) == 5 and np.isfinite(forecast["y"]).all()
    last = zoned.iloc[HISTORY - 1]
    if "hourly" in name:  # future times in UTC, the hours after the history's last
        assert summary["time_basis"] == "times with UTC offsets, converted to UTC"
        expected = pd.date_range(last.tz_convert("UTC"), periods=6, freq="h")[1:]
        assert forecast["ts"].tolist() == [str(t) for t in expected]
        assert all(t.endswith("+00:00") for t in forecast["ts"])
    else:  # future times: the next local calendar days, without an offset
        assert summary["time_basis"].startswith("times with UTC offsets, as local wall-clock")
        expected = pd.date_range(last.tz_localize(None), periods=6, freq="D")[1:]
        assert forecast["ts"].tolist() == [str(t.date()) for t in expected]
    saved = pd.read_csv(run_dir / "test_predictions.csv")
    assert len(saved) and saved["forecast"].notna().all()
