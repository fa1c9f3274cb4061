"""Hostile data: non-finite numbers, labels that look like missing values or numbers,
odd encodings, directories and nested Parquet columns.

Refusals are checked through the CLI with ``assert_refused`` (exit 2, one ``error:``
line naming the file and the place, no traceback, nothing left behind); accepted inputs
must keep the user's values exactly (labels above all).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from grutune.cli import app
from grutune.config import DataConfig
from grutune.data.readers import read_table
from grutune.data.ts_format import read_ts
from grutune.exceptions import DataError
from grutune.tasks import get_task
from grutune.tasks.base import class_names, label_state, restore_label_type

from .conftest import make_texts
from .hostile import assert_refused
from .test_series_task import _ts_text, make_series

QUICK = ["--trials", "1", "--max-epochs", "1", "--repeats", "1", "--workers", "1", "--folds", "1",
         "--no-refit"]
SERIES_LABELS = {"sine": "007", "ramp": "NA"}  # a label "NA" and one with a leading zero


# --- building files ---------------------------------------------------------------------

def _series_frame() -> pd.DataFrame:
    return make_series().assign(label=lambda f: f["label"].map(SERIES_LABELS))


def _with(frame: pd.DataFrame, row: int, column: str, value) -> pd.DataFrame:
    out = frame.astype({column: object})
    out.loc[row, column] = value
    return out


def _csv(path: Path, frame: pd.DataFrame) -> Path:
    frame.to_csv(path, index=False)
    return path


def _jsonl(path: Path, frame: pd.DataFrame, raw: dict[tuple[int, str], str] | None = None
           ) -> Path:
    """JSON Lines of ``frame``; ``raw`` puts literal JSON text (NaN, Infinity) in cells."""
    lines = []
    for i, record in enumerate(frame.to_dict(orient="records")):
        cells = []
        for key, value in record.items():
            if raw and (i, key) in raw:
                text = raw[(i, key)]
            elif isinstance(value, float) and np.isnan(value):
                text = "null"
            else:
                text = json.dumps(value)
            cells.append(f"{json.dumps(key)}: {text}")
        lines.append("{" + ", ".join(cells) + "}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _parquet(path: Path, frame: pd.DataFrame) -> Path:
    frame.to_parquet(path, index=False)
    return path


def _long(frame: pd.DataFrame) -> pd.DataFrame:
    """The wide table in long form: id, label, time, v."""
    rows = []
    for i, line in frame.iterrows():
        for t, column in enumerate(c for c in frame.columns if c != "label"):
            if pd.notna(line[column]):
                rows.append({"id": f"s{i}", "label": line["label"], "t": t, "v": line[column]})
    return pd.DataFrame(rows)


def _ts(path: Path, bad: str | None = None, dims: int = 2) -> Path:
    """A two-class .ts file; ``bad`` replaces the 3rd value of line 6's first dimension."""
    rng = np.random.default_rng(0)
    series = [rng.standard_normal((12, dims)) for _ in range(20)]
    text = _ts_text(series, ["a" if i % 2 else "b" for i in range(20)])
    if bad is not None:
        lines = text.splitlines()
        data = lines.index("@data")
        dims_text = lines[data + 2].split(":")
        values = dims_text[0].split(",")
        values[2] = bad
        dims_text[0] = ",".join(values)
        lines[data + 2] = ":".join(dims_text)
        text = "\n".join(lines) + "\n"
    path.write_text(text, encoding="utf-8")
    return path


def _ts_all_missing(path: Path) -> Path:
    _ts(path)
    lines = path.read_text().splitlines()
    data = lines.index("@data")
    dims_text = lines[data + 3].split(":")
    dims_text[1] = ",".join("?" for _ in dims_text[1].split(","))
    lines[data + 3] = ":".join(dims_text)
    path.write_text("\n".join(lines) + "\n")
    return path


def _nested_parquet(path: Path, column: str, array: pa.Array, n: int = 60) -> Path:
    texts = make_texts(20)
    table = pa.table({"text": texts["text"].tolist(), "label": texts["label"].tolist()})
    table = table.set_column(table.schema.get_field_index(column), column, array)
    pq.write_table(table.slice(0, n), path)
    return path


# --- refusals: tune ---------------------------------------------------------------------

def _tune_cases(tmp: Path) -> dict[str, tuple[list, str]]:
    wide = _series_frame()
    series = ["--task", "series"]
    long_args = ["--task", "series", "--id", "id", "--time", "t"]
    long = _long(wide)
    long_row = int(np.flatnonzero(long["id"].eq("s3"))[2])  # 3rd step of series s3
    texts = make_texts(20)
    (tmp / "a-dir").mkdir()
    utf16_no_bom = tmp / "nobom.csv"
    utf16_no_bom.write_bytes(texts.to_csv(index=False).encode("utf-16-le"))
    jsonl_mixed = texts.astype({"label": object})
    jsonl_mixed["label"] = [1 if i % 2 else "1" for i in range(len(texts))]
    return {
        "wide csv inf": ([_csv(tmp / "w-inf.csv", _with(wide, 4, "t3", "inf")), *series],
                         "w-inf.csv: column 't3' has the value 'inf' (data row 5), which is "
                         "infinite"),
        "wide csv -inf": ([_csv(tmp / "w-ninf.csv", _with(wide, 0, "t1", "-inf")), *series],
                          "column 't1' has the value '-inf' (data row 1), which is infinite"),
        "wide csv nan text": ([_csv(tmp / "w-nan.csv", _with(wide, 6, "t2", "nan")), *series],
                              "w-nan.csv: column 't2' has the value 'nan' (data row 7), which "
                              "is not a finite number (NaN)"),
        "wide csv 1e40": ([_csv(tmp / "w-big.csv", _with(wide, 2, "t0", "1e40")), *series],
                          "column 't0' has the value '1e40' (data row 3), which overflows "
                          "float32"),
        "wide csv -1e39": ([_csv(tmp / "w-neg.csv", _with(wide, 9, "t4", "-1e39")), *series],
                           "'-1e39' (data row 10), which overflows float32"),
        "long csv inf": ([_csv(tmp / "l-inf.csv", _with(long, long_row, "v", "Infinity")),
                          *long_args],
                         f"l-inf.csv: column 'v' has the value 'Infinity' (data row "
                         f"{long_row + 1}, series 's3'), which is infinite"),
        "long csv nan": ([_csv(tmp / "l-nan.csv", _with(long, long_row, "v", "NaN")),
                          *long_args],
                         f"'NaN' (data row {long_row + 1}, series 's3'), which is not a finite"),
        "long csv empty channel": (
            [_csv(tmp / "l-empty.csv", long.assign(w=np.where(long["id"] == "s3", None, 1.0))),
             *long_args], "series 's3' has no values in column 'w'"),
        "jsonl Infinity": ([_jsonl(tmp / "inf.jsonl", wide, {(3, "t5"): "Infinity"}), *series],
                           "inf.jsonl: column 't5' has the value inf (data row 4), which is "
                           "infinite"),
        "jsonl NaN literal": ([_jsonl(tmp / "nan.jsonl", wide, {(2, "t0"): "NaN"}), *series],
                              "column 't0' has the value nan (data row 3), which is not a "
                              "finite number"),
        "jsonl nan string": ([_jsonl(tmp / "nans.jsonl", wide, {(2, "t0"): '"nan"'}), *series],
                             "column 't0' has the value 'nan' (data row 3)"),
        "jsonl 1e40": ([_jsonl(tmp / "big.jsonl", wide, {(5, "t1"): "1e40"}), *series],
                       "big.jsonl: column 't1' has the value 1e+40 (data row 6), which "
                       "overflows float32"),
        "parquet inf": ([_parquet(tmp / "inf.parquet", _with(wide, 1, "t2", np.inf).astype(
            {"t2": float})), *series], "inf.parquet: column 't2' has the value inf (data row "
                                       "2), which is infinite"),
        "parquet 1e40": ([_parquet(tmp / "big.parquet", _with(wide, 7, "t2", 1e40).astype(
            {"t2": float})), *series], "column 't2' has the value 1e+40 (data row 8), which "
                                       "overflows float32"),
        "ts inf": ([_ts(tmp / "inf.ts", "inf"), *series],
                   "inf.ts: line 6, dimension 1, time step 3: value 'inf' is not a finite"),
        "ts nan": ([_ts(tmp / "nan.ts", "NaN"), *series],
                   "nan.ts: line 6, dimension 1, time step 3: value 'NaN' is not a finite"),
        "ts 1e40": ([_ts(tmp / "big.ts", "1e40"), *series],
                    "big.ts: line 6, dimension 1, time step 3: value '1e40' overflows float32"),
        "ts all missing dimension": ([_ts_all_missing(tmp / "gone.ts"), *series],
                                     "gone.ts: line 7, dimension 2 has no values"),
        "directory as FILE": ([tmp / "a-dir"], "a-dir: is a directory, not a file"),
        "directory as --test": ([_csv(tmp / "texts.csv", texts), "--test", tmp / "a-dir"],
                                "a-dir: is a directory, not a file"),
        "series directory as FILE": ([tmp / "a-dir", *series], "is a directory, not a file"),
        "utf-16 without a BOM": ([utf16_no_bom], "nobom.csv: looks like binary data (NUL bytes), "
                                                 "not text; if it is UTF-16 text"),
        "parquet list text": ([_nested_parquet(tmp / "list.parquet", "text", pa.array(
            [["a", "b"]] * 60))], "list.parquet: column 'text' is a nested Parquet column of "
                                  "type list<element: string>; the text column must hold strings"),
        "parquet struct label": ([_nested_parquet(tmp / "struct.parquet", "label", pa.array(
            [{"k": i % 3} for i in range(60)]))], "column 'label' is a nested Parquet column "
                                                  "of type struct<k: int64>"),
        "parquet map series": ([_parquet_map_series(tmp / "map.parquet"), *series],
                               "map.parquet: column 't1' is a nested Parquet column of type "
                               "map<string, double"),
        "jsonl label 1 and '1'": ([_jsonl(tmp / "mixed.jsonl", jsonl_mixed)],
                                  "mixed.jsonl: target column 'label' has the label '1' (text, "
                                  "data row 1) and 1 (an integer, data row 2), which read the "
                                  "same"),
        "jsonl nested text": ([_jsonl(tmp / "nested.jsonl", texts.head(3), {(1, "text"):
                                                                           '["a", "b"]'})],
                              "nested.jsonl: column 'text' holds an array (['a', 'b'], data row "
                              "2), a nested value"),
    }


def _parquet_map_series(path: Path) -> Path:
    wide = make_series()[["label", "t0", "t1"]]
    table = pa.table({"label": wide["label"].tolist(), "t0": wide["t0"].tolist(),
                      "t1": pa.array([[("x", 1.0)]] * len(wide),
                                     type=pa.map_(pa.string(), pa.float64()))})
    pq.write_table(table, path)
    return path


TUNE_CASES = [
    "wide csv inf", "wide csv -inf", "wide csv nan text", "wide csv 1e40", "wide csv -1e39",
    "long csv inf", "long csv nan", "long csv empty channel", "jsonl Infinity",
    "jsonl NaN literal", "jsonl nan string", "jsonl 1e40", "parquet inf", "parquet 1e40",
    "ts inf", "ts nan", "ts 1e40", "ts all missing dimension", "directory as FILE",
    "directory as --test", "series directory as FILE", "utf-16 without a BOM",
    "parquet list text", "parquet struct label", "parquet map series",
    "jsonl label 1 and '1'", "jsonl nested text"]


@pytest.mark.parametrize("name", TUNE_CASES)
def test_tune_refuses(tmp_path, name):
    args, message = _tune_cases(tmp_path)[name]
    run_dir = tmp_path / "run"
    assert_refused(["tune", *args, "--run-dir", run_dir, *QUICK], message, [tmp_path])


# --- refusals: predict on a series model -------------------------------------------------

def _tune_series(root: Path, frame: pd.DataFrame) -> Path:
    path = _csv(root / "train.csv", frame)
    result = CliRunner().invoke(app, ["tune", str(path), "--task", "series", "--run-dir",
                                      str(root / "run"), *QUICK])
    assert result.exit_code == 0, result.output
    return root / "run"


@pytest.fixture(scope="module")
def series_run(tmp_path_factory) -> Path:
    """A quick series model (wide CSV, labels sine and ramp)."""
    return _tune_series(tmp_path_factory.mktemp("series-model"), make_series())


def _predict_cases(tmp: Path) -> dict[str, tuple[Path, str]]:
    wide = make_series().drop(columns="label")
    (tmp / "rows-dir").mkdir()
    return {
        "csv inf": (_csv(tmp / "p-inf.csv", _with(wide, 3, "t2", "inf")),
                    "p-inf.csv: column 't2' has the value 'inf' (data row 4), which is infinite"),
        "csv nan text": (_csv(tmp / "p-nan.csv", _with(wide, 0, "t0", "nan")),
                         "p-nan.csv: column 't0' has the value 'nan' (data row 1), which is "
                         "not a finite number"),
        "csv 1e40": (_csv(tmp / "p-big.csv", _with(wide, 5, "t3", "1e40")),
                     "column 't3' has the value '1e40' (data row 6), which overflows float32"),
        "jsonl Infinity": (_jsonl(tmp / "p.jsonl", wide, {(2, "t1"): "-Infinity"}),
                           "p.jsonl: column 't1' has the value -inf (data row 3), which is "
                           "infinite"),
        "parquet 1e40": (_parquet(tmp / "p.parquet", _with(wide, 4, "t0", -1e40).astype(
            {"t0": float})), "p.parquet: column 't0' has the value -1e+40 (data row 5), "
                             "which overflows float32"),
        "ts inf": (_ts(tmp / "p.ts", "-inf", dims=1),
                   "p.ts: line 6, dimension 1, time step 3: value '-inf' is not a finite"),
        "ts all missing": (_ts_all_missing_1d(tmp / "gone.ts"),
                           "gone.ts: line 7, dimension 1 has no values"),
        "directory": (tmp / "rows-dir", "rows-dir: is a directory, not a file"),
        "row without values": (_csv(tmp / "p-empty.csv", wide.assign(
            **{c: np.where(wide.index == 2, np.nan, wide[c]) for c in wide.columns})),
            "p-empty.csv: data row 3 has no values"),
    }


def _ts_all_missing_1d(path: Path) -> Path:
    _ts(path, dims=1)
    lines = path.read_text().splitlines()
    data = lines.index("@data")
    values, label = lines[data + 3].split(":")
    lines[data + 3] = ",".join("?" for _ in values.split(",")) + ":" + label
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("name", ["csv inf", "csv nan text", "csv 1e40", "jsonl Infinity",
                                  "parquet 1e40", "ts inf", "ts all missing", "directory",
                                  "row without values"])
def test_predict_refuses(series_run, tmp_path, name):
    path, message = _predict_cases(tmp_path)[name]
    out = tmp_path / "p.csv"
    assert_refused(["predict", series_run / "model", path, "--out", out], message,
                   [tmp_path, series_run])


# --- labels as written -------------------------------------------------------------------

def _read_as_text(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def test_series_labels_na_and_007_round_trip(tmp_path):
    series_run = _tune_series(tmp_path, _series_frame())
    saved = _read_as_text(series_run / "test_predictions.csv")
    assert set(saved["label"]) == {"007", "NA"}
    assert set(saved["prediction"]) <= {"007", "NA"}
    assert {"prob_007", "prob_NA"} <= set(saved.columns)
    state = json.loads((series_run / "model" / "bundle.json").read_text())["state"]
    assert state["labels"] == ["007", "NA"] and state["label_kind"] == "str"
    rows = _csv(tmp_path / "rows.csv", make_series().drop(columns="label").head(6))
    out = tmp_path / "pred.csv"
    result = CliRunner().invoke(app, ["predict", str(series_run / "model"), str(rows),
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert set(_read_as_text(out)["prediction"]) <= {"007", "NA"}


@pytest.mark.parametrize("labels", [
    {"sport": "NA", "tech": "None", "food": "null"},
    {"sport": "n/a", "tech": "007", "food": "7"},
    {"sport": "1", "tech": "01", "food": "001"},
])
def test_csv_labels_that_look_missing_or_numeric_are_kept(tmp_path, labels):
    frame = make_texts(20).assign(label=lambda f: f["label"].map(labels))
    path = _csv(tmp_path / "d.csv", frame)
    prep = get_task("text").prepare(DataConfig(path=str(path)))
    assert sorted(prep.state["labels"]) == sorted(labels.values())
    assert set(prep.test_frame["label"]) == set(labels.values())
    table = get_task("text").decode(prep.test.x.new_zeros(4, 3).float(), prep.state)
    assert table["prediction"].iloc[0] in labels.values()
    assert isinstance(table["prediction"].iloc[0], str)


def test_text_tune_and_predict_give_labels_back_as_written(tmp_path):
    labels = {"sport": "007", "tech": "NA", "food": "01"}
    frame = make_texts(20).assign(label=lambda f: f["label"].map(labels))
    path = _csv(tmp_path / "d.csv", frame)
    run_dir = tmp_path / "run"
    runner = CliRunner()
    result = runner.invoke(app, ["tune", str(path), "--run-dir", str(run_dir), *QUICK])
    assert result.exit_code == 0, result.output
    saved = _read_as_text(run_dir / "test_predictions.csv")
    assert set(saved["label"]) == set(labels.values())
    assert set(saved["prediction"]) <= set(labels.values())
    rows = _csv(tmp_path / "rows.csv", frame[["text"]].head(10))
    result = runner.invoke(app, ["predict", str(run_dir / "model"), str(rows)])
    assert result.exit_code == 0, result.output
    import io

    out = pd.read_csv(io.StringIO(result.stdout), dtype=str, keep_default_na=False)
    assert len(out) == 10 and set(out["prediction"]) <= set(labels.values())


def test_text_column_na_is_a_document(tmp_path):
    frame = make_texts(20)
    frame.loc[:5, "text"] = ["NA", "None", "null", "n/a", "nan", "NULL"]
    path = _csv(tmp_path / "d.csv", frame)
    prep = get_task("text").prepare(DataConfig(path=str(path)))
    assert prep.summary["empty_removed"] == 0


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
@pytest.mark.parametrize("values,kind,typ", [
    ({"sport": 10, "tech": 2, "food": 7}, "int", int),
    ({"sport": "10", "tech": "2", "food": "007"}, "str", str),
    ({"sport": "1", "tech": "2", "food": "3"}, "str", str),
    ({"sport": 1.5, "tech": 2.0, "food": -3.25}, "value", float),
    ({"sport": True, "tech": False, "food": True}, None, None),
])
def test_typed_labels_keep_their_type(tmp_path, fmt, values, kind, typ):
    frame = make_texts(20).assign(label=lambda f: f["label"].map(values))
    path = (_jsonl if fmt == "jsonl" else _parquet)(tmp_path / f"d.{fmt}", frame)
    if kind is None:  # booleans: two classes only, "True" and "False"
        prep = get_task("text").prepare(DataConfig(path=str(path)))
        assert prep.state["labels"] == ["False", "True"]
        assert prep.state["label_values"] == [False, True]
        return
    prep = get_task("text").prepare(DataConfig(path=str(path)))
    assert prep.state["label_kind"] == kind
    written = set(values.values())
    assert set(restore_label_type(prep.state["labels"], prep.state)) == written
    table = get_task("text").decode(prep.test.x.new_zeros(2, 3).float(), prep.state)
    assert all(type(v) is typ for v in table["prediction"])
    assert all(type(v) is typ for v in prep.test_frame["label"])
    assert json.loads(json.dumps(prep.state)) == prep.state  # the bundle state stays JSON


def test_jsonl_string_labels_stay_strings_and_zeros_stay(tmp_path):
    frame = make_texts(20).assign(label=lambda f: f["label"].map(
        {"sport": "01", "tech": "1", "food": "007"}))
    prep = get_task("text").prepare(DataConfig(path=str(_jsonl(tmp_path / "d.jsonl", frame))))
    assert prep.state["labels"] == ["007", "01", "1"]


def test_csv_1_and_01_are_different_series_classes(tmp_path):
    wide = make_series().assign(label=lambda f: f["label"].map({"sine": "1", "ramp": "01"}))
    prep = get_task("series").prepare(DataConfig(path=str(_csv(tmp_path / "s.csv", wide)),
                                                 task="series"))
    assert prep.state["labels"] == ["01", "1"] and prep.state["label_kind"] == "str"


def test_parquet_int_series_labels_come_back_as_ints(tmp_path):
    wide = make_series().assign(label=lambda f: f["label"].map({"sine": 3, "ramp": 12}))
    prep = get_task("series").prepare(DataConfig(path=str(_parquet(tmp_path / "s.parquet",
                                                                    wide)), task="series"))
    assert prep.state["labels"] == ["3", "12"] and prep.state["label_kind"] == "int"
    table = get_task("series").decode(prep.test.x.new_zeros(2, 2), prep.state)
    assert table["prediction"].tolist() == [3, 3]
    assert all(type(v) is int for v in prep.test_frame["label"])


def test_old_bundle_states_restore_as_before():
    assert restore_label_type(["2", "10"], {"labels": ["2", "10"], "label_kind": "int"}) == [
        2, 10]
    assert restore_label_type(["a"], {"labels": ["a"], "label_kind": "str"}) == ["a"]
    assert restore_label_type(["a"], {"labels": ["a"]}) == ["a"]
    assert class_names(pd.Series([10, 2, 2])) == (["2", "10"], "int")
    assert label_state(["1", "01"], ["1", "01"], typed=False)["label_kind"] == "str"


def test_labels_differing_by_spaces_are_kept_with_a_warning(tmp_path, caplog):
    frame = make_texts(20)
    frame["label"] = frame["label"].where(frame.index % 2 == 0, frame["label"] + " ")
    path = tmp_path / "d.csv"
    frame.to_csv(path, index=False, quoting=1)  # QUOTE_ALL: the spaces are the user's
    prep = get_task("text").prepare(DataConfig(path=str(path)))
    assert "sport " in prep.state["labels"] and "sport" in prep.state["labels"]
    assert "differ only by surrounding spaces" in caplog.text


def test_series_long_ids_007_and_7_are_different_series(tmp_path):
    long = pd.DataFrame({"id": ["007", "7", "007", "7"], "label": ["a", "b", "a", "b"],
                         "v": [1.0, 5.0, 2.0, 6.0]})
    from grutune.tasks.series_classification import long_to_series, read_series_table

    frame = read_series_table(str(_csv(tmp_path / "l.csv", long)))
    got = long_to_series(frame, "label", "id", None, "l.csv")
    assert [s.ravel().tolist() for s in got["series"]] == [[1.0, 2.0], [5.0, 6.0]]


# --- numbers that are accepted -----------------------------------------------------------

def test_missing_markers_are_still_interpolated(tmp_path):
    wide = _with(_with(make_series(), 3, "t2", "NA"), 4, "t1", "")
    prep = get_task("series").prepare(DataConfig(path=str(_csv(tmp_path / "s.csv", wide)),
                                                 task="series"))
    assert prep.summary["interpolated"] >= 2


def test_values_near_float32_max_train_without_overflow(tmp_path):
    wide = make_series()
    steps = [c for c in wide.columns if c != "label"]
    wide[steps] = wide[steps] * 3e37  # |x| up to ~1e38: finite in float32
    prep = get_task("series").prepare(DataConfig(path=str(_csv(tmp_path / "s.csv", wide)),
                                                 task="series"))
    assert np.isfinite(prep.train.x.numpy()).all()
    assert np.isfinite(prep.state["channel_std"]).all()


def test_ts_all_missing_dimension_is_refused_not_zero_filled(tmp_path):
    with pytest.raises(DataError, match="dimension 2 has no values"):
        read_ts(_ts_all_missing(tmp_path / "x.ts"))


# --- encodings ---------------------------------------------------------------------------

@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32",
                                      "utf-8-sig"])
def test_text_with_a_byte_order_mark_is_read(tmp_path, encoding):
    frame = make_texts(20)
    frame.loc[0, "text"] = "café déjà vu ünïcödé 日本"
    text = frame.to_csv(index=False)
    bom = {"utf-16-le": "\ufeff", "utf-16-be": "\ufeff"}.get(encoding, "")
    path = tmp_path / "d.csv"
    path.write_bytes((bom + text).encode(encoding))
    got = read_table(path, as_written=["text", "label"])
    pd.testing.assert_frame_equal(got.astype(str), frame.astype(str), check_dtype=False)
    prep = get_task("text").prepare(DataConfig(path=str(path)))
    assert sum(prep.summary["rows"].values()) == 60


def test_excel_unicode_text_is_read(tmp_path):
    """Excel's "Unicode text": UTF-16 LE with a BOM, tab-separated, saved as .txt."""
    frame = make_texts(20)
    path = tmp_path / "export.txt"
    path.write_bytes(frame.to_csv(index=False, sep="\t").encode("utf-16"))
    result = CliRunner().invoke(app, ["tune", str(path), "--run-dir", str(tmp_path / "run"),
                                      *QUICK])
    assert result.exit_code == 0, result.output


def test_ts_in_utf16_is_read(tmp_path):
    path = tmp_path / "x.ts"
    path.write_bytes("@data\n1,2:3,4:a\n5,?:7,8:b\n".encode("utf-16"))
    series, labels = read_ts(path)
    assert labels == ["a", "b"] and series[1].shape == (2, 2)


def test_invalid_utf16_after_a_bom_names_the_encoding(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes(b"\xff\xfe" + "text,label\n".encode("utf-16-le") + b"\x00\xd8")
    with pytest.raises(DataError, match="UTF-16-LE byte-order mark but is not valid"):
        read_table(path)
