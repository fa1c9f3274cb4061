"""One time series as a regular, gap-free table: the forecasting task's input cleaning.

A table with an optional time column and numeric value columns becomes a frame indexed
by a regular time grid (or by row number when there is no time column):

- times are parsed (dates, or plain numbers such as 1, 2, 3 or 1990.25), sorted, and
  must be unique; the frequency is inferred (pandas' ``infer_freq``, also across gaps);
- missing grid points (gaps) are inserted, and every missing value is linearly
  interpolated; both are counted and reported; more than ``MAX_MISSING`` fails;
- value columns must be numbers; a column of class labels is refused with a pointer to
  the series-classification task.

>>> frame = pd.DataFrame({"t": ["2024-01-01", "2024-01-03", "2024-01-02"], "y": [1, 3, 2]})
>>> clean = clean_series(frame, "t", ["y"], "d.csv")
>>> clean.values["y"].tolist(), clean.freq, clean.season
([1.0, 2.0, 3.0], 'D', 7)
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pandas.tseries.frequencies import to_offset

from ..exceptions import DataError
from ..readers import non_numeric, require_columns

MAX_MISSING = 0.2  # share of missing (or gap) values above which the series is refused


@dataclass
class CleanSeries:
    values: pd.DataFrame  # [N, columns] float64, index = the regular time grid
    time_kind: str  # "datetime" | "number" | "row"
    freq: str | None  # pandas frequency alias ("MS", "30min"), the numeric step, or None
    season: int  # seasonal period inferred from the frequency (1: none)
    filled: int  # values interpolated (gaps included)
    gaps: int  # grid points that were missing entirely


def _label_like(column: pd.Series, name: str, source: str) -> None:
    """Refuse text labels and two-valued columns as a forecast target."""
    text = non_numeric(column)
    if text.any():
        row = int(np.flatnonzero(text)[0])
        share = text.mean()
        what = ("holds labels, not numbers" if share > 0.5 else
                f"has the non-numeric value {column.iloc[row]!r} (data row {row + 1})")
        raise DataError(f"{source}: forecast column {name!r} {what}; forecasting needs a "
                        "numeric series (to classify labelled series use --task series)")
    numbers = pd.to_numeric(column, errors="coerce").dropna()
    distinct = numbers.unique()
    if 0 < len(distinct) <= 2 and len(numbers) > 10:
        raise DataError(f"{source}: forecast target {name!r} only takes the values "
                        f"{sorted(distinct.tolist())}, like a class label; forecasting needs "
                        "a numeric series (to classify labelled series use --task series)")


def _parse_times(raw: pd.Series, column: str, source: str) -> tuple[pd.Index, str]:
    """Times as a DatetimeIndex or a float Index; DataError names the first bad value."""
    missing = raw.isna() | (raw.astype(str).str.strip() == "")
    if missing.any():
        row = int(np.flatnonzero(missing.to_numpy())[0])
        raise DataError(f"{source}: time column {column!r} is empty in data row {row + 1}; "
                        "every row needs a time")
    if pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw):
        return pd.Index(raw.astype(float).to_numpy()), "number"
    parsed = pd.to_datetime(raw.astype(str).str.strip(), errors="coerce", format="mixed")
    bad = parsed.isna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(f"{source}: time column {column!r} has the unparseable time "
                        f"{raw.iloc[row]!r} (data row {row + 1}); use dates like 2024-01-31 "
                        "or 2024-01-31 13:30, or plain numbers")
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_convert(None)
    return pd.DatetimeIndex(parsed), "datetime"


def _check_unique(times: pd.Index, raw: pd.Series, column: str, source: str) -> None:
    dup = times.duplicated(keep="first")
    if dup.any():
        row = int(np.flatnonzero(dup)[0])
        first = int(np.flatnonzero(times == times[row])[0])
        raise DataError(f"{source}: time column {column!r} has {raw.iloc[row]!r} twice (data "
                        f"rows {first + 1} and {row + 1}); each time needs exactly one row")


def _datetime_grid(times: pd.DatetimeIndex, source: str) -> tuple[pd.DatetimeIndex, str]:
    """The regular grid from the first to the last time, and its frequency alias."""
    freq = pd.infer_freq(times) if len(times) >= 3 else None
    if freq is None:  # gaps: the most common frequency among runs of 5 consecutive times
        votes = Counter(pd.infer_freq(times[i:i + 5]) for i in range(0, len(times) - 4))
        votes.pop(None, None)
        if not votes:
            raise DataError(f"{source}: cannot infer a regular frequency from the times "
                            f"(first ones: {', '.join(map(str, times[:3]))}); forecasting "
                            "needs evenly spaced times")
        freq = votes.most_common(1)[0][0]
    grid = pd.date_range(times[0], times[-1], freq=freq)
    off_grid = ~times.isin(grid)
    if off_grid.any():
        raise DataError(f"{source}: the time {times[off_grid][0]} is off the series' "
                        f"{freq!r} grid; forecasting needs evenly spaced times")
    return grid, freq


def _number_grid(times: pd.Index, source: str) -> tuple[pd.Index, str]:
    steps = np.diff(times.to_numpy())
    step = float(pd.Series(np.round(steps, 9)).mode().iloc[0])
    position = (times.to_numpy() - times[0]) / step
    if not np.allclose(position, np.round(position), atol=1e-6):
        raise DataError(f"{source}: times are not evenly spaced (most common step {step:g}); "
                        "forecasting needs evenly spaced times")
    count = int(round(position[-1])) + 1
    return pd.Index(times[0] + step * np.arange(count)), f"{step:g}"


def season_of(freq: str | None) -> int:
    """Seasonal period of a frequency: steps per day below a day, else per week/year.

    >>> [season_of(f) for f in ("30min", "h", "D", "W-SUN", "MS", "QS-OCT", "YS", None)]
    [48, 24, 7, 52, 12, 4, 1, 1]
    """
    if freq is None:
        return 1
    try:
        offset = to_offset(freq)
    except ValueError:
        return 1  # a numeric step: no calendar
    try:
        nanos = pd.Timedelta(offset).value
    except ValueError:
        nanos = None  # calendar offsets (months, quarters, ...) have no fixed length
    if nanos:
        per_day = 86_400 * 10**9 / nanos
        if per_day > 1:
            return int(round(per_day))
        return 7 if per_day == 1 else 1
    code = offset.rule_code.upper()
    for prefix, season in (("D", 7), ("W", 52), ("Q", 4), ("BQ", 4), ("M", 12), ("SM", 24),
                           ("BM", 12), ("B", 5), ("A", 1), ("Y", 1), ("BA", 1), ("BY", 1)):
        if code.startswith(prefix) and (prefix != "B" or code == "B"):
            return season
    return 1


def clean_series(frame: pd.DataFrame, time_column: str | None, columns: list[str],
                 source: str) -> CleanSeries:
    """Sorted, unique, gap-filled, interpolated ``columns`` on a regular time grid."""
    require_columns(frame, ([time_column] if time_column else []) + columns, source)
    for name in columns:
        _label_like(frame[name], name, source)
    values = frame[columns].apply(pd.to_numeric, errors="coerce").astype(float)
    if time_column:
        times, kind = _parse_times(frame[time_column], time_column, source)
        _check_unique(times, frame[time_column], time_column, source)
        values.index = times
        values = values.sort_index()
        if len(values) < 3:
            raise DataError(f"{source}: {len(values)} rows; a series needs many more")
        grid, freq = (_datetime_grid(values.index, source) if kind == "datetime"
                      else _number_grid(values.index, source))
        if kind == "number":
            values.index = grid[np.round((values.index - grid[0]) / float(freq)).astype(int)]
        gaps = len(grid) - len(values)
        values = values.reindex(grid)
    else:
        values, kind, freq, gaps = values.reset_index(drop=True), "row", None, 0
    missing = int(values.isna().to_numpy().sum())
    for name in columns:
        share = values[name].isna().mean()
        if share > MAX_MISSING:
            raise DataError(f"{source}: column {name!r} is {share:.0%} missing (gaps "
                            f"included); at most {MAX_MISSING:.0%} can be interpolated")
    values = values.interpolate(method="linear", limit_direction="both")
    return CleanSeries(values, kind, freq, season_of(freq if kind == "datetime" else None),
                       missing, gaps)


def future_times(last: object, freq: str | None, kind: str, steps: int) -> list:
    """The ``steps`` times after ``last`` on the series' grid (row numbers without times).

    >>> future_times(pd.Timestamp("2024-01-31"), "D", "datetime", 2)
    [Timestamp('2024-02-01 00:00:00'), Timestamp('2024-02-02 00:00:00')]
    >>> future_times(10, None, "row", 2)
    [11, 12]
    """
    if kind == "datetime":
        return list(pd.date_range(last, periods=steps + 1, freq=freq)[1:])
    step = float(freq) if kind == "number" else 1
    return [last + step * k for k in range(1, steps + 1)]
