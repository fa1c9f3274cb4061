"""Series classification: labelled (multivariate, variable-length) series -> a GRU classifier.

Input, as a frame of ``series`` (float arrays [T, C]) and ``label`` columns, from:

- a UCR/UEA ``.ts`` file (``--test`` for the archive's own test file);
- a CSV/Parquet/JSONL table in *wide* form: one row per series, the target column and the
  numeric value columns in time order (trailing blanks end a shorter series);
- a table in *long* form (``--id COL``): one row per time step, the series id, an optional
  time column (``--time COL``) to order the steps, the label, and the channel columns.

Values: every value must be a finite number within float32's range (the models compute
in float32): ``inf``, ``-inf``, ``nan`` written as text (or JSON's ``NaN``) and numbers
such as ``1e40`` are refused, naming the file, the data row (or series) and the column.
Missing is an empty cell (CSV; also ``NA``, ``N/A``, ``null``, ``None``), JSON ``null``, a
Parquet null or NaN, and ``?`` in a ``.ts`` file. A series with a channel that has no
values at all is refused. Labels are kept as written (``NA`` and ``007`` are labels).

Preparation: missing values inside a series are linearly interpolated (and counted); a
series that repeats an earlier one's values is dropped, and so is a training series that
is also in the given test part (either would be trained on and then tested); the split
keeps a given test part and carves a stratified validation part from the
training part (else 70/15/15 stratified); each channel is standardized with the mean and
standard deviation of the *training* series; per-series z-normalization is a model
option (``series_norm``, a hyperparameter) applied inside the model over valid steps only.
Series are padded to the longest; padding never changes an output.

>>> wide = pd.DataFrame({"label": ["a", "b"], "t0": [1.0, 4.0], "t1": [2.0, None]})
>>> [s.ravel().tolist() for s in wide_to_series(wide, "label", "wide.csv")["series"]]
[[1.0, 2.0], [4.0]]
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from grutune.config import CELLS, DataConfig, ModelConfig
from grutune.data.cache import SequenceData
from grutune.data.datasets import get_dataset
from grutune.data.readers import read_table, require_columns, show, typed_format
from grutune.data.times import time_keys
from grutune.data.ts_format import read_ts
from grutune.exceptions import DataError
from grutune.manifest_checks import Checker, is_int, is_number_list
from grutune.search_space import (
    Param,
    Space,
    choice_param,
    fixed_param,
    int_param,
    numeric_params,
    training_params,
    with_params,
)
from grutune.tasks.base import (
    ClassificationTask,
    Prepared,
    check_classes,
    label_state,
    read_labels,
    restore_label_type,
    stratified_sample,
    stratified_split,
    warn_similar_labels,
)
from grutune.tasks.baselines import Baseline, dtw_neighbour

log = logging.getLogger("grutune")

MIN_SERIES = 8
FLOAT32_MAX = float(np.finfo(np.float32).max)  # the models compute in float32
# CSV text that means "missing" in a value column (besides an empty cell); nan is not one
MISSING_TEXT = frozenset({"", "NA", "N/A", "n/a", "NULL", "null", "None", "#N/A", "<NA>"})
NUMBERS_RULE = "series values must be finite numbers within float32's range (|x| <= 3.4e38)"


@dataclass
class _Source:
    pool: pd.DataFrame  # [series, label] rows to split
    test: pd.DataFrame | None  # a published or user-given test part
    name: str  # for messages: the file or dataset name
    target: str
    typed: bool = False  # labels of a typed format (Parquet, JSON Lines) keep their type
    steps: list[str] | None = None  # a wide table's step columns, in order


def read_series(path: str, cfg: DataConfig, target: str) -> pd.DataFrame:
    """A .ts file or a wide/long table -> frame [series, label]."""
    if Path(path).suffix.lower() == ".ts":
        series, labels = read_ts(path)
        return pd.DataFrame({"series": series, "label": labels})
    frame = read_series_table(path)
    if cfg.id_column:
        return long_to_series(frame, target, cfg.id_column, cfg.time_column, path)
    return wide_to_series(frame, target, path)


def read_series_table(path: str) -> pd.DataFrame:
    """A table with every cell as written (values are checked by ``numbers``); a file
    whose header row looks like data is refused (its first series would be lost)."""
    frame = read_table(path, as_written=True,
                       flat="series values must be numbers and labels text or numbers")
    if _header_is_data(list(frame.columns)):
        raise DataError(f"{path}: the first row looks like data, not column names (every "
                        f"name is a number, e.g. {show(str(frame.columns[1]))}); add a "
                        "header row (e.g. label,t0,t1,...) so the first series is read too")
    return frame


def numbers(column: pd.Series, name: str, source: str,
            where: Callable[[int], str] | None = None) -> np.ndarray:
    """A value column as float64 (NaN: missing), or a DataError naming the first bad value.

    ``where(position)`` says where a row is ("data row 6"; default: that). Missing: None,
    a NaN of a numeric column (Parquet), text in ``MISSING_TEXT``. Refused: other text that
    is not a number, ``nan``/``inf`` text or JSON ``NaN``/``Infinity``, |x| > float32 max.
    """
    where = where or (lambda i: f"data row {i + 1}")
    if pd.api.types.is_bool_dtype(column.dtype) or pd.api.types.is_numeric_dtype(column.dtype):
        values = column.to_numpy(dtype=np.float64, na_value=np.nan)
        missing = np.isnan(values)
    else:
        cells = column.astype(object).to_numpy()
        values = np.full(len(cells), np.nan)
        missing = np.zeros(len(cells), dtype=bool)
        text = np.array([isinstance(v, str) for v in cells], dtype=bool)
        if text.any():
            stripped = pd.Series(cells[text], dtype=object).str.strip()
            blank = stripped.isin(MISSING_TEXT).to_numpy()
            missing[np.flatnonzero(text)[blank]] = True
            parsed = pd.to_numeric(stripped.where(~blank, "0"), errors="coerce")
            values[text] = np.where(blank, np.nan, parsed.to_numpy(dtype=np.float64))
        for i in np.flatnonzero(~text):
            v = cells[i]
            if v is None or v is pd.NA:
                missing[i] = True
            elif isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(
                    v, (bool, np.bool_)):
                values[i] = float(v)
            # anything else (a bool, a nested value) stays NaN, not missing: refused below
    bad = ~missing & ~(np.isfinite(values) & (np.abs(np.nan_to_num(values)) <= FLOAT32_MAX))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        cell = column.iloc[i]
        head = f"{source}: column {name!r} has the value {show(cell)} ({where(i)})"
        if np.isnan(values[i]) and not _nan_text(cell):
            raise DataError(f"{head}, which is not a number; {NUMBERS_RULE}")
        if np.isnan(values[i]):
            raise DataError(f"{head}, which is not a finite number (NaN); {NUMBERS_RULE}; "
                            "leave the cell empty for a missing value")
        if np.isinf(values[i]):
            raise DataError(f"{head}, which is infinite; {NUMBERS_RULE}")
        raise DataError(f"{head}, which overflows float32 (largest magnitude "
                        f"{FLOAT32_MAX:.7g}); {NUMBERS_RULE}")
    return values


def _nan_text(cell: object) -> bool:
    """Is ``cell`` a NaN written as such (``nan`` text, JSON ``NaN``), not a word?"""
    if isinstance(cell, (float, np.floating)):
        return bool(np.isnan(cell))
    if isinstance(cell, str):
        try:
            return bool(np.isnan(float(cell.strip())))
        except ValueError:
            return False
    return False


def _numeric(frame: pd.DataFrame, columns: list[str], source: str,
             where: Callable[[int], str] | None = None) -> np.ndarray:
    """The columns as float32 [rows, columns] (NaN: missing); DataError on a bad value."""
    out = np.empty((len(frame), len(columns)), dtype=np.float32)
    for j, column in enumerate(columns):
        out[:, j] = numbers(frame[column], column, source, where)
    return out


def wide_to_series(frame: pd.DataFrame, target: str, source: str) -> pd.DataFrame:
    """One row per series: every column but ``target`` is a time step, in column order."""
    require_columns(frame, [target], source)
    steps = [c for c in frame.columns if c != target]
    if not steps:
        raise DataError(f"{source}: no value columns besides the target {target!r}")
    values = _numeric(frame, steps, source)  # [N, T]
    series = []
    for row, line in enumerate(values):
        valid = np.flatnonzero(~np.isnan(line))
        if len(valid) == 0:
            raise DataError(f"{source}: data row {row + 1} has no values; every series needs "
                            "at least one")
        series.append(line[: valid[-1] + 1, None])  # trailing blanks: a shorter series
    out = pd.DataFrame({"series": series, "label": frame[target].to_numpy()})
    out.attrs["steps"] = [str(c) for c in steps]
    return out


def _header_is_data(columns: list[str]) -> bool:
    """True when every column name is a number and one is not a whole number: the first
    row of a file without a header (UCR-style CSVs), not names such as 0, 1, 2.

    >>> _header_is_data(["1", "-0.64", "0.12"]), _header_is_data(["label", "0", "1"])
    (True, False)
    """
    values = []
    for name in columns:  # pandas renames a repeated name: 0.5, 0.5.1
        try:
            values.append(float(re.sub(r"^([^.]*\.[^.]*)\.[0-9]+$", r"\1", str(name))))
        except ValueError:
            return False
    return len(values) >= 2 and any(v != int(v) for v in values if np.isfinite(v))


def _sort_key(values: pd.Series) -> pd.Series:
    """A column to sort ids by: numbers when every value is one, else its text."""
    as_numbers = pd.to_numeric(values, errors="coerce")
    if as_numbers.notna().all():
        return as_numbers
    return values.astype(object).where(values.notna(), "").astype(str)


def long_to_series(frame: pd.DataFrame, target: str, id_column: str, time_column: str | None,
                   source: str) -> pd.DataFrame:
    """One row per step: group by ``id_column``, order by ``time_column``, channels = the rest."""
    keys = [id_column, target] + ([time_column] if time_column else [])
    require_columns(frame, keys, source)
    channels = [c for c in frame.columns if c not in keys]
    if not channels:
        raise DataError(f"{source}: no channel columns besides {', '.join(keys)}")
    frame = frame.reset_index(drop=True)  # positions = data rows of the file
    ids = frame[id_column]
    no_id = ids.isna().to_numpy() | (ids.astype(object).map(
        lambda v: isinstance(v, str) and not v.strip())).to_numpy(dtype=bool)
    if no_id.any():
        row = int(np.flatnonzero(no_id)[0])
        raise DataError(f"{source}: id column {id_column!r} is empty in data row {row + 1}; "
                        "every step needs the id of its series")
    values = _numeric(frame, channels, source,
                      lambda i: f"data row {i + 1}, series {show(ids.iloc[i])}")
    key = ids.map(lambda v: f"{type(v).__name__}:{v}")  # ids as written: 007 is not 7
    if time_column:
        # numbers, or dates read in one format for the whole column (``data.times``:
        # text order would put 2021-1-10 before 2021-1-9)
        times = pd.Series(time_keys(frame[time_column], time_column, source, "step"),
                          index=frame.index)
        dup = pd.DataFrame({"id": key, "t": times}).duplicated().to_numpy()
        if dup.any():
            row = int(np.flatnonzero(dup)[0])
            raise DataError(f"{source}: series {ids.iloc[row]!r} has the time "
                            f"{frame[time_column].iloc[row]!r} twice (data row {row + 1}); "
                            "each step of a series needs its own time")
        order = pd.DataFrame({"id": _sort_key(ids), "t": times}).sort_values(
            ["id", "t"], kind="stable").index.to_numpy()
    else:
        order = np.arange(len(frame))
    sorted_keys = key.iloc[order].reset_index(drop=True)
    names, _ = read_labels(frame[target], source, target)
    series, labels = [], []
    for index in sorted_keys.groupby(sorted_keys, sort=False).indices.values():
        rows = order[index]  # file positions of this series' steps, in time order
        found = list(dict.fromkeys(names[r] for r in rows))
        if len(found) != 1:
            shown = ", ".join(show(n) if n is not None else "(missing)" for n in found[:3])
            raise DataError(f"{source}: series {ids.iloc[rows[0]]!r} has several labels in "
                            f"column {target!r} ({shown}); a series has one label")
        block = values[rows]
        empty = np.isnan(block).all(0)
        if empty.any():
            raise DataError(f"{source}: series {ids.iloc[rows[0]]!r} has no values in column "
                            f"{channels[int(np.flatnonzero(empty)[0])]!r} (data rows "
                            f"{_rows(rows)}); every channel of a series needs at least one "
                            "value")
        series.append(block)
        labels.append(frame[target].iloc[rows[0]])
    return pd.DataFrame({"series": series, "label": pd.Series(labels, dtype=object)})


def _rows(positions: np.ndarray) -> str:
    """File data rows (1-based) of positions, the first three: "2, 4, 6, ..."."""
    shown = ", ".join(str(int(p) + 1) for p in sorted(positions)[:3])
    return shown + (", ..." if len(positions) > 3 else "")


def check_channels(series: np.ndarray, source: str, row: int) -> None:
    """DataError when a channel of a series has no values (it would be zero-filled)."""
    empty = np.isnan(series).all(0) if len(series) else np.ones(series.shape[1], bool)
    if empty.any():
        raise DataError(f"{source}: series {row + 1} has no values in channel "
                        f"{int(np.flatnonzero(empty)[0]) + 1}; every channel of a series needs "
                        "at least one value")


def interpolate(series: np.ndarray) -> tuple[np.ndarray, int]:
    """Linearly fill NaNs per channel (edges take the nearest value); (filled, how many)."""
    missing = np.isnan(series)
    count = int(missing.sum())
    if count == 0:
        return series, 0
    out = series.copy()
    steps = np.arange(len(series))
    for c in range(series.shape[1]):
        gap = missing[:, c]
        if gap.all():
            out[:, c] = 0.0
        elif gap.any():
            out[gap, c] = np.interp(steps[gap], steps[~gap], series[~gap, c])
    return out, count


def series_id(series: np.ndarray, label: str) -> str:
    """Stable id of a series (values and label): split.json stores these."""
    digest = hashlib.sha1(np.ascontiguousarray(series, dtype=np.float32).tobytes())
    digest.update(str(label).encode())
    return digest.hexdigest()[:16]


def _clean(frame: pd.DataFrame, name: str, target: str, summary: dict) -> pd.DataFrame:
    """[id, series, label, label_value]: labels checked, NaNs interpolated, channels
    consistent. ``label`` is the class name (as written), ``label_value`` its typed value."""
    names, values = read_labels(frame["label"], name, target, unit="series")
    missing = np.array([n is None for n in names], dtype=bool)
    if missing.any():
        first = int(np.flatnonzero(missing)[0]) + 1
        raise DataError(f"{name}: target column {target!r} has {int(missing.sum())} missing "
                        f"values (first at series {first}); every series needs a label")
    warn_similar_labels(names, name, target)
    channels = {s.shape[1] for s in frame["series"]}
    if len(channels) != 1:
        raise DataError(f"{name}: series have different numbers of channels "
                        f"{sorted(channels)}; each needs the same")
    filled, total = [], 0
    for row, s in enumerate(frame["series"]):
        s = np.asarray(s, dtype=np.float32)
        check_channels(s, name, row)
        s, count = interpolate(s)
        filled.append(s)
        total += count
    if total:
        log.warning("%s: interpolated %d missing values inside series", name, total)
    summary["interpolated"] = summary.get("interpolated", 0) + total
    out = pd.DataFrame({"series": filled, "label": pd.Series(names, dtype=object),
                        "label_value": pd.Series(values, dtype=object)})
    ids = [series_id(s, label) for s, label in zip(out["series"], out["label"], strict=True)]
    out.insert(0, "id", ids)  # a repeated series (same id) is dropped next: drop_repeats
    return out


def _content(series: np.ndarray) -> str:
    """A series' values alone (shape included), as a key: equal keys, equal series."""
    digest = hashlib.sha1(str(series.shape).encode())
    digest.update(np.ascontiguousarray(series, dtype=np.float32).tobytes())
    return digest.hexdigest()


def drop_repeats(frame: pd.DataFrame, name: str, summary: dict,
                 seen: pd.DataFrame | None = None) -> pd.DataFrame:
    """``frame`` without the series that repeat an earlier one's values (whatever their
    labels), and without those in ``seen`` (the test part): a series in two parts would
    be trained on and then tested. Counted in ``summary`` (duplicates_removed,
    test_overlap_removed) when any are dropped, and said in a warning.
    """
    keys = frame["series"].map(_content)
    repeated = keys.duplicated().to_numpy()
    if repeated.any():
        log.warning("%s: removed %d series that repeat an earlier series' values", name,
                    int(repeated.sum()))
        summary["duplicates_removed"] = summary.get("duplicates_removed", 0) + int(
            repeated.sum())
    keep = ~repeated
    if seen is not None:
        overlap = keys.isin(set(seen["series"].map(_content))).to_numpy() & keep
        if overlap.any():
            log.warning("%s: removed %d training series that are also in the test part",
                        name, int(overlap.sum()))
            summary["test_overlap_removed"] = int(overlap.sum())
        keep &= ~overlap
    return frame[keep].reset_index(drop=True) if not keep.all() else frame


def pad_series(series: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """list of [T_i, C] -> (x [N, max T, C] zero-padded, lengths [N])."""
    lengths = np.array([len(s) for s in series], dtype=np.int64)
    x = np.zeros((len(series), int(lengths.max()), series[0].shape[1]), dtype=np.float32)
    for row, s in enumerate(series):
        x[row, : len(s)] = s
    return torch.from_numpy(x), torch.from_numpy(lengths)


# what reads the series beside or before the GRU: nothing, a strided convolutional stem
# (``model.StemModel``) or a parallel FCN branch (``model.FCNModel``)
STEMS = ("none", "conv", "fcn")
STEM_KINDS = {"none": "sequence", "conv": "conv_stem", "fcn": "gru_fcn"}
# the default space searches these; "fcn" is there for a space file (``stem: fcn``) until
# it measures better across the built-ins and the archive problems (bench/RESULTS.md)
SEARCHED_STEMS = ("none", "conv")
STEM_FROM = 100  # median training length from which the first trial uses the stem
# median training length from which the first trial z-normalizes each series: a series of
# a few steps z-normalized keeps little but its shape (two steps: only which is larger),
# while its level and scale are most of what it says (scikit-learn's checks' 2-feature
# blobs, read as series of length 2: 0.64 training accuracy with it, seeds 1 and 2)
NORM_FROM = 8


def series_params(length: int = 0) -> list[Param]:
    """Architecture factors for a series classifier: small inputs, a normalization choice,
    and a convolutional stem that shortens long series 4x (issue 17: a plain GRU over
    hundreds of raw steps learns poorly from a few dozen series). The stem is the first
    trial's choice for series of a median ``length`` of ``STEM_FROM`` steps or more, and
    per-series z-normalization for series of ``NORM_FROM`` steps or more.

    >>> [p.default for p in series_params(24) if p.name in ("stem", "series_norm")]
    [True, 'none']
    >>> [p.default for p in series_params(427) if p.name == "stem"]
    ['conv']
    >>> [p.default for p in series_params(2) if p.name == "series_norm"]
    [False]
    """
    stem = "conv" if length >= STEM_FROM else "none"
    return [fixed_param("cell", "gru", allowed=CELLS),
            choice_param("series_norm", [True, False], length == 0 or length >= NORM_FROM,
                         allowed=(False, True)),
            choice_param("stem", list(SEARCHED_STEMS), stem, allowed=STEMS),
            *numeric_params()]


class SeriesClassification(ClassificationTask):
    """Labelled series -> labels."""

    name = "series"
    options = frozenset({"target_column", "id_column", "time_column"})
    default_max_epochs = 100  # tiny archives: an epoch is a handful of steps
    model_kinds = tuple(STEM_KINDS.values())

    @classmethod
    def check_state(cls, state: dict, config: ModelConfig, check: Checker) -> None:
        super().check_state(state, config, check)
        channels = state.get("channels")
        check.require(is_int(channels) and channels == config.input_dim
                      and config.vocab_size == 0, "state.channels",
                      f"the model's input channels ({config.input_dim})", channels)
        for key in ("channel_mean", "channel_std"):
            check.require(is_number_list(state.get(key), channels), f"state.{key}",
                          f"{channels} finite numbers", state.get(key))
        check.require(all(v > 0 for v in state["channel_std"]), "state.channel_std",
                      "positive", state["channel_std"])
        steps = state.get("step_columns")  # absent in bundles made before it, or from .ts
        check.require(steps is None or (isinstance(steps, list) and len(steps) > 0 and all(
            isinstance(c, str) for c in steps)), "state.step_columns",
            "a list of column names", steps)

    def describe_inputs(self, summary: dict) -> tuple[str, list[str]]:
        low, high = summary.get("min_length"), summary.get("max_length")
        lengths = f"length {low}" if low == high else f"lengths {low}-{high}"
        notes = ([f"{summary['interpolated']} missing values interpolated"]
                 if summary.get("interpolated") else [])
        return f"{summary.get('channels')} channel(s), {lengths}", notes

    def default_space(self, context: dict) -> Space:
        """Archives of 40-300 training series: small batches, patient early stopping.

        >>> SeriesClassification().default_space({})["batch_size"].choices
        (8, 16, 32)
        """
        common = with_params(
            training_params(),
            batch_size=choice_param("batch_size", [8, 16, 32], 16, bounds=(1, math.inf)),
            patience=int_param("patience", 5, 20, 15))
        return Space(series_params(context.get("length", 0)) + common)

    def space_context(self, cfg: DataConfig) -> dict:
        """The training series' median length (the stem's default depends on it)."""
        pool = self._load(cfg).pool
        return {"length": int(np.median([len(s) for s in pool["series"]]))}

    def _load(self, cfg: DataConfig) -> _Source:
        if cfg.path is None:
            ds = get_dataset(cfg.dataset)
            if ds.task != self.name:
                raise DataError(f"--dataset {ds.name}: a {ds.task} dataset, not {self.name}")
            pool, test = ds.loader()
            return _Source(pool, test, ds.name, ds.target_column)
        target = cfg.target_column or "label"
        pool = read_series(cfg.path, cfg, target)
        test = read_series(cfg.test_path, cfg, target) if cfg.test_path else None
        return _Source(pool, test, cfg.path, target, typed=typed_format(cfg.path),
                       steps=pool.attrs.get("steps"))

    def prepare(self, cfg: DataConfig, saved_split: dict | None = None,
                space: Space | None = None) -> Prepared:
        src = self._load(cfg)
        summary: dict = {"source": src.name}
        pool = _clean(src.pool, src.name, src.target, summary)
        test = (_clean(src.test, cfg.test_path or f"{src.name} (test)", src.target, summary)
                if src.test is not None else None)
        if test is not None and pool["series"].iloc[0].shape[1] != test["series"].iloc[0].shape[1]:
            raise DataError(f"{cfg.test_path or src.name}: test series have "
                            f"{test['series'].iloc[0].shape[1]} channels; training series "
                            f"have {pool['series'].iloc[0].shape[1]}")
        if test is not None:
            test = drop_repeats(test, cfg.test_path or f"{src.name} (test)", summary)
        pool = drop_repeats(pool, src.name, summary, seen=test)
        if len(pool) < MIN_SERIES:
            raise DataError(f"{src.name}: {len(pool)} series; need at least {MIN_SERIES}")
        if saved_split is not None:
            parts = _assign(pool, test, saved_split, src.name)
        else:
            if cfg.sample is not None:  # a quick look: the test part in its share
                share = len(pool) / (len(pool) + (len(test) if test is not None else 0))
                pool = stratified_sample(pool, max(MIN_SERIES, round(cfg.sample * share)),
                                         cfg.seed, src.name)
                if test is not None:
                    test = stratified_sample(test, max(MIN_SERIES, cfg.sample - len(pool)),
                                             cfg.seed, cfg.test_path or f"{src.name} (test)")
            check_classes(pool["label"], src.name, src.target, minimum=2 if test is not None
                          else 3)
            pos = stratified_split(pool["label"].to_numpy(), cfg, test is not None, src.name)
            parts = {k: pool.iloc[v].reset_index(drop=True) for k, v in pos.items()}
            if test is not None:
                parts["test"] = test
        return self._tensorize(parts, src, summary)

    def _tensorize(self, parts: dict[str, pd.DataFrame], src: _Source,
                   summary: dict) -> Prepared:
        every = pd.concat(list(parts.values()))
        labels_state = label_state(every["label"].tolist(), every["label_value"].tolist(),
                                   src.typed)
        labels = labels_state["labels"]
        unseen = set(parts["test"]["label"]) - set(parts["train"]["label"])
        if unseen:
            raise DataError(f"{src.name}: test labels {sorted(unseen)} never occur in the "
                            f"training part of column {src.target!r}")
        # float64 statistics: float32 sums of values near float32's limit would overflow
        train_steps = np.concatenate(list(parts["train"]["series"])).astype(np.float64)
        mean = train_steps.mean(0)
        std = np.maximum(train_steps.std(0), 1e-6)
        state = {"task": self.name, "target_column": src.target, **labels_state,
                 "channels": int(train_steps.shape[1]),
                 "channel_mean": mean.tolist(), "channel_std": std.tolist()}
        if src.steps:  # a wide table: predict reads the same columns as steps
            state["step_columns"] = src.steps
        label_id = {n: i for i, n in enumerate(labels)}
        data = {}
        for k, p in parts.items():
            x, lengths = pad_series([scale(s, state) for s in p["series"]])
            y = torch.tensor([label_id[v] for v in p["label"]], dtype=torch.long)
            data[k] = SequenceData(x, lengths, y)
        all_lengths = [len(s) for p in parts.values() for s in p["series"]]
        summary.update({
            "rows": {k: len(p) for k, p in parts.items()},
            "class_counts": {k: p["label"].value_counts().sort_index().to_dict()
                             for k, p in parts.items()},
            "channels": state["channels"], "min_length": min(all_lengths),
            "max_length": max(all_lengths),
        })
        split = {k: p["id"].tolist() for k, p in parts.items()}
        test_frame = pd.DataFrame({"id": parts["test"]["id"],
                                   "length": [len(s) for s in parts["test"]["series"]],
                                   src.target: restore_label_type(
                                       parts["test"]["label"].tolist(), state)})
        return Prepared(data["train"], data["val"], data["test"], state, split, summary,
                        test_frame)

    def baseline(self, prepared: Prepared, seed: int, refit: bool = False) -> Baseline | None:
        """1-nearest-neighbour, Euclidean or DTW as validation chooses
        (``baselines.dtw_neighbour``)."""
        parts = {k: getattr(prepared, k) for k in ("train", "val", "test")}
        return dtw_neighbour(parts, len(prepared.state["labels"]),
                                 self.scoring(prepared.state), refit)

    def model_config(self, params: dict, state: dict) -> ModelConfig:
        return ModelConfig(
            num_outputs=len(state["labels"]), vocab_size=0, input_dim=state["channels"],
            embed_dim=params["embed_dim"], cell=params["cell"],
            hidden_size=params["hidden_size"], num_layers=params["num_layers"],
            bidirectional=params["bidirectional"],
            layer_dropout=params.get("layer_dropout", 0.0), pooling=params["pooling"],
            dropout=params["dropout"], init=params["init"],
            series_norm=params["series_norm"],
            kind=STEM_KINDS[params.get("stem", "none")])

    def read_rows(self, path: str, state: dict) -> pd.DataFrame:
        """A file to predict: .ts, or a wide table (labels, if present, are ignored)."""
        if Path(path).suffix.lower() == ".ts":
            series, _ = read_ts(path)
            return pd.DataFrame({"series": series})
        frame = read_series_table(path)
        target = state["target_column"]
        frame = frame.drop(columns=[target]) if target in frame.columns else frame
        frame = _step_columns(frame, state.get("step_columns"), path)
        frame = frame.assign(**{target: ""})
        return wide_to_series(frame, target, path)[["series"]]

    def encode(self, frame: pd.DataFrame, state: dict, source: str) -> SequenceData:
        series = []
        for row, s in enumerate(frame["series"]):
            s = np.asarray(s, dtype=np.float32)
            check_channels(s, source, row)
            s, _ = interpolate(s)
            if s.shape[1] != state["channels"]:
                raise DataError(f"{source}: series {row + 1} has {s.shape[1]} channels; the "
                                f"model was trained on {state['channels']}")
            series.append(scale(s, state))
        x, lengths = pad_series(series)
        return SequenceData(x, lengths, torch.zeros(len(series), dtype=torch.long))


def _step_columns(frame: pd.DataFrame, steps: list[str] | None, source: str) -> pd.DataFrame:
    """The columns of a wide file to predict that are the training file's steps: another
    column (an id kept with --keep, a date) is not read as a step. A file that names none
    of them (or a model that kept no names) is read as before: every column a step."""
    if not steps:
        return frame
    known = set(steps)
    extra = [c for c in frame.columns if str(c) not in known]
    if not extra or len(extra) == len(frame.columns):
        if extra:
            log.warning("%s: no column is named as the training file's steps (%s, ...); "
                        "every column but the label is read as a time step, in order",
                        source, ", ".join(steps[:3]))
        return frame
    log.warning("%s: %s not %s of the training file's time steps: not read", source,
                ", ".join(map(repr, extra[:5])) + (" ..." if len(extra) > 5 else ""),
                "one" if len(extra) == 1 else "among")
    return frame[[c for c in frame.columns if str(c) in known]]


def scale(series: np.ndarray, state: dict) -> np.ndarray:
    """Standardize each channel with the training part's statistics."""
    mean = np.asarray(state["channel_mean"], dtype=np.float32)
    std = np.asarray(state["channel_std"], dtype=np.float32)
    return (series - mean) / std


def _assign(pool: pd.DataFrame, test: pd.DataFrame | None, saved: dict,
            name: str) -> dict[str, pd.DataFrame]:
    """The saved split's series, looked up by id; fail if the data no longer holds them."""
    frames = [pool] + ([test] if test is not None else [])
    everything = pd.concat(frames).drop_duplicates("id").set_index("id")
    parts = {}
    for split in ("train", "val", "test"):
        ids = saved[split]
        missing = [i for i in ids if i not in everything.index]
        if missing:
            raise DataError(f"{name}: the data no longer matches the study's split.json "
                            f"({len(missing)} saved {split} series are gone); use a new "
                            "--study or --run-dir")
        parts[split] = everything.loc[ids].reset_index()
    return parts
