"""Hostile command lines: options, paths and run directories real users produce.

Every refusal goes through ``hostile.assert_refused``: exit 2, one ``error:`` line with
the rule, no traceback, and nothing new under the watched folders.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest

from grutune.cli import app

from .conftest import make_texts, tiny_text_run
from .hostile import assert_refused, snapshot

FAST = ["--trials", "1", "--max-epochs", "1", "--repeats", "1", "--workers", "1", "--folds", "1",
        "--no-refit"]


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "d.csv"
    make_texts(20).to_csv(path, index=False)
    return path


def _tune(data: Path, tmp_path: Path, *extra: str) -> list[str]:
    return ["tune", str(data), "--run-dir", str(tmp_path / "run"), *FAST, *extra]


CASES = {
    # option values that used to give a traceback or mean something else
    "seed below 0": (["--seed", "-1"], "--seed: must be an integer from 0 to 4294967295"),
    "seed above 2^32-1": (["--seed", str(2**32)], "--seed: must be an integer from 0"),
    "max epochs 0": (["--max-epochs", "0"], "--max-epochs: must be >= 1; got 0"),
    "budget inf": (["--budget", "inf"], "--budget: must be a finite duration > 0"),
    "budget nan": (["--budget", "nan"], "--budget: must be a finite duration > 0"),
    # click's usage errors: one error line too, not a box
    "trials not a number": (["--trials", "many"], "Invalid value for '--trials'"),
    "unknown option": (["--learning-rate", "0.1"], "No such option: --learning-rate"),
    "option without value": (["--seed"], "Option '--seed' requires an argument"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_options(data, tmp_path, name):
    extra, message = CASES[name]
    args = _tune(data, tmp_path)
    if name == "max epochs 0":
        args = ["tune", str(data), "--run-dir", str(tmp_path / "run"), "--trials", "1"]
    assert_refused([*args, *extra], message, [tmp_path])


def test_path_too_long_is_one_line(tmp_path):
    long = tmp_path / ("x" * 5000 + ".csv")
    assert_refused(["tune", long, "--run-dir", tmp_path / "run", *FAST], "File name too long",
                   [tmp_path])


def test_run_dir_path_too_long(data, tmp_path):
    assert_refused(["tune", data, "--run-dir", tmp_path / ("r" * 5000), *FAST],
                   "too long", [tmp_path])


def test_journal_storage_on_a_directory(data, tmp_path):
    folder = tmp_path / "journals"
    folder.mkdir()
    assert_refused(_tune(data, tmp_path, "--storage", f"journal:{folder}"),
                   "is a directory; journal:PATH needs a file", [tmp_path])


def test_journal_storage_in_a_missing_folder(data, tmp_path):
    assert_refused(_tune(data, tmp_path, "--storage", f"journal:{tmp_path}/no/such/x.log"),
                   "does not exist", [tmp_path])


@pytest.mark.parametrize("port", ["99999", "0", "-5"])
def test_dashboard_port_out_of_range(tmp_path, port):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    assert_refused(["dashboard", run, "--port", port], "--port", [tmp_path])


@pytest.mark.parametrize("command", [["predict"], ["predict", "model-only"], ["report"],
                                     ["export"]])
def test_missing_arguments(tmp_path, command):
    assert_refused(command, "Missing argument", [tmp_path])


def test_test_file_equal_to_file(data, tmp_path):
    assert_refused(_tune(data, tmp_path, "--test", str(data)), "is FILE itself", [tmp_path])


def test_sample_that_leaves_a_class_with_one_row(tmp_path):
    frame = make_texts(30)
    rare = frame[frame.label == "food"].head(1)
    frame = pd.concat([frame[frame.label != "food"], rare], ignore_index=True)
    path = tmp_path / "rare.csv"
    frame.to_csv(path, index=False)
    assert_refused(_tune(path, tmp_path, "--sample", "20"), "--sample 20", [tmp_path])


def test_run_dir_that_is_not_a_run(data, tmp_path):
    folder = tmp_path / "my-documents"
    folder.mkdir()
    (folder / "thesis.txt").write_text("years of work")
    assert_refused(["tune", data, "--run-dir", folder, *FAST],
                   "an existing directory that is not a grutune run", [tmp_path])
    assert sorted(p.name for p in folder.iterdir()) == ["thesis.txt"]


def test_run_dir_root_is_refused(data, tmp_path):
    before = sorted(os.listdir("/"))
    assert_refused(["tune", data, "--run-dir", "/", *FAST],
                   "--run-dir /: an existing directory that is not a grutune run", [tmp_path])
    assert sorted(os.listdir("/")) == before


def test_run_dir_that_is_a_file(data, tmp_path):
    assert_refused(["tune", data, "--run-dir", data, *FAST], "is not a directory", [tmp_path])


def test_compare_root_that_is_not_a_run(data, tmp_path):
    folder = tmp_path / "stuff"
    folder.mkdir()
    (folder / "notes.md").write_text("x")
    assert_refused(["compare", data, "--run-dir", folder, "--trials", "1", "--max-epochs", "1",
                    "--seeds", "2", "--workers", "1"],
                   "an existing directory that is not a grutune run", [tmp_path])


@pytest.mark.parametrize("kind", ["journal", "sqlite"])
def test_report_never_writes_where_a_foreign_config_points(tmp_path, kind):
    """A run directory from someone else names a storage elsewhere: report builds its
    page in the run directory and creates nothing where the config points."""
    run, outside = tmp_path / "their-run", tmp_path / "outside"
    run.mkdir()
    outside.mkdir()
    url = (f"journal:{outside}/evil.journal" if kind == "journal"
           else f"sqlite:///{outside}/evil.db")
    (run / "config.json").write_text(json.dumps({"study": {"storage": url,
                                                           "study_name": "x"}}))
    before = snapshot(outside)
    from typer.testing import CliRunner

    result = CliRunner().invoke(app, ["report", str(run)])
    assert snapshot(outside) == before
    assert result.exit_code == 0, result.stderr
    assert (run / "report.html").is_file()


@pytest.mark.parametrize("content", ["[1, 2]", "not json at all", '{"study": {"storage": 5}}'])
def test_report_on_a_damaged_config(tmp_path, content):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(content)
    message = "storage must be a URL string" if "storage" in content else "config.json"
    assert_refused(["report", run], message, [tmp_path / "elsewhere"])


def test_report_on_a_missing_directory(tmp_path):
    assert_refused(["report", tmp_path / "nope"], "no such directory", [tmp_path])


@pytest.mark.parametrize("name", ["my reviews.csv", "données été.csv", "a+b (copy).csv"])
def test_file_names_with_spaces_and_accents_run(tmp_path, monkeypatch, name):
    """The default study name comes from the file name; it used to fail the --study rule."""
    from typer.testing import CliRunner

    path = tmp_path / name
    make_texts(20).to_csv(path, index=False)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["tune", str(path), *FAST])
    assert result.exit_code == 0, result.stderr
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1 and (runs[0] / "metrics.json").is_file()
    assert all(c.isascii() and (c.isalnum() or c in "._-") for c in runs[0].name)


def test_seed_repeats_stop_at_their_deadline(data, tmp_path, monkeypatch):
    """The seed repeats' share of --budget is a deadline, not an estimate: once it passes,
    the seed in training stops after its epoch and is dropped, and no seed starts (on a
    busy machine the search's timings no longer predict the repeats')."""
    import time

    import grutune.tuning.repeats as repeats

    calls = []

    def clock() -> float:  # the deadline passes right after the first repeat's first epoch
        calls.append(1)
        return time.monotonic() + (0 if len(calls) < 2 else 1e9)

    monkeypatch.setattr(repeats, "now", clock)
    run = tmp_path / "run"
    from typer.testing import CliRunner

    result = CliRunner().invoke(app, ["tune", str(data), "--run-dir", str(run), "--trials",
                                      "2", "--max-epochs", "4", "--repeats", "3", "--folds",
                                      "1", "--workers", "1", "--budget", "10m"])
    assert result.exit_code == 0, result.stderr
    assert len(calls) == 2  # one check before the seed, one after its first epoch
    metrics = json.loads((run / "metrics.json").read_text())
    assert "seed repeats stopped at their time limit (4m00s) after 1 of" in \
        metrics["seed_repeats"]["note"]
    assert "stopped at their time limit" in result.stderr


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return tiny_text_run(tmp_path_factory.mktemp("model"), FAST) / "model"


@pytest.mark.parametrize("case", ["out is a directory", "out folder missing"])
@pytest.mark.parametrize("command", ["predict", "export onnx", "export torchscript"])
def test_output_paths(model, tmp_path, case, command):
    """--out never makes folders for a typo and never writes onto a directory."""
    out = tmp_path if case == "out is a directory" else tmp_path / "typo" / "x.out"
    message = "is a directory" if case == "out is a directory" else "does not exist"
    data = model.parent.parent / "d.csv"
    args = (["predict", model, data] if command == "predict"
            else ["export", model, "--format", command.split()[1]])
    assert_refused([*args, "--out", out], message, [tmp_path, model])


def test_predict_on_a_directory_and_on_a_missing_file(model, tmp_path):
    assert_refused(["predict", model, tmp_path], "is a directory", [tmp_path, model])
    assert_refused(["predict", model, tmp_path / "nope.csv"], "no such file",
                   [tmp_path, model])


def test_min_count_that_empties_the_vocabulary(data, tmp_path):
    assert_refused(_tune(data, tmp_path, "--min-count", "1000000"),
                   "--min-count 1000000: no token of column 'text' occurs that often",
                   [tmp_path])


@pytest.mark.parametrize("columns", [("step", "y", "step"), ("ts", "window", "ts"),
                                     ("ts", "ts", "ts")])
def test_forecast_columns_that_clash_with_the_output_table(tmp_path, columns):
    """A target or time column called like an output column would overwrite its values."""
    import numpy as np

    time_col, target, time_arg = columns
    frame = pd.DataFrame({"ts": pd.date_range("2020-01-01", periods=120, freq="D"),
                          "y": np.sin(np.arange(120) / 5)})
    frame = frame.rename(columns={"ts": time_col, "y": target}) if time_col != target else frame
    path = tmp_path / "f.csv"
    frame.to_csv(path, index=False)
    assert_refused(["tune", path, "--task", "forecast", "--time", time_arg, "--target", target,
                    "--run-dir", tmp_path / "run", *FAST],
                   "cannot be a forecast target or the time column", [tmp_path])


def test_a_failing_seed_repeat_is_left_out(data, tmp_path, monkeypatch):
    """A seed repeat whose loss turns non-finite is dropped with a warning; the run goes on
    (it used to end the run with a traceback after the whole search)."""
    import grutune.tuning.repeats as repeats
    from grutune.exceptions import TrialFailure

    real = repeats.train_seed
    calls = []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise TrialFailure("training loss became nan in epoch 1")
        return real(*args, **kwargs)

    monkeypatch.setattr(repeats, "train_seed", flaky)
    run = tmp_path / "run"
    from typer.testing import CliRunner

    result = CliRunner().invoke(app, ["tune", str(data), "--run-dir", str(run), "--trials",
                                      "2", "--max-epochs", "2", "--repeats", "3", "--folds",
                                      "1", "--workers", "1", "--repeat-top", "1"])
    assert result.exit_code == 0, result.stderr
    assert "failed (training loss became nan in epoch 1); it is left out" in result.stderr
    record = json.loads((run / "metrics.json").read_text())["seed_repeats"]
    assert len(record["configurations"][0]["seeds"]) == 2  # the search's run + 1 new seed


def test_typed_labels_survive_the_bundle(tmp_path):
    """Labels of a typed file (float, bool in JSON Lines) are saved with their values and
    the bundle's checks accept them: predict gives them back as written."""
    import random

    rng = random.Random(0)
    topics = {1.5: ["goal", "team", "match"], 2.5: ["chip", "data", "robot"],
              True: ["pizza", "soup", "bread"]}
    path = tmp_path / "typed.jsonl"
    with path.open("w") as f:
        for label, words in topics.items():
            for _ in range(20):
                text = " ".join(rng.choice(words + ["the", "a"]) for _ in range(8))
                f.write(json.dumps({"text": text, "label": label}) + "\n")
    from typer.testing import CliRunner

    runner = CliRunner()
    run = tmp_path / "run"
    assert runner.invoke(app, ["tune", str(path), "--run-dir", str(run), *FAST]).exit_code == 0
    out = tmp_path / "p.jsonl.csv"
    result = runner.invoke(app, ["predict", str(run / "model"), str(path), "--out", str(out)])
    assert result.exit_code == 0, result.stderr
    assert set(pd.read_csv(out)["prediction"].astype(str)) <= {"1.5", "2.5", "True"}
