"""Property tests: random bytes and random tables reach the readers and the data
preparation; the only failure allowed is a clear ``GrutuneError`` naming the file.

Hostile values too: non-finite numbers (inf, -inf, nan, 1e40) in series tables and .ts
files are refused naming the place; odd encodings (UTF-16/32 with a BOM, UTF-8 BOM,
latin-1) and odd labels (NA, None, "", "01", 1, 1.0, spaces, unicode) are read, and
labels that are accepted come back exactly as written."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grutune.config import DataConfig
from grutune.data.readers import read_table
from grutune.exceptions import GrutuneError
from grutune.tasks import get_task
from grutune.tasks.base import restore_label_type

SETTINGS = settings(max_examples=120, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def _check_clear(err: GrutuneError, path: Path) -> None:
    message = str(err)
    assert message and "\n" not in message.strip()
    assert str(path) in message or path.name in message


@SETTINGS
@given(data=st.binary(max_size=3000), ext=st.sampled_from([".csv", ".parquet", ".jsonl"]))
def test_random_bytes_never_crash_the_readers(data, ext):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"f{ext}"
        path.write_bytes(data)
        try:
            frame = read_table(path)
        except GrutuneError as err:
            _check_clear(err, path)
        else:
            assert isinstance(frame, pd.DataFrame) and len(frame) > 0


cells = st.one_of(st.none(), st.text(max_size=30), st.integers(-5, 5),
                  st.floats(allow_nan=True, allow_infinity=True))


@SETTINGS
@given(rows=st.lists(st.tuples(cells, cells), min_size=0, max_size=60),
       names=st.sampled_from([("text", "label"), ("body", "label"), ("text", "text2")]))
def test_random_tables_prepare_or_fail_clearly(rows, names):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.csv"
        pd.DataFrame(rows, columns=list(names)).to_csv(path, index=False)
        try:
            prepared = get_task("text").prepare(DataConfig(path=str(path), task="text"))
        except GrutuneError as err:
            _check_clear(err, path)
        else:
            sizes = [len(prepared.train), len(prepared.val), len(prepared.test)]
            assert min(sizes) > 0


# --- hostile values: non-finite numbers, odd encodings, odd labels -------------------------

FEW = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
BAD_NUMBERS = [float("inf"), float("-inf"), float("nan"), 1e40, -1e39, "inf", "-inf", "nan",
               "NaN", "Infinity", "1e40", "-1E+39"]


def _write(path: Path, frame: pd.DataFrame) -> None:
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    elif path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        path.write_text("\n".join(json.dumps(r) for r in frame.to_dict(orient="records")) + "\n")


@FEW
@given(bad=st.sampled_from(BAD_NUMBERS), row=st.integers(0, 23), step=st.integers(0, 14),
       ext=st.sampled_from([".csv", ".jsonl", ".parquet"]))
def test_non_finite_series_values_are_refused_naming_the_place(bad, row, step, ext):
    from .test_series_task import make_series

    frame = make_series().astype(object)
    if ext == ".parquet" and isinstance(bad, str):
        bad = float(bad)  # Parquet numbers have no text
    frame.loc[row, f"t{step}"] = bad
    if ext == ".parquet":
        frame = frame.astype({c: float for c in frame.columns if c != "label"})
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"s{ext}"
        _write(path, frame)
        try:
            prepared = get_task("series").prepare(DataConfig(path=str(path), task="series"))
        except GrutuneError as err:
            _check_clear(err, path)
            assert f"column 't{step}'" in str(err) and f"data row {row + 1}" in str(err)
        else:  # only a NaN that is missing by the file's rules: pandas writes it as an
            # empty CSV cell or a Parquet null; JSON's NaN literal is refused
            assert isinstance(bad, float) and np.isnan(bad) and ext != ".jsonl"
            for part in (prepared.train, prepared.val, prepared.test):
                assert np.isfinite(part.x.numpy()).all()


ts_tokens = st.one_of(st.sampled_from(["inf", "-inf", "nan", "NaN", "1e40", "?", "x", ""]),
                      st.floats(-1e6, 1e6).map(repr))


@FEW
@given(lines=st.lists(st.lists(ts_tokens, min_size=1, max_size=6), min_size=1, max_size=6))
def test_ts_values_are_finite_or_refused(lines):
    from grutune.data.ts_format import read_ts

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.ts"
        body = "".join(",".join(tokens) + f":c{i % 2}\n" for i, tokens in enumerate(lines))
        path.write_text("@problemName x\n@data\n" + body)
        try:
            series, labels = read_ts(path)
        except GrutuneError as err:
            _check_clear(err, path)
        else:
            for s in series:
                present = s[~np.isnan(s)]
                assert len(present) and np.isfinite(present).all()
                assert (np.abs(present) <= np.finfo(np.float32).max).all()


odd_labels = st.sampled_from(["NA", "None", "null", "n/a", "", " ", "01", "1", "007", "7",
                              " a", "a ", "ü", "日本", "True", "nan", "-0", "1.0"])


@FEW
@given(names=st.lists(odd_labels, min_size=2, max_size=3, unique=True),
       encoding=st.sampled_from(["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-8-sig",
                                 "latin-1"]))
def test_odd_labels_in_odd_encodings_round_trip(names, encoding):
    import csv as csv_module

    from .conftest import make_texts

    texts = make_texts(8)["text"].tolist()[:8 * len(names)]
    labels = [names[i % len(names)] for i in range(len(texts))]
    frame = pd.DataFrame({"text": texts, "label": labels})
    text = frame.to_csv(index=False, quoting=csv_module.QUOTE_ALL)
    bom = "\ufeff" if encoding in ("utf-16-le", "utf-16-be") else ""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.csv"
        try:
            path.write_bytes((bom + text).encode(encoding))
        except UnicodeEncodeError:  # latin-1 cannot write every label
            path.write_bytes(text.encode(encoding, errors="replace"))
        try:
            prepared = get_task("text").prepare(DataConfig(path=str(path)))
        except GrutuneError as err:
            _check_clear(err, path)
            return
        written = set(frame["label"])
        if encoding == "latin-1":  # undecodable bytes were replaced, with a warning
            return
        assert set(prepared.state["labels"]) == written
        assert set(restore_label_type(prepared.state["labels"], prepared.state)) >= {
            n for n in written if not n.isdigit()}


typed_labels = st.one_of(st.sampled_from(["NA", "None", "", "01", "1", " a", "ü"]),
                         st.sampled_from([1, 7, -3, 0]), st.sampled_from([1.0, 2.5, -0.5]),
                         st.none(), st.booleans())


@FEW
@given(names=st.lists(typed_labels, min_size=2, max_size=3, unique_by=lambda v: (type(v), v)),
       ext=st.sampled_from([".jsonl", ".parquet", ".csv"]))
def test_typed_labels_round_trip_or_fail_clearly(names, ext):
    from .conftest import make_texts

    texts = make_texts(8)["text"].tolist()[:8 * len(names)]
    frame = pd.DataFrame({"text": texts, "label": pd.Series(
        [names[i % len(names)] for i in range(len(texts))], dtype=object)})
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"t{ext}"
        try:
            _write(path, frame)
        except (TypeError, ValueError):  # Parquet cannot store mixed types: nothing to read
            if ext != ".parquet":
                raise
            return
        try:
            prepared = get_task("text").prepare(DataConfig(path=str(path)))
        except GrutuneError as err:
            _check_clear(err, path)
            return
        restored = restore_label_type(prepared.state["labels"], prepared.state)
        if ext == ".jsonl":  # JSON keeps every type: the values come back exactly
            assert {(type(v), v) for v in restored} == {(type(v), v) for v in names}
        elif ext == ".csv":  # CSV is text: each label as pandas wrote it, spaces after
            # the delimiter skipped (``skipinitialspace``: "a, b" rows are common)
            assert set(prepared.state["labels"]) == {str(v).lstrip(" ") for v in names}
        else:
            assert sorted(map(str, restored)) == sorted(prepared.state["labels"])
