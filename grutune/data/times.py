"""Times written as text, read in one format for the whole column.

pandas' ``format="mixed"`` reads each cell on its own, so a day-first column such as
``10/02/2021, 22/02/2021`` is read month-first where it can be (2 October) and day-first
where it cannot (22 February): a silently wrong order. Here a column is read either as
ISO 8601 (``2024-01-31``, ``2024-01-31 13:30``, ``2024-01-31T13:30:00+01:00``, mixed
precision allowed) or in the one format pandas infers from its first time; a column
that reads both day-first and month-first with different results is refused as
ambiguous, and so is a cell in another format or a word such as ``now``.

>>> parse_datetimes(pd.Series(["10/02/2021", "22/02/2021"]), "t", "f.csv")[0].tolist()
[Timestamp('2021-02-10 00:00:00+0000', tz='UTC'), Timestamp('2021-02-22 00:00:00+0000', tz='UTC')]
>>> parse_datetimes(pd.Series(["10/02/2021", "11/02/2021"]), "t", "f.csv")
Traceback (most recent call last):
grutune.exceptions.DataError: f.csv: time column 't' reads both day-first and month-first \
('10/02/2021' is 10 February or 2 October); write dates as 2021-02-10
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from pandas.tseries.api import guess_datetime_format

from grutune.data.readers import show
from grutune.exceptions import DataError

ISO_HINT = "use dates like 2024-01-31 or 2024-01-31 13:30, or plain numbers"


def _first_bad(text: pd.Series, **kwargs: object) -> int | None:
    """The position of the first cell ``to_datetime(**kwargs)`` cannot read, if any."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        coerced = pd.to_datetime(text, errors="coerce", utc=True, **kwargs)
    bad = np.flatnonzero(coerced.isna().to_numpy())
    return int(bad[0]) if len(bad) else None


def _refuse(text: pd.Series, row: int, column: str, source: str, why: str) -> DataError:
    return DataError(f"{source}: time column {column!r} has the unparseable time "
                     f"{show(text.iloc[row])} (data row {row + 1}), {why}; {ISO_HINT}")


def _one_format(text: pd.Series, column: str, source: str) -> pd.Series:
    """UTC times read in the single format of the first time (not ISO 8601)."""
    first = text.iloc[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandas warns when a guess contradicts dayfirst
        formats = dict.fromkeys(guess_datetime_format(first, dayfirst=d) for d in (False, True))
    formats.pop(None, None)
    if not formats:
        raise _refuse(text, 0, column, source, "which is not a date and time pandas can read")
    read = {}
    for fmt in formats:
        if _first_bad(text, format=fmt) is None:
            read[fmt] = pd.to_datetime(text, format=fmt, utc=True)
    if not read:
        fmt = next(iter(formats))
        row = _first_bad(text, format=fmt)
        raise _refuse(text, row, column, source,
                      f"not in the format of the first time, {show(first)} ({fmt})")
    if len(read) > 1:
        (fa, a), (fb, b) = read.items()
        differ = np.flatnonzero((a != b).to_numpy())
        if len(differ):
            row = int(differ[0])
            raise DataError(
                f"{source}: time column {column!r} reads both day-first and month-first "
                f"({show(text.iloc[row])} is {_day_month(a.iloc[row], b.iloc[row], fa)}); "
                f"write dates as {min(a.iloc[row], b.iloc[row]):%Y-%m-%d}")
    return next(iter(read.values()))


def _day_month(a: pd.Timestamp, b: pd.Timestamp, fmt_a: str) -> str:
    """'10 February or 2 October': the day-first reading first."""
    day_first = fmt_a.find("%d") < fmt_a.find("%m")
    first, second = (a, b) if day_first else (b, a)
    return f"{first.day} {first:%B} or {second.day} {second:%B}"


def parse_datetimes(text: pd.Series, column: str,
                    source: str) -> tuple[pd.DatetimeIndex, pd.DatetimeIndex | None]:
    """(utc, wall): text times in UTC, and their local wall-clock times (offset dropped)
    when they carry UTC offsets (None when none does). Times with an offset mixed with
    times without one, cells in another format, and day/month-ambiguous columns are
    refused with a ``DataError`` naming the value and the data row."""
    text = text.astype(str).str.strip().reset_index(drop=True)
    words = ~text.str.contains(r"[0-9]", regex=True)
    if words.any():
        raise _refuse(text, int(np.flatnonzero(words.to_numpy())[0]), column, source,
                      "which is not a date and time")
    if _first_bad(text, format="ISO8601") is None:
        utc = pd.to_datetime(text, format="ISO8601", utc=True)
        try:  # no offset, or one offset for every time: one vectorized read
            local = pd.to_datetime(text, format="ISO8601")
        except (ValueError, TypeError):
            local = None
        if local is not None:
            if local.dt.tz is None:
                return pd.DatetimeIndex(utc), None
            return pd.DatetimeIndex(utc), pd.DatetimeIndex(local.dt.tz_localize(None))
        stamps = [pd.Timestamp(value) for value in text]  # several offsets: one by one
        aware = np.array([stamp.tzinfo is not None for stamp in stamps])
        if not aware.any():
            return pd.DatetimeIndex(utc), None
        if not aware.all():
            with_offset, without = int(np.flatnonzero(aware)[0]), int(np.flatnonzero(~aware)[0])
            raise DataError(f"{source}: time column {column!r} mixes times with a UTC offset "
                            f"(first {show(text.iloc[with_offset])} in data row "
                            f"{with_offset + 1}) and times without one (first "
                            f"{show(text.iloc[without])} in data row {without + 1}); give "
                            "every time an offset, or none")
        return (pd.DatetimeIndex(utc),
                pd.DatetimeIndex([stamp.tz_localize(None) for stamp in stamps]))
    return pd.DatetimeIndex(_one_format(text, column, source)), None


def time_keys(values: pd.Series, column: str, source: str, unit: str) -> np.ndarray:
    """A time column as float64 keys to order by: numbers as they are (then every cell
    must be a finite number), else dates and times in UTC microseconds
    (``parse_datetimes``). An empty cell is refused: every ``unit`` needs its time.

    >>> time_keys(pd.Series(["2021-01-02", "2021-01-01"]), "t", "f.csv", "event").tolist()
    [1609545600000000.0, 1609459200000000.0]
    """
    values = values.reset_index(drop=True)
    empty = values.isna() | values.astype(str).str.strip().eq("")
    if empty.any():
        row = int(np.flatnonzero(empty.to_numpy())[0]) + 1
        raise DataError(f"{source}: time column {column!r} is empty in data row {row}; "
                        f"every {unit} needs its time")
    numbers = pd.to_numeric(values, errors="coerce")
    if numbers.notna().any():  # numeric times: every one must be a number
        if numbers.isna().any():
            row = int(np.flatnonzero(numbers.isna().to_numpy())[0]) + 1
            raise DataError(f"{source}: time column {column!r} has the value "
                            f"{show(values.iloc[row - 1])} in data row {row}; the other "
                            f"times are numbers, so every {unit} needs a number there")
        finite = np.isfinite(numbers.to_numpy(np.float64))
        if not finite.all():
            row = int(np.flatnonzero(~finite)[0]) + 1
            raise DataError(f"{source}: time column {column!r} has the value "
                            f"{show(values.iloc[row - 1])} in data row {row}; a time must be "
                            "a finite number or a date and time")
        return numbers.to_numpy(np.float64)
    utc, _ = parse_datetimes(values, column, source)
    return utc.as_unit("us").asi8.astype(np.float64)
