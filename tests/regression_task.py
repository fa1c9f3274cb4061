"""A test-only task: sequence regression (a series in, one number out).

It lives in ``tests/`` and plugs into grutune by registering itself: ``tune``, ``predict``,
``report`` and ``compare`` reach it through the task registry, with no change to any
module of ``grutune/``. Importing this module registers it as ``regression``.

Data: a wide table (CSV, Parquet, JSON Lines), one row per series: the numeric target
column (``--target``, default ``target``) and the value columns in time order (trailing
blanks end a shorter series), read by the series task's readers, so values are checked
the same way. A series that repeats an earlier one's values is dropped (it would land in
two parts). Split: seeded 70/15/15 at random; the channels and the target are
standardized with the training part's statistics; MSE loss; validation RMSE in training
standard deviations (minimized). Test metrics are in the target's units, beside the
training mean's (the chance a model must beat). Predictions: one ``prediction`` per row.

>>> SequenceRegression().default_space({})["series_norm"].choices
(True, False)
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pandas as pd
import torch
from sklearn.model_selection import train_test_split
from torch import Tensor

from grutune.config import DataConfig, ModelConfig
from grutune.data.cache import SequenceData
from grutune.data.readers import require_columns
from grutune.exceptions import ConfigError, DataError
from grutune.manifest_checks import Checker, is_int, is_number, is_number_list
from grutune.search_space import Space, choice_param, int_param, training_params, with_params
from grutune.tasks import Prepared, Task, register_task
from grutune.tasks.series_classification import (
    check_channels,
    interpolate,
    numbers,
    pad_series,
    read_series_table,
    scale,
    series_params,
    wide_to_series,
)

MIN_ROWS = 20


def _rmse(pred: np.ndarray, y: np.ndarray) -> float:
    return float(np.sqrt(np.mean((pred - y) ** 2)))


def _mae(pred: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.abs(pred - y)))


SCORES = {"rmse": _rmse, "mae": _mae}  # validation metrics, both minimized


def _content(series: np.ndarray) -> str:
    """A key of a series' values (shape included)."""
    digest = hashlib.sha1(str(series.shape).encode())
    digest.update(np.ascontiguousarray(series, dtype=np.float32).tobytes())
    return digest.hexdigest()[:16]


def read_rows_with_targets(path: str, target: str) -> pd.DataFrame:
    """[row, id, series, target]: every data row (1-based ``row``), its series (missing
    values interpolated) and its target; DataError on a bad value or a missing target."""
    frame = read_series_table(path)
    require_columns(frame, [target], path)
    targets = numbers(frame[target], target, path)
    missing = np.isnan(targets)
    if missing.any():
        raise DataError(f"{path}: target column {target!r} is empty in data row "
                        f"{int(np.flatnonzero(missing)[0]) + 1}; every series needs a target")
    series = []
    for row, s in enumerate(wide_to_series(frame, target, path)["series"]):
        check_channels(s, path, row)
        series.append(interpolate(s)[0])
    return pd.DataFrame({"row": np.arange(1, len(frame) + 1), "id": [_content(s) for s in series],
                         "series": series, "target": targets})


def _split(rows: pd.DataFrame, cfg: DataConfig) -> dict[str, pd.DataFrame]:
    """Seeded 70/15/15 at random (test first, then validation from the rest)."""
    positions = np.arange(len(rows))
    rest, test = train_test_split(positions, test_size=cfg.test_fraction,
                                  random_state=cfg.seed)
    train, val = train_test_split(rest, test_size=cfg.val_fraction / (1 - cfg.test_fraction),
                                  random_state=cfg.seed)
    return {k: rows.iloc[np.sort(v)].reset_index(drop=True)
            for k, v in (("train", train), ("val", val), ("test", test))}


def _assign(rows: pd.DataFrame, saved: dict, name: str) -> dict[str, pd.DataFrame]:
    """The saved split's rows, by id; DataError when the data no longer holds them."""
    indexed = rows.set_index("id")
    parts = {}
    for part in ("train", "val", "test"):
        missing = [i for i in saved[part] if i not in indexed.index]
        if missing:
            raise DataError(f"{name}: the data no longer matches the study's split.json "
                            f"({len(missing)} saved {part} series are gone)")
        parts[part] = indexed.loc[saved[part]].reset_index()
    return parts


@register_task
class SequenceRegression(Task):
    """Series -> one number."""

    name = "regression"
    options = frozenset({"target_column"})  # the data options it reads (besides the common)
    direction = "minimize"
    combine = "mean"
    default_max_epochs = 40
    verdict_metrics = {"rmse": "minimize", "mae": "minimize"}

    def __init__(self, metric: str = "rmse"):
        if metric not in SCORES:
            raise ConfigError(f"--metric: a regression is scored by one of "
                              f"{', '.join(SCORES)}; got {metric!r}")
        self.metric = metric

    @classmethod
    def check_state(cls, state: dict, config: ModelConfig, check: Checker) -> None:
        channels = state.get("channels")
        check.require(is_int(channels) and channels == config.input_dim
                      and config.vocab_size == 0 and config.num_outputs == 1
                      and config.kind == "sequence", "state.channels",
                      f"the model's input channels ({config.input_dim}), one output", channels)
        for key in ("channel_mean", "channel_std"):
            check.require(is_number_list(state.get(key), channels), f"state.{key}",
                          f"{channels} finite numbers", state.get(key))
        for key in ("target_mean", "target_std"):
            check.require(is_number(state.get(key)), f"state.{key}", "a finite number",
                          state.get(key))
        check.require(isinstance(state.get("target_column"), str), "state.target_column",
                      "a string", state.get("target_column"))

    def describe_data(self, summary: dict) -> str:
        rows = " / ".join(str(v) for v in summary["rows"].values())
        return (f"Tuning a GRU regressor on {summary['source']}: {rows} series of "
                f"{summary['channels']} channel(s), lengths {summary['min_length']}-"
                f"{summary['max_length']}, predicting {summary['target']!r}.")

    def default_space(self, context: dict) -> Space:
        common = with_params(
            training_params(),
            batch_size=choice_param("batch_size", [8, 16, 32], 16, bounds=(1, math.inf)),
            patience=int_param("patience", 5, 20, 10))
        return Space(series_params() + common)

    def prepare(self, cfg: DataConfig, saved_split: dict | None = None,
                space: Space | None = None) -> Prepared:
        if cfg.path is None:
            raise ConfigError("--task regression: give a FILE (no built-in data)")
        if cfg.test_path is not None:
            raise ConfigError("--test: a regression study splits its FILE itself")
        target = cfg.target_column or "target"
        rows = read_rows_with_targets(cfg.path, target)
        rows = rows[~rows["id"].duplicated()].reset_index(drop=True)
        if cfg.sample is not None and cfg.sample < len(rows):
            keep = np.sort(np.random.default_rng(cfg.seed).choice(len(rows), cfg.sample,
                                                                  replace=False))
            rows = rows.iloc[keep].reset_index(drop=True)
        if len(rows) < MIN_ROWS:
            raise DataError(f"{cfg.path}: {len(rows)} distinct series; need at least {MIN_ROWS}")
        parts = _assign(rows, saved_split, cfg.path) if saved_split else _split(rows, cfg)
        return self._tensorize(parts, cfg.path, target)

    def _tensorize(self, parts: dict[str, pd.DataFrame], source: str, target: str) -> Prepared:
        steps = np.concatenate(list(parts["train"]["series"])).astype(np.float64)
        targets = parts["train"]["target"].to_numpy(np.float64)
        state = {"task": self.name, "target_column": target, "channels": int(steps.shape[1]),
                 "channel_mean": steps.mean(0).tolist(),
                 "channel_std": np.maximum(steps.std(0), 1e-6).tolist(),
                 "target_mean": float(targets.mean()),
                 "target_std": float(max(targets.std(), 1e-6))}
        data = {}
        for k, p in parts.items():
            x, lengths = pad_series([scale(s, state) for s in p["series"]])
            y = (p["target"].to_numpy(np.float64) - state["target_mean"]) / state["target_std"]
            data[k] = SequenceData(x, lengths, torch.tensor(y, dtype=torch.float32))
        lengths = [len(s) for p in parts.values() for s in p["series"]]
        summary = {"source": source, "target": target,
                   "rows": {k: len(p) for k, p in parts.items()},
                   "channels": state["channels"], "min_length": min(lengths),
                   "max_length": max(lengths)}
        test_frame = parts["test"][["row", "id", "target"]].rename(columns={"target": target})
        return Prepared(data["train"], data["val"], data["test"], state,
                        {k: p["id"].tolist() for k, p in parts.items()}, summary, test_frame)

    def model_config(self, params: dict, state: dict) -> ModelConfig:
        return ModelConfig(
            num_outputs=1, vocab_size=0, input_dim=state["channels"],
            embed_dim=params["embed_dim"], cell=params["cell"],
            hidden_size=params["hidden_size"], num_layers=params["num_layers"],
            bidirectional=params["bidirectional"],
            layer_dropout=params.get("layer_dropout", 0.0), pooling=params["pooling"],
            dropout=params["dropout"], init=params["init"], series_norm=params["series_norm"])

    def loss(self, outputs: Tensor, y: Tensor) -> Tensor:
        return torch.nn.functional.mse_loss(outputs.squeeze(-1), y)

    def val_metric(self, outputs: Tensor, y: Tensor, state: dict | None = None) -> float:
        return SCORES[self.metric](outputs.detach().squeeze(-1).double().cpu().numpy(),
                                   y.double().cpu().numpy())

    def evaluate(self, outputs: Tensor, data: SequenceData, state: dict) -> dict:
        pred = self._unscale(outputs, state)
        truth = self._unscale(data.y, state)
        mean = np.full_like(truth, state["target_mean"])
        return {"n": len(truth), "rmse": _rmse(pred, truth), "mae": _mae(pred, truth),
                "baselines": {"train_mean": {"rmse": _rmse(mean, truth),
                                             "mae": _mae(mean, truth)}}}

    def decode(self, outputs: Tensor, state: dict) -> pd.DataFrame:
        return pd.DataFrame({"prediction": self._unscale(outputs, state)})

    def read_rows(self, path: str, state: dict) -> pd.DataFrame:
        """A wide table to predict (a target column, if present, is ignored)."""
        frame = read_series_table(path)
        target = state["target_column"]
        frame = frame.drop(columns=[target]) if target in frame.columns else frame
        return wide_to_series(frame.assign(**{target: ""}), target, path)[["series"]]

    def encode(self, frame: pd.DataFrame, state: dict, source: str) -> SequenceData:
        series = []
        for row, s in enumerate(frame["series"]):
            check_channels(s, source, row)
            s = interpolate(np.asarray(s, dtype=np.float32))[0]
            if s.shape[1] != state["channels"]:
                raise DataError(f"{source}: series {row + 1} has {s.shape[1]} channels; the "
                                f"model was trained on {state['channels']}")
            series.append(scale(s, state))
        x, lengths = pad_series(series)
        return SequenceData(x, lengths, torch.zeros(len(series)))

    @staticmethod
    def _unscale(values: Tensor, state: dict) -> np.ndarray:
        flat = values.detach().double().cpu().numpy().reshape(len(values))
        return flat * state["target_std"] + state["target_mean"]
