"""Rules every task's reader shares, found by a hostile-user pass (2026-12-02): times are
read in one format per column (pandas' per-cell ``format="mixed"`` read day-first dates
month-first where it could), ids that no integer holds are refused, a forecast never
starts from (or scores) values carried past the series' end, and a prediction is never
made for nothing: an empty text, a history that has seen the whole catalog, a header
row that is data, a column that was no step of the training file."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from grutune.cli import app
from grutune.data.times import parse_datetimes
from grutune.exceptions import DataError
from grutune.tasks.recommend import Recommendation
from grutune.tasks.recommend_data import Columns, read_events
from grutune.tasks.series_classification import (
    SeriesClassification,
    _header_is_data,
    long_to_series,
)
from grutune.tasks.series_frame import clean_series
from grutune.tasks.text_classification import TextClassification

DAY_FIRST = [f"{d:02d}/02/2021" for d in (2, 10, 12, 22)]  # 10/02 reads both ways alone


def _utc(values: list[str]) -> list[str]:
    return [f"{t:%Y-%m-%d}" for t in parse_datetimes(pd.Series(values), "t", "f.csv")[0]]


def test_a_day_first_column_is_read_day_first_in_every_cell():
    assert _utc(DAY_FIRST) == ["2021-02-02", "2021-02-10", "2021-02-12", "2021-02-22"]
    assert _utc(["02/10/2021", "02/22/2021"]) == ["2021-02-10", "2021-02-22"]  # month-first


@pytest.mark.parametrize(("values", "message"), [
    (DAY_FIRST[:3], "reads both day-first and month-first ('10/02/2021' is 10 February or "
                    "2 October); write dates as 2021-02-10"),
    (["2021-01-01", "now"], "unparseable time 'now' (data row 2), which is not a date"),
    (["Jan 5 2021", "2021-01-06"], "'2021-01-06' (data row 2), not in the format of the "
                                   "first time, 'Jan 5 2021'"),
    (["2021-03-28T02:00", "2021-03-28T03:00+01:00"], "mixes times with a UTC offset"),
])
def test_a_column_of_times_that_cannot_be_read_one_way_is_refused(values, message):
    with pytest.raises(DataError, match="^f.csv: time column 't' ") as err:
        parse_datetimes(pd.Series(values), "t", "f.csv")
    assert message in str(err.value)


def test_every_task_orders_day_first_dates_by_the_calendar():
    events = pd.DataFrame({"user": ["u"] * 4, "item": [1, 2, 3, 4], "date": DAY_FIRST[::-1]})
    ordered = read_events(events, Columns("user", "item", "date"), "e.csv")
    assert ordered["item"].tolist() == ["4", "3", "2", "1"]  # 2, 10, 12, 22 February
    with pytest.raises(DataError, match="reads both day-first and month-first"):
        read_events(events.iloc[1:], Columns("user", "item", "date"), "e.csv")
    with pytest.raises(DataError, match="mixes times with a UTC offset"):
        read_events(events.assign(date=["2021-03-28T02:00", "2021-03-28T03:00+01:00"] * 2),
                    Columns("user", "item", "date"), "e.csv")
    # series in long form: text order would put 22/02 before 02/03
    steps = pd.DataFrame({"id": ["a"] * 3 + ["b"] * 3, "label": ["x"] * 3 + ["y"] * 3,
                          "t": ["22/02/2021", "02/03/2021", "13/02/2021"] * 2,
                          "v": [2.0, 3.0, 1.0, 20.0, 30.0, 10.0]})
    series = long_to_series(steps, "label", "id", "t", "s.csv")["series"]
    assert [s.ravel().tolist() for s in series] == [[1, 2, 3], [10, 20, 30]]


@pytest.mark.parametrize("bad", [np.inf, 1e19])
def test_a_numeric_item_id_no_integer_holds_is_refused(bad):
    events = pd.DataFrame({"user": ["u"] * 3, "item": [1.0, bad, 3.0], "t": [1, 2, 3]})
    with pytest.raises(DataError, match=r"item column 'item' has the value .* in data row 2"):
        read_events(events, Columns("user", "item", "t"), "e.parquet")


def test_a_forecast_never_starts_from_values_carried_past_the_end():
    frame = pd.DataFrame({"y": np.r_[np.sin(np.arange(40.0)), [np.nan] * 3]})
    with pytest.raises(DataError, match=r"column 'y' is empty from data row 41 to the end "
                                        r"\(3 rows\)"):
        clean_series(frame, None, ["y"], "f.csv")
    inside = frame.copy()
    inside.loc[20, "y"] = np.nan
    assert clean_series(inside.iloc[:40], None, ["y"], "f.csv").filled == 1  # between two


def test_recommender_refuses_what_it_cannot_rank_or_learn(tmp_path):
    task = Recommendation()
    state = {"items": ["1", "2", "3"]}
    events = read_events(pd.DataFrame({"user": ["a", "a", "a", "b"], "item": [1, 2, 3, 1],
                                       "t": [1, 2, 3, 1]}), Columns("user", "item", "t"),
                         "p.csv")
    with pytest.raises(DataError, match="history 'a' holds every one of the model's 3 items"):
        task.encode(events, state, "p.csv")
    assert task.encode(events[events["user"] == "b"], state, "p.csv").x.shape[0] == 1
    # a batch whose every next item repeats its history teaches nothing, and is no NaN
    logits = torch.zeros(2, 3, 4, requires_grad=True)
    loss = task.loss(logits, torch.full((2, 3), -1))
    assert loss.item() == 0.0 and not torch.isnan(loss)
    # data of nothing but repeats is refused before any training
    repeats = tmp_path / "r.csv"
    pd.DataFrame({"user": np.repeat([f"u{i}" for i in range(20)], 10),
                  "item": np.repeat(np.arange(20) % 5, 10), "t": np.tile(np.arange(10), 20)}
                 ).to_csv(repeats, index=False)
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["tune", str(repeats), "--task", "recommend", "--user",
                                      "user", "--item", "item", "--time", "t", "--run-dir",
                                      str(out), "--trials", "1", "--no-baseline"])
    assert result.exit_code == 2, result.output
    assert "no training event is an item new to its history" in result.output
    assert not out.exists() or not any(out.iterdir())


def test_a_text_model_refuses_to_answer_an_empty_text():
    frame = pd.DataFrame({"text": ["the match", "  ", None]})
    with pytest.raises(DataError, match=r"^p.csv: text column 'text' is empty in data row 2 "
                                        r"\(2 such rows\)"):
        TextClassification().encode(frame, {"text_column": "text"}, "p.csv")


def test_a_series_file_reads_only_its_steps(tmp_path):
    assert _header_is_data(["1", "-0.64", "0.12", "0.12.1"])
    assert not _header_is_data(["label", "t0", "t1"]) and not _header_is_data(["0", "1", "2"])
    headless = tmp_path / "h.csv"
    headless.write_text("1,-0.64,0.12\n2,0.5,0.7\n")
    state = {"target_column": "label", "step_columns": ["t0", "t1", "t2"]}
    with pytest.raises(DataError, match="the first row looks like data"):
        SeriesClassification().read_rows(str(headless), state)
    with_id = tmp_path / "s.csv"
    pd.DataFrame({"id": [1000, 2000], "t0": [1.0, 2.0], "t1": [3.0, 4.0], "t2": [5.0, 6.0]}
                 ).to_csv(with_id, index=False)
    series = SeriesClassification().read_rows(str(with_id), state)["series"]
    assert [s.ravel().tolist() for s in series] == [[1, 3, 5], [2, 4, 6]]  # id not a step
    old = SeriesClassification().read_rows(str(with_id), {"target_column": "label"})["series"]
    assert old.iloc[0].ravel().tolist() == [1000, 1, 3, 5]  # a bundle without names: as before


@pytest.mark.parametrize(("options", "message"), [
    (["--target", "load,load"], "--target: 'load' is named twice; name each column once"),
    (["--target", "load", "--covariates", "temp,temp"],
     "--covariates: 'temp' is named twice; name each column once"),  # was a traceback
    (["--target", "load", "--covariates", "date"],
     "--covariates: 'date' is the time column (--time); covariates are value columns"),
])
def test_a_forecast_column_named_twice_or_the_time_as_a_covariate_is_refused(
        tmp_path, options, message):
    days = pd.date_range("2024-01-01", periods=120, freq="D")
    pd.DataFrame({"date": days, "load": np.arange(120.0), "temp": np.cos(np.arange(120))}
                 ).to_csv(tmp_path / "load.csv", index=False)
    result = CliRunner().invoke(app, ["tune", str(tmp_path / "load.csv"), "--task", "forecast",
                                      "--time", "date", *options, "--trials", "1",
                                      "--run-dir", str(tmp_path / "run")])
    assert result.exit_code == 2 and f"error: {message}" in " ".join(result.stderr.split())
    assert not (tmp_path / "run").exists()
