"""`grutune predict` as a filter (issue 16): rows from standard input (`-`), the table on
standard output without --out, --out in CSV, TSV, Parquet or JSON Lines by extension,
input columns kept beside the predictions (--keep), probabilities to 6 significant
digits in text. One small text model is trained once for the module (1 trial, 1 epoch).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from grutune.cli import app
from grutune.workflows.predict import predict_file

from .conftest import make_texts
from .hostile import assert_refused

FAST = ["--trials", "1", "--max-epochs", "1", "--workers", "1", "--repeats", "1",
        "--folds", "1", "--ensemble", "1", "--no-refit"]
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def _cli(*args: object, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    """``grutune ARGS`` in a fresh interpreter with real standard streams."""
    code = "from grutune.cli import app; app(prog_name='grutune')"
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], input=stdin,
                          capture_output=True, env=ENV, timeout=600)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path, pd.DataFrame]:
    """(model directory, rows.csv with an id column, the in-memory predictions)."""
    root = tmp_path_factory.mktemp("predict_io")
    make_texts(n_per_class=20).to_csv(root / "train.csv", index=False)
    result = CliRunner().invoke(app, ["tune", str(root / "train.csv"), "--run-dir",
                                      str(root / "run"), *FAST])
    assert result.exit_code == 0, result.output
    rows = make_texts(n_per_class=4, seed=7)[["text"]]
    rows.insert(0, "id", [f"r{i:03d}" for i in range(len(rows))][::-1])  # not sorted
    rows.to_csv(root / "rows.csv", index=False)
    model = root / "run" / "model"
    return model, root / "rows.csv", predict_file(model, root / "rows.csv")


def _same(read: pd.DataFrame, expected: pd.DataFrame) -> None:
    """Equal predictions; probabilities equal within the 6 significant digits of text."""
    assert list(read.columns) == list(expected.columns)
    assert read["prediction"].astype(str).tolist() == expected["prediction"].astype(str).tolist()
    probs = [c for c in expected.columns if c.startswith("prob_")]
    assert probs
    np.testing.assert_allclose(read[probs].to_numpy(float), expected[probs].to_numpy(float),
                               rtol=1e-5, atol=0)


def test_stdout_without_out_is_only_the_csv_table(trained):
    model, rows, expected = trained
    proc = _cli("predict", model, rows)
    assert proc.returncode == 0, proc.stderr
    table = pd.read_csv(io.BytesIO(proc.stdout))
    assert len(table) == len(expected)
    _same(table, expected)
    assert b"wrote" not in proc.stdout and b"warning" not in proc.stdout


@pytest.mark.parametrize("fmt", [None, "csv", "jsonl", "parquet"])
def test_stdin_predicts_what_the_file_predicts(trained, tmp_path, fmt):
    model, rows, expected = trained
    frame = pd.read_csv(rows)
    if fmt in (None, "csv"):
        data = rows.read_bytes()
    elif fmt == "jsonl":
        data = frame.to_json(orient="records", lines=True).encode()
    else:
        frame.to_parquet(tmp_path / "rows.parquet", index=False)
        data = (tmp_path / "rows.parquet").read_bytes()
    proc = _cli("predict", model, "-", *(["--format", fmt] if fmt else []), stdin=data)
    assert proc.returncode == 0, proc.stderr
    _same(pd.read_csv(io.BytesIO(proc.stdout)), expected)


def test_an_error_on_stdin_names_standard_input(trained):
    model, _, _ = trained
    proc = _cli("predict", model, "-", stdin=b"other\nhello\n")
    assert proc.returncode == 2
    lines = proc.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: standard input: "), lines
    assert "grutune-stdin" not in lines[0] and not proc.stdout


@pytest.mark.parametrize("name", ["p.csv", "p.tsv", "p.parquet", "p.pq", "p.jsonl",
                                  "p.ndjson"])
def test_each_extension_round_trips(trained, tmp_path, name):
    model, rows, expected = trained
    out = tmp_path / name
    result = CliRunner().invoke(app, ["predict", str(model), str(rows), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    ext = out.suffix
    if ext in (".parquet", ".pq"):
        read = pd.read_parquet(out)
        pd.testing.assert_frame_equal(read, expected)  # Parquet keeps full precision
        return
    if ext in (".jsonl", ".ndjson"):
        read = pd.read_json(out, lines=True, dtype=False)
        first = json.loads(out.read_text().splitlines()[0])
        assert all(len(repr(v)) <= 14 for k, v in first.items() if k.startswith("prob_"))
    else:
        read = pd.read_csv(out, sep="\t" if ext == ".tsv" else ",")
    _same(read, expected)
    assert not list(tmp_path.glob(".*.tmp"))


def test_probabilities_are_rounded_in_text_but_never_to_zero(trained):
    model, rows, expected = trained
    text = _cli("predict", model, rows).stdout.decode()
    header, *lines = text.strip().splitlines()
    probs = [i for i, c in enumerate(header.split(",")) if c.startswith("prob_")]
    for line in lines:
        cells = line.split(",")
        for i in probs:
            digits = cells[i].split("e")[0].replace(".", "").replace("-", "").lstrip("0")
            assert len(digits) <= 6, cells[i]
            assert float(cells[i]) > 0


def test_keep_copies_ids_in_input_order(trained, tmp_path):
    model, rows, expected = trained
    out = tmp_path / "p.csv"
    result = CliRunner().invoke(app, ["predict", str(model), str(rows), "--keep", "id",
                                      "--keep", "text", "--out", str(out)])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out, dtype={"id": str})
    source = pd.read_csv(rows, dtype=str)
    assert list(table.columns[:2]) == ["id", "text"]
    assert table["id"].tolist() == source["id"].tolist()
    assert table["text"].tolist() == source["text"].tolist()
    _same(table.drop(columns=["id", "text"]), expected)
    # from standard input too, onto standard output
    proc = _cli("predict", model, "-", "--keep", "id", stdin=rows.read_bytes())
    assert proc.returncode == 0, proc.stderr
    piped = pd.read_csv(io.BytesIO(proc.stdout), dtype={"id": str})
    assert piped["id"].tolist() == source["id"].tolist()


def test_a_missing_keep_column_is_refused(trained, tmp_path):
    model, rows, _ = trained
    out = tmp_path / "p.csv"
    line = assert_refused(["predict", model, rows, "--keep", "idx", "--out", out],
                          "no column 'idx'", [tmp_path, model])
    assert str(rows) in line and "id, text" in line


def test_keep_of_an_output_column_is_refused(trained, tmp_path):
    model, rows, _ = trained
    frame = pd.read_csv(rows).assign(prediction="x")
    frame.to_csv(tmp_path / "rows.csv", index=False)
    assert_refused(["predict", model, tmp_path / "rows.csv", "--keep", "prediction",
                    "--out", tmp_path / "p.csv"], "--keep prediction", [tmp_path, model])


@pytest.mark.parametrize("name", ["p.json", "p.xlsx", "p"])
def test_an_unknown_extension_is_refused(trained, tmp_path, name):
    model, rows, _ = trained
    line = assert_refused(["predict", model, rows, "--out", tmp_path / name],
                          "unknown extension", [tmp_path, model])
    if name == "p.json":
        assert ".jsonl for JSON Lines" in line


def test_format_is_for_standard_input_only(trained, tmp_path):
    model, rows, _ = trained
    assert_refused(["predict", model, rows, "--format", "jsonl"], "standard input",
                   [tmp_path, model])
    assert_refused(["predict", model, "-", "--format", "xml"], "must be one of",
                   [tmp_path, model])


def test_keep_is_refused_for_a_forecaster(trained, tmp_path, monkeypatch):
    """Forecast rows are future steps, not input rows: decided by the task's
    ``prediction_rows``, checked here on a text model whose task claims the forecaster's."""
    from grutune.tasks import TASKS

    model, rows, _ = trained
    monkeypatch.setattr(TASKS["text"], "prediction_rows", TASKS["forecast"].prediction_rows)
    assert_refused(["predict", model, rows, "--keep", "id", "--out", tmp_path / "p.csv"],
                   "not input rows", [tmp_path, model])


def test_out_onto_the_input_file_is_refused(trained, tmp_path):
    """--out naming FILE (as written, or by another spelling) would overwrite the input."""
    model, rows, _ = trained
    data = tmp_path / "rows.csv"
    data.write_bytes(rows.read_bytes())
    for out in (data, tmp_path / "." / "rows.csv"):
        assert_refused(["predict", model, data, "--out", out], "is the input FILE",
                       [tmp_path, model])
        assert data.read_bytes() == rows.read_bytes()


@pytest.fixture(scope="module")
def recommender(tmp_path_factory) -> tuple[Path, Path]:
    """(a recommender bundle with untrained weights, built as tests/test_recommend.py
    builds one; events.csv with an id column)."""
    from grutune.bundle import save_bundle
    from grutune.config import DataConfig
    from grutune.nn.model import Ensemble, make_model
    from grutune.nn.trainer import seed_everything
    from grutune.tasks import get_task

    root = tmp_path_factory.mktemp("recommender")
    rng = np.random.default_rng(0)
    events = pd.DataFrame([{"user": f"u{u}", "item": int(rng.integers(30)), "time": step}
                           for u in range(24) for step in range(20)])
    events.insert(0, "id", [f"e{i}" for i in range(len(events))])
    events.to_csv(root / "events.csv", index=False)
    task = get_task("recommend")
    space = task.default_space({})
    cfg = DataConfig(path=str(root / "events.csv"), task="recommend", user_column="user",
                     item_column="item", time_column="time")
    prepared = task.prepare(cfg, None, space)
    seed_everything(0)
    params = {name: space[name].default for name in space.names}
    model = make_model(task.model_config(params, prepared.state)).eval()
    save_bundle(root / "model", Ensemble([model], task.combine).eval(), prepared.state, {})
    return root / "model", root / "events.csv"


def test_keep_is_refused_for_a_recommender(recommender, tmp_path):
    """A recommender's rows are each history's top items, not input rows: an input
    column beside them would land on the wrong rows (one row per history and rank)."""
    model, events = recommender
    recent = pd.read_csv(events).groupby("user", sort=False).head(2).head(10)
    recent.to_csv(tmp_path / "recent.csv", index=False)  # 5 users x 2 events: 10 rows
    out = tmp_path / "top.csv"
    args = ["predict", model, tmp_path / "recent.csv", "--top", "2", "--out", out]
    assert_refused([*args, "--keep", "id"], "recommends items per history",
                   [tmp_path, model])
    result = CliRunner().invoke(app, list(map(str, args)))  # without --keep it predicts
    assert result.exit_code == 0, result.output
    top = pd.read_csv(out)
    assert list(top.columns) == ["user", "rank", "item", "score"]
    assert len(top) == len(recent)  # as many rows, so a row count cannot tell them apart
