"""Predictions of a saved bundle: the one code path of ``grutune predict``,
``predict_file`` and the Python ``Model.predict``, and the one writer of prediction
tables (test_predictions.csv too).

>>> import io, pandas as pd
>>> out = io.StringIO()
>>> write_predictions(pd.DataFrame({"prediction": ["a"], "prob_a": [0.123456789]}), out)
>>> print(out.getvalue(), end='')
prediction,prob_a
a,0.123457
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TextIO

import numpy as np
import pandas as pd

from grutune.bundle import Bundle, load_bundle
from grutune.exceptions import ConfigError, DataError
from grutune.tasks import TASKS


def predict_file(bundle_dir: str | Path, path: str | Path,
                 text_column: str | None = None) -> pd.DataFrame:
    """Predictions of a saved bundle for every row of a file.

    >>> # predict_file("runs/bbc-news/model", "new.csv")  -> prediction, prob_<class>...
    """
    return predict_with(load_bundle(bundle_dir), path, text_column, str(bundle_dir))


def predict_with(bundle: Bundle, path: str | Path, text_column: str | None = None,
                 where: str = "bundle", top: int | None = None) -> pd.DataFrame:
    """Predictions of a loaded bundle for every row of the file ``path``: the one code
    path of ``grutune predict``, ``predict_file`` and the Python ``Model.predict``.
    ``top``: a recommender's items per history (``--top``)."""
    state = dict(bundle.state)
    if text_column:
        state["text_column"] = text_column
    if top is not None:
        state["top"] = top
    task_name = state.get("task")
    if task_name not in TASKS:
        raise ConfigError(f"{where}: bundle of unknown task {task_name!r}")
    task = TASKS[task_name]()
    frame = task.read_rows(str(path), state)
    return _finite(task.predict_rows(bundle.model, frame, state, str(path)), path)


PROBABILITY_DIGITS = "%.6g"  # text outputs: probabilities to 6 significant digits


def write_predictions(table: pd.DataFrame, stream: TextIO, fmt: str = "csv") -> None:
    """A prediction table as CSV, TSV or JSON Lines: test_predictions.csv and every text
    output of ``grutune predict`` alike, so predicting the test rows again reproduces the
    file exactly. Probabilities (``prob_`` columns) to 6 significant digits (a small
    positive one stays positive), every other number in full."""
    table = table.copy()
    for column in table.columns:
        if str(column).startswith("prob_") and table[column].dtype.kind == "f":
            table[column] = [float(PROBABILITY_DIGITS % v) for v in table[column]]
    if fmt in ("csv", "tsv"):
        table.to_csv(stream, index=False, sep="\t" if fmt == "tsv" else ",",
                     lineterminator="\n")
        return
    for record in table.to_dict(orient="records"):
        stream.write(json.dumps(record, ensure_ascii=False, default=_json_value) + "\n")


def _json_value(value: object) -> object:
    """A table cell JSON cannot hold as it is: times as ISO text, NumPy scalars as
    numbers, anything else as its text."""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def _finite(table: pd.DataFrame, path: str | Path) -> pd.DataFrame:
    """The prediction table, or DataError when the model gave a row no finite number: a
    blank or NaN prediction is never an answer. (The readers refuse non-finite input;
    finite values far outside the training range can still overflow inside the model.)"""
    numbers = table.select_dtypes("number").to_numpy(dtype="float64")
    bad = ~np.isfinite(numbers).all(axis=1)
    if bad.any():
        rows = [int(i) + 1 for i in np.flatnonzero(bad)[:5]]
        raise DataError(f"{path}: the model gives no finite prediction for {int(bad.sum())} "
                        f"of {len(table)} output rows (first: {rows}); their input values "
                        "are far outside the range of the training data")
    return table


__all__ = ["predict_file", "predict_with", "write_predictions"]
