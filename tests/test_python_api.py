"""grutune from a notebook: tune a DataFrame or a built-in dataset, read the run, predict.

Every prediction the Python API gives must equal ``grutune predict``'s on the same rows:
one code path (``pipeline.predict_with``).
"""

from __future__ import annotations

import pandas as pd
import pytest

from grutune.api import compare, load, tune
from grutune.cli import app
from grutune.exceptions import ConfigError, DataError

from .conftest import make_texts

QUICK = dict(trials=2, max_epochs=1, folds=1, repeats=1, workers=1)


def _cli_predict(runner, model_dir, frame: pd.DataFrame, tmp_path) -> pd.DataFrame:
    rows, out = tmp_path / "rows.csv", tmp_path / "cli.csv"
    frame.to_csv(rows, index=False)
    result = runner.invoke(app, ["predict", str(model_dir), str(rows), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return pd.read_csv(out)


def _same(api: pd.DataFrame, cli: pd.DataFrame) -> None:
    assert list(api["prediction"].astype(str)) == list(cli["prediction"].astype(str))
    probs = [c for c in api.columns if c.startswith("prob_")]
    assert probs and api[probs].to_numpy() == pytest.approx(cli[probs].to_numpy(), abs=1e-6)


@pytest.fixture(scope="module")
def frame_run(tmp_path_factory):
    """A notebook's run: an in-memory DataFrame with a one-minute budget."""
    run_dir = tmp_path_factory.mktemp("api") / "frame"
    data = make_texts(25, seed=1)
    run = tune(data, text="text", target="label", budget="1m", run_dir=run_dir, **QUICK)
    return run, data


@pytest.mark.realdata
def test_a_builtin_dataset_in_a_few_lines(runner, tmp_path):
    run = tune("bbc-news", sample=300, run_dir=tmp_path / "bbc", **QUICK)
    assert run.metrics["task"] == "text" and 0 <= run.metrics["accuracy"] <= 1
    board = run.leaderboard()
    assert len(board) == 2 and board["value"].is_monotonic_decreasing  # accuracy: best first
    assert run.report_path.is_file() and set(run.best_params) >= {"lr", "hidden_size"}
    new = pd.DataFrame({"text": ["the striker scored twice in the cup final",
                                 "shares fell as the bank cut its forecast"]})
    _same(run.predict(new), _cli_predict(runner, run.run_dir / "model", new, tmp_path))
    model = load(run.run_dir / "model")
    texts = model.predict(list(new["text"]))
    pd.testing.assert_frame_equal(texts, run.predict(new))
    assert list(model.predict_proba(new).columns) == [c for c in texts if c.startswith("prob_")]
    assert "<table>" in run._repr_html_()


def test_a_dataframe_is_kept_in_the_run_and_predicts_like_the_cli(frame_run, runner, tmp_path):
    run, data = frame_run
    saved = pd.read_parquet(run.run_dir / "input" / "data.parquet")
    pd.testing.assert_frame_equal(saved, data)
    new = make_texts(3, seed=9)[["text"]]
    _same(run.predict(new), _cli_predict(runner, run.run_dir / "model", new, tmp_path))
    one = load(run.run_dir / "model").predict(new["text"].iloc[0])
    assert one["prediction"].iloc[0] == run.predict(new)["prediction"].iloc[0]


def test_another_dataframe_is_refused_in_the_same_run_dir(frame_run):
    run, data = frame_run
    with pytest.raises(ConfigError, match="tuned on another DataFrame"):
        tune(data.iloc[:-1], text="text", target="label", run_dir=run.run_dir, **QUICK)


def test_a_train_test_pair_of_dataframes(tmp_path):
    data = make_texts(30, seed=2)
    run = tune((data.iloc[:60], data.iloc[60:]), text="text", target="label",
               run_dir=tmp_path / "pair", **QUICK)
    assert run.metrics["n"] == len(data) - 60  # the given test rows, all of them
    assert (run.run_dir / "input" / "test.parquet").is_file()


def test_an_unknown_option_names_the_options():
    with pytest.raises(ConfigError, match="unknown option 'max_epoch'.*max_epochs"):
        tune("bbc-news", max_epoch=3)


@pytest.mark.parametrize(("options", "message"), [
    ({"trials": "5"}, "trials: must be an integer or None; got '5' \\(str\\)"),
    ({"budget": [60]}, "budget: must be a number or None; got \\[60\\] \\(list\\)"),
    ({"stop_words": "yes"}, "stop_words: must be True or False or None; got 'yes'"),
    ({"seed": True}, "seed: must be an integer; got True \\(bool\\)"),
], ids=["trials-str", "budget-list", "stop-words-str", "seed-bool"])
def test_a_wrong_typed_option_is_one_config_error_and_leaves_nothing(tmp_path, options,
                                                                     message):
    run_dir = tmp_path / "run"
    with pytest.raises(ConfigError, match=message):
        tune(make_texts(25, seed=4), run_dir=run_dir, quiet=True, **options)
    assert not run_dir.exists()  # the DataFrame's saved copy removed again


def test_a_text_model_does_not_forecast(frame_run):
    run, _ = frame_run
    with pytest.raises(ConfigError, match="does not forecast"):
        run.model.forecast(pd.DataFrame({"y": [1.0, 2.0]}))


def test_progress_in_a_notebook_is_a_line_per_trial_not_per_epoch(tmp_path, capfd):
    """Outside a terminal (a notebook's output cell, a log file) the epoch status is not
    printed line by line: the output holds the plan, one line per trial and the results,
    however many epochs run; ``quiet=True`` holds nothing."""
    data = make_texts(25, seed=2)
    tune(data, text="text", target="label", run_dir=tmp_path / "loud",
         **{**QUICK, "trials": 3, "max_epochs": 4})
    err = capfd.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert sum(line.lstrip().startswith("trial ") for line in lines) == 3
    assert not [line for line in lines if "epoch 2/4" in line]
    assert len(lines) < 80, err  # the plan, 3 trial lines and the metric tables
    tune(data, text="text", target="label", run_dir=tmp_path / "quiet", quiet=True, **QUICK)
    captured = capfd.readouterr()
    assert "trial " not in captured.err and captured.out == ""


def test_compare_takes_a_dataframe(tmp_path):
    """compare saves the DataFrame in its run directory (input/) and accepts that folder
    as its own: it used to refuse it as "not a grutune run"."""
    data = make_texts(25, seed=3)
    result = compare(data, text="text", target="label", seeds=2, run_dir=tmp_path / "cmp",
                     quiet=True, **{**QUICK, "trials": 1})
    assert "GRU" in result.record["verdict"]["text"]
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "cmp" / "input" / "data.parquet"),
                                  data)
    assert (tmp_path / "cmp" / "compare.json").is_file()


@pytest.mark.parametrize(("call", "expected"), [
    (tune, "none of config.json, split.json, study.db, study.journal, input"),
    (compare, "none of compare.json, gru, lstm, input"),
])
def test_a_folder_that_is_no_run_is_refused_naming_the_markers_looked_for(tmp_path, call,
                                                                          expected):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match=f"not a grutune run \\(it holds other files and "
                                          f"{expected}\\)"):
        call(make_texts(5), text="text", target="label", run_dir=tmp_path, **QUICK)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]  # nothing written


@pytest.mark.parametrize("existed", [True, False], ids=["empty-dir", "new-dir"])
def test_a_refused_dataframe_leaves_nothing_and_the_corrected_call_runs(tmp_path, existed):
    """A call whose data is refused before the run starts removes the copy it saved, so
    the retry with the right column is not refused as "tuned on another DataFrame"."""
    run_dir = tmp_path / "run"
    if existed:
        run_dir.mkdir()
    data = make_texts(25, seed=4)
    with pytest.raises(DataError, match="^DataFrame: no column 'labels'"):  # not the copy's path
        tune(data, text="text", target="labels", run_dir=run_dir, quiet=True, **QUICK)
    if existed:
        assert list(run_dir.iterdir()) == []  # no input/ left behind
    else:
        assert not run_dir.exists()
    run = tune(data, text="text", target="label", run_dir=run_dir, quiet=True, **QUICK)
    assert 0 <= run.metrics["accuracy"] <= 1
    pd.testing.assert_frame_equal(pd.read_parquet(run_dir / "input" / "data.parquet"), data)


UNSTORABLE = [  # DataFrames parquet cannot hold: grutune's error, not pyarrow's
    (pd.DataFrame({"text": ["a b", 7, "c d"], "label": ["x", "y", "x"]}),
     "column 'text' mixes types \\(str and int\\); give one type per column"),
    (pd.DataFrame([["a b", "c", "x"]], columns=["text", "text", "label"]),
     "duplicate column name 'text'"),
]


@pytest.mark.parametrize(("frame", "message"), UNSTORABLE, ids=["mixed-types", "duplicate"])
def test_a_dataframe_parquet_cannot_store_is_a_data_error(tmp_path, frame, message):
    with pytest.raises(DataError, match=message):
        tune(frame, text="text", target="label", run_dir=tmp_path / "run", **QUICK)
    assert not (tmp_path / "run").exists()  # nothing written


@pytest.mark.parametrize(("frame", "message"), UNSTORABLE, ids=["mixed-types", "duplicate"])
def test_predicting_a_dataframe_parquet_cannot_store_is_a_data_error(frame_run, frame,
                                                                     message):
    run, _ = frame_run
    with pytest.raises(DataError, match=message):
        run.model.predict(frame)


def test_a_refused_dataframe_at_predict_is_named_as_given_not_by_a_temporary_path(frame_run):
    run, _ = frame_run
    with pytest.raises(DataError, match="^DataFrame: no column 'text'; the columns are: body$"):
        run.model.predict(pd.DataFrame({"body": ["a b"]}))


@pytest.mark.parametrize("name", ["new_reviews.csv", "NEW.Parquet", "data/new_reviews"])
def test_a_missing_file_is_not_taken_for_a_text(frame_run, name):
    run, _ = frame_run
    with pytest.raises(DataError, match=f"^{name}: no such file$"):
        run.model.predict(name)


def test_texts_that_are_no_paths_are_predicted(frame_run):
    """A text with a slash and spaces, a text longer than a file name may be, and a text
    that looks like a file name given in a list: each one prediction."""
    run, _ = frame_run
    for text in ["good and/or bad", "word " * 200]:
        assert len(run.model.predict(text)) == 1
    assert len(run.model.predict(["new_reviews.csv"])) == 1
