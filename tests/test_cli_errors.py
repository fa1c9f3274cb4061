"""Bad input: one clear line, exit code 2, no traceback, nothing half-written."""

from __future__ import annotations

from pathlib import Path

import pytest

from grutune.cli import app

from .conftest import make_texts, tiny_text_run
from .hostile import assert_refused


def _run(runner, args, tmp_path):
    run_dir = tmp_path / "run"
    result = runner.invoke(app, ["tune", *args, "--run-dir", str(run_dir), "--trials", "1",
                                 "--max-epochs", "1", "--folds", "1", "--repeats", "1",
                                 "--workers", "1"])
    return result, run_dir


def _write(tmp_path, name, content: bytes | str) -> Path:
    path = tmp_path / name
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)
    return path


def _csv(tmp_path, frame, name="d.csv") -> Path:
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return path


def _cases(tmp_path):
    good = make_texts(20)
    one_class = good.assign(label="x")
    missing_target = good.copy()
    missing_target.loc[3, "label"] = None
    tiny_class = pd_concat(good, {"text": ["lonely words here"], "label": ["rare"]})
    empty_texts = good.assign(text="")
    space_bad = _write(tmp_path, "space.yaml", "lr: {low: 0.1, high: 0.01}\n")
    return {
        "missing file": ([str(tmp_path / "nope.csv")], "nope.csv: no such file"),
        "unsupported extension": ([str(_write(tmp_path, "d.xlsx", "x"))],
                                  "unsupported extension '.xlsx'"),
        "empty file": ([str(_write(tmp_path, "e.csv", ""))], "the file is empty"),
        "header only": ([str(_write(tmp_path, "h.csv", "text,label\n"))], "no data rows"),
        "unknown text column": ([str(_csv(tmp_path, good)), "--text", "body"],
                                "no column 'body'; the columns are: text, label"),
        "unknown target column": ([str(_csv(tmp_path, good)), "--target", "y"],
                                  "no column 'y'"),
        "single class": ([str(_csv(tmp_path, one_class, "one.csv"))], "single class ('x')"),
        "missing target values": ([str(_csv(tmp_path, missing_target, "mt.csv"))],
                                  "1 missing values (first at data row 4)"),
        "class too small": ([str(_csv(tmp_path, tiny_class, "tc.csv"))],
                            "class 'rare' of column 'label' has 1 rows"),
        "all texts empty": ([str(_csv(tmp_path, empty_texts, "et.csv"))],
                            "0 usable rows in column 'text'"),
        "binary garbage": ([str(_write(tmp_path, "g.csv", b"\x00\x01\x02garbage\x00"))],
                           "looks like binary data"),
        "ragged csv": ([str(_write(tmp_path, "r.csv", "text,label\na,b\nc,d,e,f\n"))],
                       "not a valid CSV"),
        "duplicate columns": ([str(_write(tmp_path, "dc.csv", "text,text,label\na,b,c\n"))],
                              "column 'text' appears more than once"),
        "bad parquet": ([str(_write(tmp_path, "p.parquet", b"not parquet at all"))],
                        "not a readable Parquet file"),
        "bad jsonl": ([str(_write(tmp_path, "j.jsonl", "{not json}\n"))],
                      "not valid JSON Lines"),
        "invalid space": ([str(_csv(tmp_path, good)), "--space", str(space_bad)],
                          "lr: low must be < high, got low=0.1 high=0.01"),
        "missing space file": ([str(_csv(tmp_path, good)), "--space", "nope.yaml"],
                               "nope.yaml: no such space file"),
        "unknown sampler": ([str(_csv(tmp_path, good)), "--sampler", "magic"],
                            "--sampler: must be one of"),
        "unknown pruner": ([str(_csv(tmp_path, good)), "--pruner", "magic"],
                           "--pruner: must be one of"),
        "unknown storage": ([str(_csv(tmp_path, good)), "--storage", "redis://x"],
                            "--storage: unknown storage"),
        "bad budget": ([str(_csv(tmp_path, good)), "--budget", "soon"],
                       "--budget: expected a duration"),
        "unknown dataset": (["--dataset", "nope"], "unknown dataset 'nope'"),
        "file and dataset": ([str(_csv(tmp_path, good)), "--dataset", "bbc-news"],
                             "give a FILE or --dataset, not both"),
        "unknown metric": ([str(_csv(tmp_path, good)), "--metric", "auc"],
                           "--metric: must be one of"),
        "truncated csv": ([str(_write(tmp_path, "t.csv", 'text,label\n"open quote,a\nb,c\n'))],
                          "not a valid CSV (Error tokenizing data"),
        "wrong delimiter": ([str(_write(tmp_path, "semi.csv", good.to_csv(index=False, sep=";")))],
                            "no column 'text'; the columns are: text;label"),
        "one-row file": ([str(_write(tmp_path, "onerow.csv", "text,label\nhello world,a\n"))],
                         "1 usable rows in column 'text'; need at least"),
        "negative learning rate": ([str(_csv(tmp_path, good)), "--space",
                                    str(_write(tmp_path, "neg.yaml",
                                               "lr: {low: -0.1, high: 0.01}\n"))],
                                   "lr: must be between"),
        "unknown space parameter": ([str(_csv(tmp_path, good)), "--space",
                                     str(_write(tmp_path, "unk.yaml", "learning_rate: 0.01\n"))],
                                    "unknown parameter 'learning_rate'"),
        "non-numeric series": (_forecast(tmp_path, "nonnum", lambda f: f.assign(
            y=f["y"].astype(object).where(f.index != 5, "abc"))),
            "forecast column 'y' has the non-numeric value 'abc' (data row 6)"),
        "unparseable time": (_forecast(tmp_path, "baddate", lambda f: f.assign(
            ts=f["ts"].where(f.index != 7, "not a date"))),
            "time column 'ts' has the unparseable time 'not a date' (data row 8)"),
        "duplicate time": (_forecast(tmp_path, "dupdate", lambda f: f.assign(
            ts=f["ts"].where(f.index != 9, f["ts"][8]))),
            "time column 'ts' has '2020-01-09' twice (data rows 9 and 10)"),
        "too-short series": (_forecast(tmp_path, "short", lambda f: f.head(10)),
                             "the series has 10 time steps"),
    }


def _forecast(tmp_path, name, change) -> list[str]:
    """A daily sine series (200 steps) changed by ``change``, as forecast arguments."""
    import numpy as np
    import pandas as pd

    frame = pd.DataFrame({"ts": pd.date_range("2020-01-01", periods=200, freq="D").astype(str),
                          "y": np.sin(np.arange(200) / 5)})
    path = _csv(tmp_path, change(frame), f"{name}.csv")
    return [str(path), "--task", "forecast", "--time", "ts", "--target", "y", "--horizon", "5"]


def pd_concat(frame, extra):
    import pandas as pd

    return pd.concat([frame, pd.DataFrame(extra)], ignore_index=True)




@pytest.mark.parametrize("name", [
    "missing file", "unsupported extension", "empty file", "header only",
    "unknown text column", "unknown target column", "single class", "missing target values",
    "class too small", "all texts empty", "binary garbage", "ragged csv", "duplicate columns",
    "bad parquet", "bad jsonl", "invalid space", "missing space file", "unknown sampler",
    "unknown pruner", "unknown storage", "bad budget", "unknown dataset", "file and dataset",
    "unknown metric", "truncated csv", "wrong delimiter", "one-row file",
    "negative learning rate", "unknown space parameter", "non-numeric series",
    "unparseable time", "duplicate time", "too-short series",
])
def test_bad_input(runner, tmp_path, name):
    args, message = _cases(tmp_path)[name]
    # one error line, exit 2, no traceback, nothing new in the run directory's parent
    assert_refused(["tune", *args, "--run-dir", tmp_path / "run", "--trials", "1",
                    "--max-epochs", "1"], message, [tmp_path], runner)


def test_undecodable_bytes_are_replaced_with_a_warning(runner, tmp_path):
    frame = make_texts(20)
    path = tmp_path / "latin.csv"
    data = frame.to_csv(index=False).encode("utf-8")
    path.write_bytes(data.replace(b"pizza", b"pizz\xe0", 3))
    result, run_dir = _run(runner, [str(path), "--budget", "30s"], tmp_path)
    assert result.exit_code == 0, result.stderr
    assert "undecodable bytes" in result.stderr
    assert (run_dir / "metrics.json").is_file()


def test_empty_rows_dropped_with_count(runner, tmp_path):
    frame = pd_concat(make_texts(20), {"text": ["", " ", None], "label": ["tech"] * 3})
    path = _csv(tmp_path, frame, "some-empty.csv")
    result, _ = _run(runner, [str(path)], tmp_path)
    assert result.exit_code == 0, result.stderr
    assert "dropped 3 rows with empty text" in result.stderr


def test_unwritable_run_dir(runner, tmp_path):
    path = _csv(tmp_path, make_texts(20))
    blocker = tmp_path / "file-not-dir"
    blocker.write_text("x")
    result = runner.invoke(app, ["tune", str(path), "--run-dir", str(blocker / "run"),
                                 "--trials", "1", "--max-epochs", "1"])
    assert result.exit_code == 2
    assert "cannot write there" in result.stderr


def test_resume_with_different_preparation_is_refused(runner, tmp_path):
    path = _csv(tmp_path, make_texts(20))
    first, run_dir = _run(runner, [str(path)], tmp_path)
    assert first.exit_code == 0, first.stderr
    second, _ = _run(runner, [str(path), "--max-len", "5"], tmp_path)
    assert second.exit_code == 2
    assert "prepared with max_len=None, this command asks for max_len=5" in second.stderr


# --- export: the destination --------------------------------------------------------------

FAST = ["--trials", "1", "--max-epochs", "1", "--workers", "1", "--repeats", "1",
        "--folds", "1", "--ensemble", "1", "--no-refit"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A tiny text run (1 trial, 1 epoch); its bundle is run_dir / "model"."""
    return tiny_text_run(tmp_path_factory.mktemp("export"), FAST)


def _contents(root: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("fmt,out,message", [
    ("torchscript", "model/bundle.json", "--format torchscript writes a .pt or .pth"),
    ("onnx", "model/model.safetensors", "--format onnx writes a .onnx file"),
    ("torchscript", "model/weights.pt", "inside the bundle directory"),
    ("torchscript", "model/model.onnx", "extension '.onnx'"),
    ("onnx", "model/model.pt", "extension '.pt'"),
    ("torchscript", "config.json", "extension '.json'"),
    ("onnx", "split.json", "extension '.json'"),
    ("onnx", "metrics", "extension '(none)'"),
])
def test_export_never_writes_over_the_run_s_files(run_dir, fmt, out, message):
    before = _contents(run_dir)
    assert_refused(["export", run_dir / "model", "--format", fmt, "--out", run_dir / out],
                   message, [run_dir])
    assert _contents(run_dir) == before


def test_export_through_a_link_into_the_bundle_is_refused(run_dir, tmp_path):
    link = tmp_path / "link.pt"
    link.symlink_to(run_dir / "model" / "model.safetensors")
    before = _contents(run_dir)
    assert_refused(["export", run_dir / "model", "--format", "torchscript", "--out", link],
                   "inside the bundle directory", [run_dir, tmp_path])
    assert _contents(run_dir) == before


def test_export_replaces_a_previous_export_and_keeps_the_bundle(run_dir, runner):
    import zipfile

    from grutune.bundle import load_bundle

    out = run_dir / "exported.pt"
    for _ in range(2):  # the second run writes over the first one's export
        result = runner.invoke(app, ["export", str(run_dir / "model"), "--format",
                                     "torchscript", "--out", str(out)])
        assert result.exit_code == 0, result.stderr
        assert zipfile.is_zipfile(out)  # a TorchScript archive
    result = runner.invoke(app, ["export", str(run_dir / "model"), "--format", "torchscript"])
    assert result.exit_code == 0, result.stderr  # the default: MODEL/model.pt
    assert (run_dir / "model" / "model.pt").is_file()
    load_bundle(run_dir / "model")  # its own files intact
    assert not list(run_dir.rglob("*.tmp"))


def test_a_failed_export_check_leaves_no_file_and_the_previous_one(run_dir, monkeypatch):
    import grutune.export

    monkeypatch.setattr(grutune.export, "TOLERANCE", -1.0)  # every export now fails it
    previous = run_dir / "previous.pt"
    previous.write_bytes(b"a previous export")
    for out in (previous, run_dir / "new.pt"):
        assert_refused(["export", run_dir / "model", "--format", "torchscript", "--out", out],
                       "differs from the bundle", [run_dir])
    assert previous.read_bytes() == b"a previous export"
    previous.unlink()


@pytest.mark.parametrize(("args", "message"), [
    (["--dataset", "gunpoint", "--horizon", "3"], "--horizon: a forecast option; a series run"),
    (["--dataset", "bbc-news", "--covariates", "temp"], "--covariates: a forecast option; a text"),
    (["--dataset", "gunpoint", "--user", "u"], "--user: a recommend option; a series run"),
    (["--dataset", "gas", "--stop-words"], "--stop-words: a text option; a forecast run"),
    (["--dataset", "gas", "--max-len", "50"], "--max-len: a text option; a forecast run"),
    (["--dataset", "movielens", "--target", "rating"],  # (a test-only task may read it too)
     "--target: a forecast / *series / text option; a recommend run"),
    (["--dataset", "bbc-news", "--time", "date"],
     "--time: a forecast / recommend / series option; a text run"),
], ids=["horizon-series", "covariates-text", "user-series", "stop-words-forecast",
        "max-len-forecast", "target-recommend", "time-text"])
def test_an_option_the_task_does_not_read_is_refused_not_ignored(tmp_path, args, message):
    """Each of these was silently ignored: the run went on as if it had not been given."""
    head, _, tail = message.partition("*")
    line = assert_refused(["tune", *args, "--trials", "1", "--run-dir", tmp_path / "run"], head,
                          [tmp_path])
    assert tail in line
