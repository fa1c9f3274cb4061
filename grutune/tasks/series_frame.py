"""One time series as a regular, gap-free table: the forecasting task's input cleaning.

A table with an optional time column and numeric value columns becomes a frame indexed
by a regular time grid (or by row number when there is no time column):

- times are parsed (dates, or plain numbers such as 1, 2, 3 or 1990.25), sorted, and
  must be unique; the frequency is inferred (pandas' ``infer_freq``, also across gaps);
- missing grid points (gaps) are inserted, and every missing value is linearly
  interpolated; both are counted and reported (``CleanSeries.repairs``: counts and the
  first row/time); more than ``MAX_MISSING`` fails, and so does a column with no values;
- value columns must be numbers, finite and within float32's range (|x| <= 3.4e38: the
  models compute in float32), so ``inf``, ``-inf`` or ``1e40`` are refused naming the
  data row; a column of class labels is refused with a pointer to the
  series-classification task. When training (``training=True``) a target must also vary:
  a constant one cannot be scaled or forecast, and one that only takes two values looks
  like a class label; a covariate may be a 0/1 flag but must not be constant. A
  prediction's history is only held to the first rules (it may be short and flat).

Time zones. Times without a UTC offset are used as they are. Times with one (ISO strings
such as ``2021-03-28T03:00:00+02:00`` or ``...Z``, or tz-aware Parquet timestamps) follow
one rule, ``CleanSeries.basis``:

- ``"local"``: when the local wall-clock times (each time as written, or in its column's
  zone) form a regular grid of a day or coarser (daily, weekly, monthly, ...), the series
  is indexed by those wall-clock times with the offset dropped, so midnight-daily data
  stays daily across a daylight-saving change; its future times are wall-clock times of
  the same zone, written without an offset;
- ``"utc"``: otherwise (hourly and other sub-daily data) the times are converted to UTC,
  so an hourly series stays regular across a daylight-saving change in either direction
  (the repeated and the skipped local hour); the index, the saved split and the future
  times are in UTC, written with ``+00:00``.

Times with an offset mixed with times without one are refused, naming the first row of
each kind. A model trained on one basis refuses a history on another (``read_rows``).

>>> frame = pd.DataFrame({"t": ["2024-01-01", "2024-01-03", "2024-01-02"], "y": [1, 3, 2]})
>>> clean = clean_series(frame, "t", ["y"], "d.csv")
>>> clean.values["y"].tolist(), clean.freq, clean.season
([1.0, 2.0, 3.0], 'D', 7)
>>> hourly = [f"2021-03-28T0{h}:00:00+0{1 if h < 2 else 2}:00" for h in (0, 1, 3, 4)]
>>> clean = clean_series(pd.DataFrame({"t": hourly, "y": [1, 2, 3, 4]}), "t", ["y"], "d.csv")
>>> clean.basis, clean.freq, str(clean.values.index[-1])
('utc', 'h', '2021-03-28 02:00:00+00:00')
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from pandas.tseries.frequencies import to_offset

from grutune.data.readers import non_numeric, require_columns
from grutune.data.times import parse_datetimes
from grutune.exceptions import DataError

MAX_MISSING = 0.2  # share of missing (or gap) values above which the series is refused
FLOAT32_MAX = float(np.finfo(np.float32).max)  # the models compute in float32
SHOW_CHARS = 40  # values quoted in messages are cut to this many characters


@dataclass
class CleanSeries:
    values: pd.DataFrame  # [N, columns] float64, index = the regular time grid
    time_kind: str  # "datetime" | "number" | "row"
    freq: str | None  # pandas frequency alias ("MS", "30min"), the numeric step, or None
    season: int  # seasonal period inferred from the frequency (1: none)
    filled: int  # values interpolated (gaps included)
    gaps: int  # grid points that were missing entirely
    basis: str | None = None  # times with a UTC offset: "utc" or "local" (module docstring)
    # column -> (empty data rows, the first of them, 1-based), for columns with any
    missing_rows: dict[str, tuple[int, int]] = field(default_factory=dict)
    first_gap: str | None = None  # the first inserted time step
    rows: pd.Series | None = None  # grid time -> its data row in the file (0: inserted)

    def repairs(self) -> str:
        """What filling did, in words ("" when nothing was filled).

        >>> CleanSeries(pd.DataFrame(), "datetime", "D", 7, 4, 1, None, {"y": (2, 21)},
        ...             "2024-01-11 00:00:00").repairs()
        "interpolated 4 missing values: 1 missing time step inserted (first 2024-01-11 \
00:00:00); column 'y' empty in 2 data rows (first data row 21)"
        """
        if not self.filled:
            return ""
        parts = [f"{self.gaps} missing time step{'s' * (self.gaps != 1)} inserted (first "
                 f"{self.first_gap})"] if self.gaps else []
        parts += [f"column {name!r} empty in {count} data row{'s' * (count != 1)} (first "
                  f"data row {first})" for name, (count, first) in self.missing_rows.items()]
        return f"interpolated {self.filled} missing values: {'; '.join(parts)}"


def show(value: object) -> str:
    """A value for a message: its repr, numbers as plain Python, cut to ``SHOW_CHARS``.

    >>> show(np.float64("inf")), show(1e40), show("x" * 50)
    ('inf', '1e+40', "'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'...")
    """
    if isinstance(value, np.generic):
        value = value.item()
    text = repr(value)
    if len(text) <= SHOW_CHARS:
        return text
    if isinstance(value, str):
        return repr(value[:SHOW_CHARS - 6]) + "..."
    return text[:SHOW_CHARS - 3] + "..."


def _check_column(column: pd.Series, name: str, role: str, source: str,
                  training: bool) -> pd.Series:
    """The column as float64 numbers, or a DataError naming the row, value and rule.

    ``role`` is "target" or "covariate" (module docstring for each one's rules).
    """
    text = non_numeric(column)
    if text.any():
        row = int(np.flatnonzero(text)[0])
        share = text.mean()
        what = ("holds labels, not numbers" if share > 0.5 else
                f"has the non-numeric value {show(column.iloc[row])} (data row {row + 1})")
        hint = ("to classify labelled series use --task series" if role == "target" else
                "a covariate must be numbers; write a flag as 0/1")
        raise DataError(f"{source}: forecast column {name!r} {what}; forecasting needs a "
                        f"numeric series ({hint})")
    as_read = pd.to_numeric(column, errors="coerce")  # ints stay ints, for the messages
    numbers = as_read.astype(float)
    present = numbers.notna().to_numpy()
    out_of_range = present & ~(numbers.abs().to_numpy() <= FLOAT32_MAX)
    if out_of_range.any():
        row = int(np.flatnonzero(out_of_range)[0])
        raise DataError(f"{source}: forecast {role} {name!r} has the value "
                        f"{show(column.iloc[row])} in data row {row + 1}; values must be "
                        f"finite numbers between -{FLOAT32_MAX:.4g} and {FLOAT32_MAX:.4g} "
                        "(the models compute in float32)")
    if not present.any():
        raise DataError(f"{source}: forecast {role} {name!r} has no values (all "
                        f"{len(column):,} data rows are empty); an empty column cannot be "
                        "interpolated")
    if not training:
        return numbers
    distinct = as_read[present].unique()
    if len(distinct) == 1:
        if role == "target":
            raise DataError(f"{source}: forecast target {name!r} is constant (every value is "
                            f"{show(distinct[0])}); a constant series cannot be scaled or "
                            "forecast")
        raise DataError(f"{source}: forecast covariate {name!r} is constant (every value is "
                        f"{show(distinct[0])}); it carries no information, leave it out of "
                        "--covariates")
    if role == "target" and len(distinct) == 2 and present.sum() > 10:
        raise DataError(f"{source}: forecast target {name!r} only takes the values "
                        f"{sorted(distinct.tolist())}, like a class label; forecasting needs "
                        "a numeric series (to classify labelled series use --task series)")
    return numbers


def _parse_times(raw: pd.Series, column: str,
                 source: str) -> tuple[pd.Index, str, pd.DatetimeIndex | None]:
    """(times, kind, wall): a DatetimeIndex or a float Index; DataError names the bad value.

    Times with a UTC offset come back in UTC, with ``wall`` their local wall-clock times
    (offset dropped); ``wall`` is None for times without an offset.
    """
    missing = raw.isna() | (raw.astype(str).str.strip() == "")
    if missing.any():
        row = int(np.flatnonzero(missing.to_numpy())[0])
        raise DataError(f"{source}: time column {column!r} is empty in data row {row + 1}; "
                        "every row needs a time")
    if pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw):
        return pd.Index(raw.astype(float).to_numpy()), "number", None
    if isinstance(raw.dtype, pd.DatetimeTZDtype):  # Parquet: one zone for the column
        return (pd.DatetimeIndex(raw.dt.tz_convert("UTC")), "datetime",
                pd.DatetimeIndex(raw.dt.tz_localize(None)))
    if pd.api.types.is_datetime64_dtype(raw):
        return pd.DatetimeIndex(raw), "datetime", None
    utc, wall = parse_datetimes(raw, column, source)
    if wall is None:  # no offsets: the times as written
        return utc.tz_localize(None), "datetime", None
    return utc, "datetime", wall


def _daily_or_coarser(freq: str) -> bool:
    """True for a day, a week, a month, ...; False for hours, minutes, ...

    >>> [_daily_or_coarser(f) for f in ("h", "30min", "D", "2D", "W-SUN", "MS", "B")]
    [False, False, True, True, True, True, True]
    """
    offset = to_offset(freq)
    try:
        return pd.Timedelta(offset) >= pd.Timedelta(days=1)
    except (ValueError, TypeError):
        return True  # calendar offsets (business days, weeks, months, ...) have no length


def _basis(utc: pd.DatetimeIndex, wall: pd.DatetimeIndex,
           source: str) -> tuple[pd.DatetimeIndex, str]:
    """The times to index by, and the basis: local wall-clock times if they form a daily
    or coarser grid, else UTC (module docstring)."""
    ordered = wall.sort_values()
    # sub-daily steps cannot make a daily grid: skip the (slow, with gaps) grid search
    if len(ordered) >= 3 and not ordered.has_duplicates and \
            (ordered[1:] - ordered[:-1]).median() >= pd.Timedelta(hours=23):
        try:
            _, freq = _datetime_grid(ordered, source)
        except DataError:
            freq = None
        if freq is not None and _daily_or_coarser(freq):
            return wall, "local"
    return utc, "utc"


def _check_unique(times: pd.Index, raw: pd.Series, column: str, source: str) -> None:
    dup = times.duplicated(keep="first")
    if dup.any():
        row = int(np.flatnonzero(dup)[0])
        first = int(np.flatnonzero(times == times[row])[0])
        raise DataError(f"{source}: time column {column!r} has {show(raw.iloc[row])} twice (data "
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
                 source: str, targets: int | None = None, training: bool = True) -> CleanSeries:
    """Sorted, unique, gap-filled, interpolated ``columns`` on a regular time grid.

    The first ``targets`` columns (default: all) are forecast targets, the rest
    covariates; ``training=False`` (a prediction's history) skips the rules about the
    series' variety (module docstring).
    """
    require_columns(frame, ([time_column] if time_column else []) + columns, source)
    targets = len(columns) if targets is None else targets
    values = pd.DataFrame({name: _check_column(frame[name], name,
                                               "target" if i < targets else "covariate",
                                               source, training).to_numpy()
                           for i, name in enumerate(columns)}, columns=columns)
    missing_rows = {}
    for name in columns:
        empty = np.flatnonzero(values[name].isna().to_numpy())
        if len(empty):
            missing_rows[name] = (len(empty), int(empty[0]) + 1)
    basis, first_gap = None, None
    if time_column:
        times, kind, wall = _parse_times(frame[time_column], time_column, source)
        if wall is not None:
            times, basis = _basis(times, wall, source)
        _check_unique(times, frame[time_column], time_column, source)
        values["\0row"] = np.arange(1, len(values) + 1)  # data rows, through the sort
        values.index = times
        values = values.sort_index()
        if len(values) < 3:
            raise DataError(f"{source}: {len(values)} rows; a series needs many more")
        grid, freq = (_datetime_grid(values.index, source) if kind == "datetime"
                      else _number_grid(values.index, source))
        if kind == "number":
            values.index = grid[np.round((values.index - grid[0]) / float(freq)).astype(int)]
        gaps = len(grid) - len(values)
        if gaps:
            first_gap = str(grid[~grid.isin(values.index)][0])
        values = values.reindex(grid)
        rows = values.pop("\0row").fillna(0).astype(int)
    else:
        kind, freq, gaps = "row", None, 0
        rows = pd.Series(np.arange(1, len(values) + 1), index=values.index)
    missing = int(values.isna().to_numpy().sum())
    for name in columns:
        share = values[name].isna().mean()
        if share > MAX_MISSING:
            raise DataError(f"{source}: column {name!r} is {share:.0%} missing (gaps "
                            f"included); at most {MAX_MISSING:.0%} can be interpolated")
        known = values[name].notna().to_numpy()
        if known.any() and not known[-1]:  # nothing after the gap to interpolate towards
            first = int(np.flatnonzero(known)[-1]) + 1
            raise DataError(f"{source}: column {name!r} is empty from data row "
                            f"{int(rows.iloc[first])} to the end ({len(known) - first} "
                            "rows); a missing value is only interpolated between two known "
                            "ones, and the series' last values are what a forecast starts "
                            "from (and what the test part scores): drop those rows or fill "
                            "them")
    values = values.interpolate(method="linear", limit_direction="both")
    return CleanSeries(values, kind, freq, season_of(freq if kind == "datetime" else None),
                       missing, gaps, basis, missing_rows, first_gap, rows)


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
