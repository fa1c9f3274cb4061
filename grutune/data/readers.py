"""Read a user's table (CSV, Parquet, JSON Lines) into a DataFrame, or fail clearly.

Every failure is a ``DataError`` whose message starts with the file name and states the
rule, so the CLI can print it as one line.

Text files are decoded by their byte-order mark (UTF-8, UTF-16 LE/BE, UTF-32 LE/BE, as
Excel's "Unicode text" writes them), else as UTF-8 (undecodable bytes replaced, with a
warning); NUL bytes without a byte-order mark mean binary data. Columns named in
``as_written`` keep the user's values exactly: a CSV cell is its text (only an empty
cell is missing; ``NA``, ``None``, ``007`` are text), a JSON Lines cell its JSON value
(``"007"`` stays a string, ``7`` a number, ``null`` is missing). Other columns are
parsed as before (numbers are numbers). Nested Parquet or JSON values (lists, structs,
maps) are refused, naming the column and its type.

>>> import tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "d.csv"
>>> _ = p.write_text("text,label\\nhello,007\\nworld,NA\\n")
>>> read_table(p).shape
(2, 2)
>>> read_table(p, as_written=["label"])["label"].tolist()
['007', 'NA']
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from grutune.exceptions import DataError

log = logging.getLogger("grutune")

CSV_EXTENSIONS = (".csv", ".tsv", ".txt")
PARQUET_EXTENSIONS = (".parquet", ".pq")
JSONL_EXTENSIONS = (".jsonl", ".ndjson")
SUPPORTED = CSV_EXTENSIONS + PARQUET_EXTENSIONS + JSONL_EXTENSIONS
FLAT_RULE = "grutune reads flat columns only (text or numbers); flatten or drop it"
SHOW_CHARS = 60  # a value quoted in a message is cut to about this many characters

# byte-order marks, longest first (UTF-32-LE's starts with UTF-16-LE's)
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be"),
         (codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"),
         (codecs.BOM_UTF16_BE, "utf-16-be"))


def show(value: object, limit: int = SHOW_CHARS) -> str:
    """``repr`` of a value for a message, cut to about ``limit`` characters.

    >>> show("x" * 100).endswith("xx'...")
    True
    >>> show(1e40)
    '1e+40'
    """
    if isinstance(value, np.generic):
        value = value.item()  # 1e+40, not np.float64(1e+40)
    if isinstance(value, str) and len(value) > limit:
        return repr(value[:limit]) + "..."
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def typed_format(path: str | Path | None) -> bool:
    """Does the file's format carry value types (Parquet, JSON Lines), unlike CSV text?"""
    return path is not None and Path(path).suffix.lower() in PARQUET_EXTENSIONS + JSONL_EXTENSIONS


def check_file(path: Path) -> None:
    """DataError unless ``path`` is an existing regular file."""
    if path.is_dir():
        raise DataError(f"{path}: is a directory, not a file; give a data file")
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if not path.is_file():
        raise DataError(f"{path}: not a regular file; give a data file")


def read_table(path: str | Path, as_written: Sequence[str] | bool = (),
               flat: Mapping[str, str] | str | None = None) -> pd.DataFrame:
    """Read ``path`` by its extension; at least one data row is guaranteed.

    ``as_written``: columns (or True: all) kept exactly as the file writes them (see the
    module docstring). ``flat``: the columns that must not be nested, each with the rule
    to print when one is (a string: every column, with that rule; None: every column).
    """
    path = Path(path)
    check_file(path)
    ext = path.suffix.lower()
    if ext not in SUPPORTED:
        raise DataError(f"{path}: unsupported extension {ext or '(none)'!r}; "
                        f"use one of {', '.join(SUPPORTED)}")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty")
    if ext in PARQUET_EXTENSIONS:
        frame = _read_parquet(path, flat)
    else:
        text = decode_text(path, path.read_bytes())
        if ext in JSONL_EXTENSIONS:
            frame = _read_jsonl(path, text, as_written, flat)
        else:
            frame = _read_csv(path, text, as_written)
    if len(frame) == 0:
        raise DataError(f"{path}: no data rows (only a header?)")
    return frame


def decode_text(path: Path, raw: bytes, what: str = "text") -> str:
    """The text of a file's bytes, decoded by its byte-order mark, else as UTF-8.

    Without a byte-order mark, NUL bytes mean binary data; undecodable UTF-8 bytes are
    replaced, with a warning that counts them.
    """
    for bom, encoding in _BOMS:
        if raw.startswith(bom):
            try:
                text = raw[len(bom):].decode(encoding)
            except UnicodeDecodeError as err:
                if encoding != "utf-8":
                    raise DataError(f"{path}: starts with a {encoding.upper()} byte-order mark "
                                    f"but is not valid {encoding.upper()} {what} ({err.reason} "
                                    f"at byte {err.start + len(bom)}); save it as UTF-8"
                                    ) from None
                text = raw[len(bom):].decode("utf-8", errors="replace")
                log.warning("%s: %d undecodable bytes (not UTF-8) were replaced by U+FFFD",
                            path, text.count("\ufffd"))
            if "\x00" in text:
                raise DataError(f"{path}: {encoding.upper()} {what} with NUL characters; "
                                f"looks like binary data, not {what}")
            return text
    head = raw[:65536]
    if b"\x00" in head:
        hint = ""
        if len(head) >= 4 and (head[1::2].count(0) > 0.9 * len(head[1::2])
                               or head[0::2].count(0) > 0.9 * len(head[0::2])):
            hint = ("; if it is UTF-16 text, it has no byte-order mark: save it as UTF-8 "
                    "(or UTF-16 with a byte-order mark)")
        raise DataError(f"{path}: looks like binary data (NUL bytes), not {what}{hint}")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("utf-8", errors="replace")
        log.warning("%s: %d undecodable bytes (not UTF-8) were replaced by U+FFFD",
                    path, text.count("\ufffd"))
        return text


def _delimiter(path: Path, text: str) -> str:
    ext = path.suffix.lower()
    if ext == ".tsv":
        return "\t"
    first = text.split("\n", 1)[0]
    if ext == ".txt" and "\t" in first and "," not in first:
        return "\t"  # Excel's "Unicode text" and other tab-separated .txt files
    return ","


def _read_csv(path: Path, text: str, as_written: Sequence[str] | bool) -> pd.DataFrame:
    delimiter = _delimiter(path, text)
    try:  # newline="": let the csv module see \r line ends itself
        header = next(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter), [])
    except csv.Error as err:
        raise DataError(f"{path}: not a valid CSV ({err})") from None
    names = [h.strip() for h in header]
    _check_header(path, names)
    options: dict = {}
    if as_written is True:  # every cell its text; no NA markers (an empty cell is "")
        options = {"dtype": str, "keep_default_na": False}
    elif as_written:
        keep = set(as_written)
        options = {"converters": {i: str for i, name in enumerate(names) if name in keep}}
    try:
        frame = pd.read_csv(io.StringIO(text), sep=delimiter, on_bad_lines="error",
                            skipinitialspace=True, **options)
    except (pd.errors.ParserError, ValueError, csv.Error) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DataError(f"{path}: not a valid CSV ({first})") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    if as_written:  # an empty cell is missing (None), every other cell its text
        for column in frame.columns if as_written is True else set(as_written):
            if column in frame.columns:
                frame[column] = _as_text(frame[column])
    return frame


def _as_text(column: pd.Series) -> pd.Series:
    values = column.astype(object).to_numpy()
    return pd.Series([v if isinstance(v, str) and v != "" else None for v in values],
                     index=column.index, dtype=object)


def _read_jsonl(path: Path, text: str, as_written: Sequence[str] | bool,
                flat: Mapping[str, str] | str | None) -> pd.DataFrame:
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (ValueError, RecursionError) as err:
            first = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise DataError(f"{path}: not valid JSON Lines (line {number}: {first})") from None
        if not isinstance(record, dict):
            raise DataError(f"{path}: not valid JSON Lines (line {number} is a JSON "
                            f"{type(record).__name__}, not an object {{\"column\": value}})")
        records.append(record)
    columns: list[str] = []
    for record in records:
        columns.extend(k for k in record if k not in columns)
    _check_header(path, [str(c) for c in columns])
    if as_written is True:
        frame = pd.DataFrame({str(c): pd.Series([r.get(c) for r in records], dtype=object)
                              for c in columns}, index=range(len(records)))
    else:
        try:
            frame = pd.read_json(io.StringIO(text), lines=True)
        except (ValueError, TypeError, RecursionError) as err:
            first = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise DataError(f"{path}: not valid JSON Lines ({first})") from None
        frame.columns = [str(c) for c in frame.columns]
        if len(frame) != len(records):
            raise DataError(f"{path}: not valid JSON Lines ({len(records)} objects but "
                            f"{len(frame)} rows)")
        for column in as_written:
            if column in frame.columns:
                frame[column] = pd.Series([r.get(column) for r in records], dtype=object,
                                          index=frame.index)
    for column in _flat_columns(frame.columns, flat):
        if frame[column].dtype != object:
            continue
        for row, value in enumerate(frame[column].to_numpy()):
            if isinstance(value, (list, dict)):
                kind = "an array" if isinstance(value, list) else "an object"
                raise DataError(f"{path}: column {column!r} holds {kind} ({show(value)}, data "
                                f"row {row + 1}), a nested value; {_rule(flat, column)}")
    return frame


def _flat_columns(columns, flat: Mapping[str, str] | str | None) -> list[str]:
    if flat is None or isinstance(flat, str):
        return [str(c) for c in columns]
    return [str(c) for c in columns if str(c) in flat]


def _rule(flat: Mapping[str, str] | str | None, column: str) -> str:
    if isinstance(flat, str):
        return flat
    if isinstance(flat, Mapping):
        return flat.get(column, FLAT_RULE)
    return FLAT_RULE


def _read_parquet(path: Path, flat: Mapping[str, str] | str | None) -> pd.DataFrame:
    try:
        import pyarrow.parquet as pq
        import pyarrow.types as pat

        schema = pq.read_schema(path)
        frame = pd.read_parquet(path)
    except Exception as err:  # pyarrow raises several types for a bad file
        raise DataError(f"{path}: not a readable Parquet file ({type(err).__name__})") from None
    _check_header(path, [str(c) for c in frame.columns])
    frame.columns = [str(c) for c in frame.columns]
    wanted = set(_flat_columns(frame.columns, flat))
    for field in schema:
        kind = field.type.value_type if pat.is_dictionary(field.type) else field.type
        if str(field.name) in wanted and pat.is_nested(kind):
            kind = str(field.type)
            kind = kind if len(kind) <= SHOW_CHARS else kind[:SHOW_CHARS] + "..."
            raise DataError(f"{path}: column {field.name!r} is a nested Parquet column of type "
                            f"{kind}; {_rule(flat, str(field.name))}")
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
