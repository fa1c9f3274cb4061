"""Series classification: labelled (multivariate, variable-length) series -> a GRU classifier.

Input, as a frame of ``series`` (float arrays [T, C]) and ``label`` columns, from:

- a UCR/UEA ``.ts`` file (``--test`` for the archive's own test file);
- a CSV/Parquet/JSONL table in *wide* form: one row per series, the target column and the
  numeric value columns in time order (trailing blanks end a shorter series);
- a table in *long* form (``--id COL``): one row per time step, the series id, an optional
  time column (``--time COL``) to order the steps, the label, and the channel columns.

Preparation: missing values inside a series are linearly interpolated (and counted);
the split keeps a given test part and carves a stratified validation part from the
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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..cache import SequenceData
from ..config import DataConfig, ModelConfig
from ..datasets import get_dataset
from ..exceptions import DataError
from ..readers import non_numeric, read_table, require_columns
from ..search_space import Space
from ..ts_format import read_ts
from .base import ClassificationTask, Prepared, check_classes, class_names, stratified_split

log = logging.getLogger("grutune")

MIN_SERIES = 8


@dataclass
class _Source:
    pool: pd.DataFrame  # [series, label] rows to split
    test: pd.DataFrame | None  # a published or user-given test part
    name: str  # for messages: the file or dataset name
    target: str


def read_series(path: str, cfg: DataConfig, target: str) -> pd.DataFrame:
    """A .ts file or a wide/long table -> frame [series, label]."""
    if Path(path).suffix.lower() == ".ts":
        series, labels = read_ts(path)
        return pd.DataFrame({"series": series, "label": labels})
    frame = read_table(path)
    if cfg.id_column:
        return long_to_series(frame, target, cfg.id_column, cfg.time_column, path)
    return wide_to_series(frame, target, path)


def _numeric(frame: pd.DataFrame, columns: list[str], source: str) -> np.ndarray:
    """The columns as float32, or a DataError naming the first non-numeric value."""
    for column in columns:
        bad = non_numeric(frame[column])
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataError(f"{source}: column {column!r} has the non-numeric value "
                            f"{frame[column].iloc[row]!r} (data row {row + 1}); series values "
                            "must be numbers")
    return frame[columns].apply(pd.to_numeric, errors="coerce").to_numpy(np.float32)


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
    return pd.DataFrame({"series": series, "label": frame[target].to_numpy()})


def long_to_series(frame: pd.DataFrame, target: str, id_column: str, time_column: str | None,
                   source: str) -> pd.DataFrame:
    """One row per step: group by ``id_column``, order by ``time_column``, channels = the rest."""
    keys = [id_column, target] + ([time_column] if time_column else [])
    require_columns(frame, keys, source)
    channels = [c for c in frame.columns if c not in keys]
    if not channels:
        raise DataError(f"{source}: no channel columns besides {', '.join(keys)}")
    if time_column:
        times = frame[time_column]
        if times.duplicated().any() and frame[[id_column, time_column]].duplicated().any():
            dup = frame[[id_column, time_column]].duplicated()
            row = int(np.flatnonzero(dup.to_numpy())[0])
            raise DataError(f"{source}: series {frame[id_column].iloc[row]!r} has the time "
                            f"{times.iloc[row]!r} twice (data row {row + 1}); each step of a "
                            "series needs its own time")
        frame = frame.sort_values([id_column, time_column], kind="stable")
    values = _numeric(frame, channels, source)
    series, labels = [], []
    for key, index in frame.groupby(id_column, sort=False).indices.items():
        label_values = frame[target].iloc[index].unique()
        if len(label_values) != 1:
            raise DataError(f"{source}: series {key!r} has several labels in column "
                            f"{target!r} ({', '.join(map(str, label_values[:3]))}); a series "
                            "has one label")
        series.append(values[index])
        labels.append(label_values[0])
    return pd.DataFrame({"series": series, "label": labels})


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
    """[id, series, label]: labels checked, NaNs interpolated, channels consistent."""
    labels = frame["label"]
    missing = labels.isna() | (labels.astype(str).str.strip() == "")
    if missing.any():
        first = int(np.flatnonzero(missing.to_numpy())[0]) + 1
        raise DataError(f"{name}: target column {target!r} has {int(missing.sum())} missing "
                        f"values (first at series {first}); every series needs a label")
    channels = {s.shape[1] for s in frame["series"]}
    if len(channels) != 1:
        raise DataError(f"{name}: series have different numbers of channels "
                        f"{sorted(channels)}; each needs the same")
    filled, total = [], 0
    for s in frame["series"]:
        s, count = interpolate(np.asarray(s, dtype=np.float32))
        filled.append(s)
        total += count
    if total:
        log.warning("%s: interpolated %d missing values inside series", name, total)
    summary["interpolated"] = summary.get("interpolated", 0) + total
    out = pd.DataFrame({"series": filled, "label": labels.astype(str).str.strip().to_numpy()})
    ids = [series_id(s, label) for s, label in zip(out["series"], out["label"], strict=True)]
    out.insert(0, "id", _unique(ids))
    return out


def _unique(ids: list[str]) -> list[str]:
    """Repeated ids (identical series and label) get a -2, -3 ... suffix, in order."""
    seen: dict[str, int] = {}
    out = []
    for i in ids:
        seen[i] = seen.get(i, 0) + 1
        out.append(i if seen[i] == 1 else f"{i}-{seen[i]}")
    return out


def pad_series(series: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """list of [T_i, C] -> (x [N, max T, C] zero-padded, lengths [N])."""
    lengths = np.array([len(s) for s in series], dtype=np.int64)
    x = np.zeros((len(series), int(lengths.max()), series[0].shape[1]), dtype=np.float32)
    for row, s in enumerate(series):
        x[row, : len(s)] = s
    return torch.from_numpy(x), torch.from_numpy(lengths)


class SeriesClassification(ClassificationTask):
    """Labelled series -> labels."""

    name = "series"
    default_max_epochs = 100  # tiny archives: an epoch is a handful of steps

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
        return _Source(pool, test, cfg.path, target)

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
        if len(pool) < MIN_SERIES:
            raise DataError(f"{src.name}: {len(pool)} series; need at least {MIN_SERIES}")
        if saved_split is not None:
            parts = _assign(pool, test, saved_split, src.name)
        else:
            check_classes(pool["label"], src.name, src.target, minimum=2 if test is not None
                          else 3)
            pos = stratified_split(pool["label"].to_numpy(), cfg, test is not None, src.name)
            parts = {k: pool.iloc[v].reset_index(drop=True) for k, v in pos.items()}
            if test is not None:
                parts["test"] = test
        return self._tensorize(parts, src, summary)

    def _tensorize(self, parts: dict[str, pd.DataFrame], src: _Source,
                   summary: dict) -> Prepared:
        labels, kind = class_names(pd.concat([p["label"] for p in parts.values()]))
        unseen = set(parts["test"]["label"]) - set(parts["train"]["label"])
        if unseen:
            raise DataError(f"{src.name}: test labels {sorted(unseen)} never occur in the "
                            f"training part of column {src.target!r}")
        train_steps = np.concatenate(list(parts["train"]["series"]))  # [sum T, C]
        mean = train_steps.mean(0)
        std = np.maximum(train_steps.std(0), 1e-6)
        state = {"task": self.name, "target_column": src.target, "labels": labels,
                 "label_kind": kind, "channels": int(train_steps.shape[1]),
                 "channel_mean": mean.tolist(), "channel_std": std.tolist()}
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
                                   src.target: parts["test"]["label"]})
        return Prepared(data["train"], data["val"], data["test"], state, split, summary,
                        test_frame)

    def model_config(self, params: dict, state: dict) -> ModelConfig:
        return ModelConfig(
            num_outputs=len(state["labels"]), vocab_size=0, input_dim=state["channels"],
            embed_dim=params["embed_dim"], cell=params["cell"],
            hidden_size=params["hidden_size"], num_layers=params["num_layers"],
            bidirectional=params["bidirectional"],
            layer_dropout=params.get("layer_dropout", 0.0), pooling=params["pooling"],
            dropout=params["dropout"], init=params["init"],
            series_norm=params["series_norm"])

    def read_rows(self, path: str, state: dict) -> pd.DataFrame:
        """A file to predict: .ts, or a wide table (labels, if present, are ignored)."""
        if Path(path).suffix.lower() == ".ts":
            series, _ = read_ts(path)
            return pd.DataFrame({"series": series})
        frame = read_table(path)
        target = state["target_column"]
        frame = frame.drop(columns=[target]) if target in frame.columns else frame
        frame = frame.assign(**{target: ""})
        return wide_to_series(frame, target, path)[["series"]]

    def encode(self, frame: pd.DataFrame, state: dict, source: str) -> SequenceData:
        series = []
        for row, s in enumerate(frame["series"]):
            s, _ = interpolate(np.asarray(s, dtype=np.float32))
            if s.shape[1] != state["channels"]:
                raise DataError(f"{source}: series {row + 1} has {s.shape[1]} channels; the "
                                f"model was trained on {state['channels']}")
            series.append(scale(s, state))
        x, lengths = pad_series(series)
        return SequenceData(x, lengths, torch.zeros(len(series), dtype=torch.long))


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
