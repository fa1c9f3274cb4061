"""Read a user's table (CSV, Parquet, JSON Lines) into a DataFrame, or fail clearly.

Every failure is a ``DataError`` whose message starts with the file name and states the
rule, so the CLI can print it as one line.

>>> import tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "d.csv"
>>> _ = p.write_text("text,label\\nhello,a\\nworld,b\\n")
>>> read_table(p).shape
(2, 2)
"""

from __future__ import annotations

import csv
import io
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from .exceptions import DataError

log = logging.getLogger("grutune")

CSV_EXTENSIONS = (".csv", ".tsv", ".txt")
PARQUET_EXTENSIONS = (".parquet", ".pq")
JSONL_EXTENSIONS = (".jsonl", ".ndjson")
SUPPORTED = CSV_EXTENSIONS + PARQUET_EXTENSIONS + JSONL_EXTENSIONS


def read_table(path: str | Path) -> pd.DataFrame:
    """Read ``path`` by its extension; at least one data row is guaranteed."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    ext = path.suffix.lower()
    if ext not in SUPPORTED:
        raise DataError(f"{path}: unsupported extension {ext or '(none)'!r}; "
                        f"use one of {', '.join(SUPPORTED)}")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty")
    if ext in PARQUET_EXTENSIONS:
        frame = _read_parquet(path)
    else:
        text = _decode(path)
        frame = _read_jsonl(path, text) if ext in JSONL_EXTENSIONS else _read_csv(path, text)
    if len(frame) == 0:
        raise DataError(f"{path}: no data rows (only a header?)")
    return frame


def _decode(path: Path) -> str:
    """UTF-8 text; undecodable bytes are replaced, with a warning that counts them."""
    raw = path.read_bytes()
    if b"\x00" in raw[:65536]:
        raise DataError(f"{path}: looks like binary data (NUL bytes), not text")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("utf-8", errors="replace")
        log.warning("%s: %d undecodable bytes (not UTF-8) were replaced by U+FFFD",
                    path, text.count("\ufffd"))
        return text


def _read_csv(path: Path, text: str) -> pd.DataFrame:
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    try:  # newline="": let the csv module see \r line ends itself
        header = next(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter), [])
    except csv.Error as err:
        raise DataError(f"{path}: not a valid CSV ({err})") from None
    _check_header(path, [h.strip() for h in header])
    try:
        frame = pd.read_csv(io.StringIO(text), sep=delimiter, on_bad_lines="error",
                            skipinitialspace=True)
    except (pd.errors.ParserError, ValueError, csv.Error) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DataError(f"{path}: not a valid CSV ({first})") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def _read_jsonl(path: Path, text: str) -> pd.DataFrame:
    try:
        frame = pd.read_json(io.StringIO(text), lines=True)
    except ValueError as err:
        raise DataError(f"{path}: not valid JSON Lines ({str(err).splitlines()[0]})") from None
    frame.columns = [str(c) for c in frame.columns]
    return frame


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        frame = pd.read_parquet(path)
    except Exception as err:  # pyarrow raises several types for a bad file
        raise DataError(f"{path}: not a readable Parquet file ({type(err).__name__})") from None
    _check_header(path, [str(c) for c in frame.columns])
    frame.columns = [str(c) for c in frame.columns]
    return frame


def _check_header(path: Path, names: list[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise DataError(f"{path}: column {name!r} appears more than once; "
                            "column names must be unique")
        seen.add(name)


def require_columns(frame: pd.DataFrame, columns: list[str], source: str) -> None:
    """Fail with the list of existing columns when one of ``columns`` is missing."""
    for column in columns:
        if column not in frame.columns:
            existing = ", ".join(map(str, frame.columns))
            raise DataError(f"{source}: no column {column!r}; the columns are: {existing}")


def non_numeric(column: pd.Series) -> np.ndarray:
    """Mask of values that are present, not blank and not numbers (``"twelve"``, not NaN).

    >>> non_numeric(pd.Series(["1.5", None, " ", "x"])).tolist()
    [False, False, False, True]
    """
    numbers = pd.to_numeric(column, errors="coerce")
    text = column.astype(str).str.strip()
    return (numbers.isna() & column.notna() & (text != "")).to_numpy()
