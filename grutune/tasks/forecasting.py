"""Forecasting: the next ``horizon`` values of one or more series, from a window of the past.

Data flow (``prepare``):

1. read the table (or a built-in series), clean it on a regular time grid
   (``series_frame.clean_series``: sorted, unique times, gaps filled, values interpolated
   and reported as a warning and in the summary's ``repairs``; values finite and within
   float32; times with UTC offsets by its time-zone rule, recorded as ``time_basis``);
2. split the time steps chronologically, 70/15/15: train, then validation, then test;
3. fit the scaling (standard, min-max or robust, per column) on the training steps only;
4. cut windows: ``window`` past steps as input (targets first, then covariates) and the
   next ``horizon`` target values as output. A window's targets lie entirely in one part,
   so no window straddles training and evaluation targets; validation and test inputs
   reach back into earlier parts, which is the past, never the future. Validation
   windows start at every step; test windows roll forward by ``horizon`` steps (rolling
   origin) and end with the last observation.

The window is as long as the longest ``lookback`` in the search space (and at least a
season, so the seasonal-naive baseline is defined); each trial's GRU reads the last
``lookback`` steps of it. Trials are scored by validation MASE (scaled units; the same
ratio as in original units), with early stopping and pruning per epoch, never by
shuffled folds. Test metrics are in original units, beside the naive and seasonal-naive
forecasts of exactly the same windows.

>>> windows(np.arange(10.0)[:, None], origins=np.array([4, 8]), window=3, horizon=2)[1][:, :, 0]
array([[4., 5.],
       [8., 9.]])
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from grutune.config import BASELINES, CELLS, POOLINGS, DataConfig, ModelConfig
from grutune.data.cache import SequenceData
from grutune.data.datasets import get_dataset
from grutune.data.readers import read_table
from grutune.exceptions import ConfigError, DataError
from grutune.manifest_checks import Checker, is_int, is_number, is_number_list, is_str_list
from grutune.metrics.scores import forecast_metrics, mase_scale
from grutune.nn.model import baseline_forecast
from grutune.nn.trainer import predict
from grutune.search_space import (
    POSITIVE,
    UNIT,
    Param,
    Space,
    choice_param,
    fixed_param,
    float_param,
    int_param,
    numeric_params,
    training_params,
    with_params,
)
from grutune.tasks.base import Prepared, Task
from grutune.tasks.baselines import Baseline, theta
from grutune.tasks.series_frame import CleanSeries, clean_series, future_times, show
from grutune.tasks.views import forecast_metrics_html, forecast_sections, forecast_table

log = logging.getLogger("grutune")

MIN_TRAIN_WINDOWS = 20
DEFAULT_HORIZON = 10  # without a season to go by
LOOKBACK_FACTORS = (1, 2, 4, 8)  # default lookbacks: multiples of max(horizon, season)
MAX_DEFAULT_LOOKBACK = 256


@dataclass
class _Spec:
    """What the user asked for, resolved against the data."""

    name: str  # file or dataset name, for messages
    targets: list[str]
    covariates: list[str]
    time_column: str | None
    series: CleanSeries
    horizon: int
    season: int


def windows(values: np.ndarray, origins: np.ndarray, window: int,
            horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs [W, window, F] = values[o - window: o] and outputs [W, horizon, F] from o."""
    x = np.stack([values[o - window:o] for o in origins])
    y = np.stack([values[o:o + horizon] for o in origins])
    return x, y


def split_bounds(n: int, cfg: DataConfig, horizon: int = 1) -> tuple[int, int]:
    """(end of train, end of validation) as step counts: 70/15/15 by default.

    The test part is a whole number of horizons (rolling origin, stride ``horizon``).

    >>> split_bounds(476, DataConfig(dataset="gas"), horizon=12)
    (333, 404)
    """
    n_test = horizon * max(1, int(round(n * cfg.test_fraction / horizon)))
    n_val = int(round(n * cfg.val_fraction))
    return n - n_val - n_test, n - n_test


def default_lookbacks(horizon: int, season: int, train_steps: int | None = None) -> list[int]:
    """Lookback choices: 1, 2, 4, 8 x max(horizon, season), up to 256 steps and the data.

    >>> default_lookbacks(12, 12), default_lookbacks(48, 48)
    ([12, 24, 48, 96], [48, 96, 192])
    """
    base = max(horizon, season)
    limit = max(MAX_DEFAULT_LOOKBACK, base)
    if train_steps is not None:  # leave room for MIN_TRAIN_WINDOWS training windows
        limit = min(limit, max(train_steps - horizon - MIN_TRAIN_WINDOWS + 1, base))
    return [base * k for k in LOOKBACK_FACTORS if base * k <= limit] or [base]


def forecast_params(lookbacks: list[int]) -> list[Param]:
    """Architecture factors for a forecaster: how far back to look, what to predict over."""
    numeric = with_params(
        numeric_params(),
        bidirectional=choice_param("bidirectional", [False, True], False,
                                   allowed=(False, True)),
        layer_dropout=float_param("layer_dropout", 0.0, 0.5, 0.1,
                                  when=(("num_layers", (2, 3, 4, 5, 6, 7, 8)),), bounds=UNIT),
        pooling=choice_param("pooling", list(POOLINGS), "last", allowed=POOLINGS),
        dropout=float_param("dropout", 0.0, 0.3, 0.0, bounds=UNIT))
    return [fixed_param("cell", "gru", allowed=CELLS),
            choice_param("lookback", lookbacks, lookbacks[min(2, len(lookbacks) - 1)],
                         bounds=(1, math.inf)),
            choice_param("baseline", list(BASELINES), "seasonal", allowed=BASELINES),
            choice_param("window_norm", [True, False], True, allowed=(False, True)),
            *numeric]


class Forecasting(Task):
    """A series -> its next ``horizon`` values (all at once: a direct multi-step head)."""

    name = "forecast"
    options = frozenset({"target_column", "time_column", "covariates", "horizon", "season",
                         "scaling"})
    verdict_metrics = {"mase": "minimize", "mae": "minimize", "rmse": "minimize",
                       "smape": "minimize"}

    @classmethod
    def check_state(cls, state: dict, config: ModelConfig, check: Checker) -> None:
        """Targets and covariates, horizon and window, scaling, time kind and frequency."""
        targets, covariates = state.get("targets"), state.get("covariates")
        check.require(is_str_list(targets) and len(targets) >= 1, "state.targets",
                      "a non-empty list of column names", targets)
        check.require(is_str_list(covariates), "state.covariates", "a list of column names",
                      covariates)
        columns = targets + covariates
        check.require(len(set(columns)) == len(columns), "state.targets and state.covariates",
                      "distinct columns", columns)
        check.require(len(targets) == config.targets and len(columns) == config.input_dim
                      and config.vocab_size == 0, "state.targets",
                      f"the model's {config.targets} targets of {config.input_dim} inputs",
                      targets)
        for key in ("horizon", "window", "season"):
            check.require(is_int(state.get(key)) and state[key] >= 1, f"state.{key}",
                          "a whole number >= 1", state.get(key))
        check.require(state["horizon"] == config.horizon, "state.horizon",
                      f"the model's horizon ({config.horizon})", state["horizon"])
        for key, n in (("center", len(columns)), ("scale", len(columns)),
                       ("mase_scale", len(targets))):
            if key in state or key != "mase_scale":
                check.require(is_number_list(state.get(key), n), f"state.{key}",
                              f"{n} finite numbers", state.get(key))
        check.require(all(v != 0 for v in state["scale"]), "state.scale", "non-zero",
                      state["scale"])
        kind, freq = state.get("time_kind"), state.get("freq")
        check.require(kind in ("datetime", "number", "row"), "state.time_kind",
                      "datetime, number or row", kind)
        time_column = state.get("time_column")
        check.require(time_column is None or isinstance(time_column, str), "state.time_column",
                      "a string or null", time_column)
        if kind == "datetime":
            check.require(isinstance(freq, str) and is_offset(freq), "state.freq",
                          "a pandas frequency", freq)
            check.require(time_column is not None, "state.time_column", "given with times")
        elif kind == "number":
            check.require(is_number(as_float(freq)) and as_float(freq) > 0, "state.freq",
                          "a positive step", freq)
        basis = state.get("time_basis")
        check.require(basis is None or isinstance(basis, str), "state.time_basis",
                      "a string or null", basis)

    def describe_data(self, summary: dict) -> str:
        return f"Tuning a GRU forecaster on {summary.get('source')}: {summary['description']}."

    def plan_phrases(self, summary: dict) -> tuple[str, str]:
        return (f", scored by validation {summary.get('metric', 'MASE')}",
                "evaluated on the untouched test windows beside the naive and seasonal-naive "
                "forecasts,")

    def metrics_table(self, metrics: dict) -> object:
        return forecast_table(metrics)

    def report_metrics(self, metrics: dict) -> str:
        return forecast_metrics_html(metrics)

    def report_summary_rows(self, summary: dict) -> list[tuple[str, object]]:
        return [("series", summary["description"])] if summary.get("description") else []

    def report_sections(self, run: object, figure: object) -> list[str]:
        return forecast_sections(run, figure) if run.predictions is not None else []

    def default_space(self, context: dict) -> Space:
        """Lookbacks from the data (``space_context``), a slower learning rate.

        >>> Forecasting().default_space({"lookback": [12, 24]})["lookback"].choices
        (12, 24)
        """
        common = with_params(
            training_params(),
            lr=float_param("lr", 1e-4, 1e-2, 2e-3, log=True, bounds=POSITIVE),
            batch_size=choice_param("batch_size", [16, 32, 64, 128], 32,
                                    bounds=(1, math.inf)),
            patience=int_param("patience", 4, 15, 8))
        return Space(forecast_params(context.get("lookback", [24, 48, 96])) + common)
    direction = "minimize"
    combine = "mean"
    test_unit = "windows"
    forecasts = True
    prediction_rows = "forecasts the steps after a history"
    uses_folds = False
    select_members = True
    # The final models are trained again on the training and validation windows (their
    # targets end where the test period starts), so they know the latest history.
    refits = True
    # Windows at every step overlap almost entirely; an epoch of 1,024 random windows
    # (a fresh draw each epoch) learns as much per step as all 2,500 of taylor's.
    epoch_rows = 1024
    default_max_epochs = 60

    def __init__(self, metric: str = "mase"):
        if metric not in FORECAST_SCORES:
            raise ConfigError(f"--metric: a forecast is scored by one of "
                              f"{', '.join(FORECAST_SCORES)}; got {metric!r}")
        self.metric = metric

    # --- reading ---------------------------------------------------------------------

    def _read(self, cfg: DataConfig) -> _Spec:
        """The series and its settings (read anew each call: a task keeps no state)."""
        if cfg.path is None:
            ds = get_dataset(cfg.dataset)
            if ds.task != self.name:
                raise DataError(f"--dataset {ds.name}: a {ds.task} dataset, not {self.name}")
            frame, _ = ds.loader()
            name, time_col, default_target = ds.name, ds.text_column, ds.target_column
            defaults = ds.defaults
        else:
            if cfg.test_path:
                raise ConfigError("--test: a forecast is tested on the last 15% of the series "
                                  "itself; put all history in one file")
            frame, name, defaults = read_table(cfg.path), cfg.path, {}
            time_col, default_target = cfg.time_column, None
        targets = _columns(cfg.target_column, "--target") or (
            [default_target] if default_target else _only_numeric(frame, time_col, name))
        covariates = [c for c in _columns(cfg.covariates, "--covariates") if c not in targets]
        if time_col is not None and time_col in covariates:
            raise ConfigError(f"--covariates: {time_col!r} is the time column (--time); "
                              "covariates are value columns")
        _check_output_names(targets, time_col, name)
        series = clean_series(frame, time_col, targets + covariates, name, len(targets))
        if cfg.sample:  # a quick look: the most recent steps
            series.values = series.values.iloc[-cfg.sample:]
        season = cfg.season or defaults.get("season") or series.season
        horizon = cfg.horizon or defaults.get("horizon") or (
            season if 2 <= season <= 96 else DEFAULT_HORIZON)
        return _Spec(name, targets, covariates, time_col, series, horizon, season)

    def space_context(self, cfg: DataConfig) -> dict:
        spec = self._read(cfg)
        train_end, _ = split_bounds(len(spec.series.values), cfg, spec.horizon)
        return {"lookback": default_lookbacks(spec.horizon, spec.season, train_end)}

    # --- preparing ---------------------------------------------------------------------

    def prepare(self, cfg: DataConfig, saved_split: dict | None = None,
                space: Space | None = None) -> Prepared:
        spec = self._read(cfg)
        values = spec.series.values
        n, horizon = len(values), spec.horizon
        lookbacks = _lookbacks(space) or default_lookbacks(horizon, spec.season)
        window = max(max(lookbacks), spec.season)
        train_end, val_end = split_bounds(n, cfg, horizon)
        if saved_split is not None:
            train_end, val_end = _saved_bounds(saved_split, values.index, spec.name)
        _check_length(n, train_end, val_end, window, horizon, spec, cfg)
        columns = spec.targets + spec.covariates
        raw = values[columns].to_numpy(np.float64)  # [N, F]
        center, scale = fit_scaling(raw[:train_end], cfg.scaling)
        scaled = _float32((raw - center) / scale, raw, columns, spec)
        targets = len(spec.targets)
        origins = {
            "train": np.arange(window, train_end - horizon + 1),
            "val": np.arange(max(train_end, window), val_end - horizon + 1),
            "test": np.arange(n - horizon * ((n - val_end) // horizon), n - horizon + 1,
                              horizon),
        }
        data = {}
        for part, o in origins.items():
            x, y = windows(scaled, o, window, horizon)
            data[part] = SequenceData(torch.from_numpy(x), torch.full((len(o),), window),
                                      torch.from_numpy(np.ascontiguousarray(y[..., :targets])))
        raw_scale = mase_scale(raw[:train_end, :targets], spec.season)
        state = {
            "task": self.name, "targets": spec.targets, "covariates": spec.covariates,
            "time_column": spec.time_column, "time_kind": spec.series.time_kind,
            "freq": spec.series.freq, "horizon": horizon, "season": spec.season,
            "window": window, "scaling": cfg.scaling, "center": center.tolist(),
            "scale": scale.tolist(), "mase_scale": raw_scale.tolist(),
        }
        if spec.series.basis:  # only for times with offsets: older states stay the same
            state["time_basis"] = spec.series.basis
        index = values.index
        split = {"steps": n, "first": str(index[0]), "last": str(index[-1]),
                 **{part: [str(index[a]), str(index[b - 1])] for part, (a, b) in
                    {"train": (0, train_end), "val": (train_end, val_end),
                     "test": (val_end, n)}.items()}}
        summary = self._summary(spec, window, lookbacks, origins, train_end, val_end)
        test_frame = pd.DataFrame({"window": range(len(origins["test"])),
                                   "times": [list(index[o:o + horizon])
                                             for o in origins["test"]]})
        return Prepared(data["train"], data["val"], data["test"], state, split, summary,
                        test_frame, raw={"series": raw, "origins": origins})

    def _summary(self, spec: _Spec, window: int, lookbacks: list[int], origins: dict,
                 train_end: int, val_end: int) -> dict:
        n = len(spec.series.values)
        freq = spec.series.freq or "row order"
        filled = spec.series.filled
        notes = [f"{spec.series.gaps} missing time steps inserted"] if spec.series.gaps else []
        repairs = spec.series.repairs()
        if spec.series.basis:
            notes.append(_BASIS_WORDS[spec.series.basis])
        if filled:
            notes.append(f"{filled} missing values interpolated")
            log.warning("%s: %s", spec.name, repairs)
        covariates = f" with covariates {', '.join(spec.covariates)}" if spec.covariates else ""
        return {
            "source": spec.name, "kind": "forecast", "metric": self.metric.upper(),
            "rows": {part: len(o) for part, o in origins.items()},
            "steps": {"train": train_end, "val": val_end - train_end, "test": n - val_end},
            "horizon": spec.horizon, "season": spec.season, "freq": spec.series.freq,
            "window": window, "lookbacks": lookbacks, "interpolated": filled,
            "gaps_filled": spec.series.gaps, "repairs": repairs,
            "time_basis": _BASIS_WORDS.get(spec.series.basis),
            "description": (
                f"{n:,} steps ({freq}) of {', '.join(spec.targets)}{covariates}"
                f"{' (' + ', '.join(notes) + ')' if notes else ''}; forecasting {spec.horizon} "
                f"steps at once, season {spec.season}, lookback {'/'.join(map(str, lookbacks))}"
                f". Chronological split: train {train_end:,} / validation "
                f"{val_end - train_end:,} / test {n - val_end:,} steps = "
                f"{len(origins['train']):,} / {len(origins['val']):,} / "
                f"{len(origins['test'])} windows (test: rolling origin, stride {spec.horizon})"),
        }

    def model_config(self, params: dict, state: dict) -> ModelConfig:
        targets = len(state["targets"])
        return ModelConfig(
            num_outputs=state["horizon"] * targets, kind="forecast", vocab_size=0,
            input_dim=targets + len(state["covariates"]), embed_dim=params["embed_dim"],
            cell=params["cell"], hidden_size=params["hidden_size"],
            num_layers=params["num_layers"], bidirectional=params["bidirectional"],
            layer_dropout=params.get("layer_dropout", 0.0), pooling=params["pooling"],
            dropout=params["dropout"], init=params["init"], horizon=state["horizon"],
            targets=targets, lookback=min(params["lookback"], state["window"]),
            season=state["season"], baseline=params["baseline"],
            window_norm=params["window_norm"])

    # --- scoring -----------------------------------------------------------------------

    def loss(self, outputs: Tensor, y: Tensor) -> Tensor:
        return torch.nn.functional.l1_loss(outputs, y)  # what MAE and MASE measure

    def val_metric(self, outputs: Tensor, y: Tensor, state: dict | None = None) -> float:
        if state is None:
            raise ValueError("a forecast's validation metric needs the prepared state "
                             "(its MASE scale): val_metric(outputs, y, state)")
        scale = validation_scale(state)
        return FORECAST_SCORES[self.metric](outputs.detach(), y, scale.to(y.device))

    def baseline(self, prepared: Prepared, seed: int, refit: bool = False) -> Baseline | None:
        """The Theta method at every test origin (``baselines.theta``); it reads each
        origin's whole history, so ``refit`` changes nothing (forecasts never refit)."""
        if prepared.raw is None:
            return None
        state = prepared.state
        t = len(state["targets"])
        center, scale = np.asarray(state["center"][:t]), np.asarray(state["scale"][:t])
        return theta(prepared.raw["series"][:, :t], center, scale, prepared.raw["origins"],
                     state["horizon"], state["season"], prepared.val.y, self.scoring(state))

    def evaluate(self, outputs: Tensor, data: SequenceData, state: dict) -> dict:
        out = forecast_metrics(unscale(data.y, state), unscale(outputs, state),
                               baselines(data, state), np.asarray(state["mase_scale"]),
                               state["targets"])
        out["season"] = state["season"]
        return out

    # --- predictions -------------------------------------------------------------------

    def decode(self, outputs: Tensor, state: dict) -> pd.DataFrame:
        """[W, H, T] -> one row per window and step: window, step, <target>..."""
        values = unscale(outputs, state)  # [W, H, T]
        w, h, _ = values.shape
        table = pd.DataFrame({"window": np.repeat(np.arange(w), h),
                              "step": np.tile(np.arange(1, h + 1), w)})
        for i, name in enumerate(state["targets"]):
            table[name] = values[..., i].reshape(-1)
        return table

    def prediction_table(self, outputs: Tensor, prepared: Prepared) -> pd.DataFrame:
        """Per test window and step: time, actual, forecast, naive, seasonal naive."""
        state, data = prepared.state, prepared.test
        columns = {"forecast": unscale(outputs, state), "actual": unscale(data.y, state),
                   **baselines(data, state)}
        times = [t for ts in prepared.test_frame["times"] for t in ts]
        index = self.decode(outputs, state)[["window", "step"]]
        rows = []
        for i, name in enumerate(state["targets"]):
            part = index.copy()
            part.insert(2, "time", times)
            part.insert(3, "target", name)
            for key, values in columns.items():
                part[key] = values[..., i].reshape(-1)
            rows.append(part)
        return pd.concat(rows, ignore_index=True)

    def read_rows(self, path: str, state: dict) -> pd.DataFrame:
        """The history to forecast from, cleaned like the training series."""
        columns = state["targets"] + state["covariates"]
        table = read_table(path)
        series = clean_series(table, state["time_column"], columns, path,
                              len(state["targets"]), training=False)
        _check_scaled(table, state, path)
        trained = state.get("time_basis")
        if series.basis != trained and state["time_kind"] == "datetime":
            raise DataError(f"{path}: the times {_BASIS_FILE[series.basis]}; the model was "
                            f"trained on times that {_BASIS_TRAINED[trained]}; give the "
                            "history times like the training data's")
        if series.freq != state["freq"] and state["time_kind"] != "row":
            raise DataError(f"{path}: the times have frequency {series.freq!r}; the model was "
                            f"trained on {state['freq']!r}")
        if series.filled:
            log.warning("%s: %s", path, series.repairs())
        return series.values

    def encode(self, frame: pd.DataFrame, state: dict, source: str) -> SequenceData:
        """The last ``window`` steps of the history -> one input window."""
        window = state["window"]
        if len(frame) < window:
            raise DataError(f"{source}: {len(frame)} time steps of history; the model reads "
                            f"the last {window}, so give at least that many")
        raw = frame[state["targets"] + state["covariates"]].to_numpy(np.float64)[-window:]
        x = (raw - np.asarray(state["center"])) / np.asarray(state["scale"])
        y = torch.zeros((1, state["horizon"], len(state["targets"])))
        return SequenceData(torch.tensor(x[None], dtype=torch.float32),
                            torch.tensor([window]), y)

    def predict_rows(self, model: torch.nn.Module, frame: pd.DataFrame, state: dict,
                     source: str) -> pd.DataFrame:
        """The next ``horizon`` steps after the history, with their times."""
        table = self.decode(predict(model, self.encode(frame, state, source)), state)
        table = table.drop(columns="window")
        last = frame.index[-1]
        if state["time_kind"] == "row":
            last = len(frame) - 1
        times = future_times(last, state["freq"], state["time_kind"], state["horizon"])
        table.insert(1, state["time_column"] or "row", times)
        return table


# --- helpers ---------------------------------------------------------------------------

OUTPUT_COLUMNS = ("window", "step")  # beside the targets and the time column in outputs


def _check_output_names(targets: list[str], time_col: str | None, source: str) -> None:
    """Output tables hold window, step, the time column and one column per target: a
    target or time column of the same name would overwrite another's values."""
    names = [*targets, time_col or "row"]
    for name in names:
        if name in OUTPUT_COLUMNS or names.count(name) > 1:
            raise DataError(f"{source}: column {name!r} cannot be a forecast target or the "
                            f"time column: the forecast table has columns "
                            f"{', '.join(OUTPUT_COLUMNS)}, the time column and one per "
                            "target; rename it")


_BASIS_WORDS = {"utc": "times with UTC offsets, converted to UTC",
                "local": "times with UTC offsets, as local wall-clock times (daily or coarser)"}
_BASIS_FILE = {None: "have no UTC offset", "utc": "have UTC offsets and are sub-daily "
               "(used in UTC)", "local": "have UTC offsets and are daily or coarser (used as "
               "local wall-clock times)"}
_BASIS_TRAINED = {None: "had no UTC offset", "utc": "had UTC offsets and were sub-daily",
                  "local": "had UTC offsets and were daily or coarser"}


def _check_scaled(table: pd.DataFrame, state: dict, source: str) -> None:
    """Refuse a history value that scaling like the training data takes beyond float32."""
    limit = np.finfo(np.float32).max
    for i, name in enumerate(state["targets"] + state["covariates"]):
        numbers = pd.to_numeric(table[name], errors="coerce").to_numpy(np.float64)
        scaled = (numbers - state["center"][i]) / state["scale"][i]
        bad = np.flatnonzero(np.abs(scaled) > limit)
        if len(bad):
            role = "target" if i < len(state["targets"]) else "covariate"
            row = int(bad[0])
            raise DataError(f"{source}: forecast {role} {name!r} has the value "
                            f"{show(table[name].iloc[row])} in data row {row + 1}, "
                            f"{scaled[row]:.4g} after scaling like the training data: beyond "
                            "float32's range (the models compute in float32); the value is "
                            "too far from the training data's")


def _float32(scaled: np.ndarray, raw: np.ndarray, columns: list[str],
             spec: _Spec) -> np.ndarray:
    """``scaled`` [N, F] as float32, or a DataError naming the first value out of range
    (read values are within float32; a tiny training scale can take them beyond it)."""
    bad = ~(np.abs(scaled) <= np.finfo(np.float32).max)
    if bad.any():
        step, col = (int(i) for i in np.argwhere(bad)[0])
        time = spec.series.values.index[step]
        rows = spec.series.rows
        row = int(rows.get(time, 0)) if rows is not None else 0
        where = (f"the inserted time {time}" if not row else f"data row {row}" +
                 (f" (time {time})" if spec.time_column else ""))
        raise DataError(f"{spec.name}: forecast column {columns[col]!r} has the value "
                        f"{show(raw[step, col])} in {where}, {scaled[step, col]:.4g} after "
                        "scaling by the training part: "
                        "beyond float32's range (the models compute in float32); the values "
                        "are too far apart")
    return scaled.astype(np.float32)


def _mase(outputs: Tensor, y: Tensor, scale: Tensor) -> float:
    return float(((outputs - y).abs().mean((0, 1)) / scale).mean())


def _mae(outputs: Tensor, y: Tensor, scale: Tensor) -> float:
    return float((outputs - y).abs().mean())


def _rmse(outputs: Tensor, y: Tensor, scale: Tensor) -> float:
    return float(((outputs - y) ** 2).mean((0, 1)).sqrt().mean())


# validation scores (scaled units; MASE is unit-free), all minimized
FORECAST_SCORES = {"mase": _mase, "mae": _mae, "rmse": _rmse}


def validation_scale(state: dict) -> Tensor:
    """Per target, the MASE denominator in scaled units (the training part's in-sample
    seasonal-naive error over the scaling): validation MASE in scaled units equals MASE
    in original units.

    >>> validation_scale({"targets": ["y"], "mase_scale": [3.0], "scale": [2.0, 5.0]})
    tensor([1.5000])
    """
    t = len(state["targets"])
    return torch.tensor(np.asarray(state["mase_scale"]) / np.asarray(state["scale"][:t]),
                        dtype=torch.float32)


def baselines(data: SequenceData, state: dict) -> dict[str, np.ndarray]:
    """The naive and seasonal-naive forecasts of ``data``'s windows, in original units."""
    past = data.x[..., : len(state["targets"])]  # [W, window, T] scaled
    horizon, season = state["horizon"], state["season"]
    return {"naive": unscale(baseline_forecast(past, "naive", horizon, 1), state),
            "seasonal_naive": unscale(baseline_forecast(past, "seasonal", horizon, season),
                                      state)}


def fit_scaling(train: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-column (center, scale) from the training steps: standard, minmax or robust.

    >>> fit_scaling(np.array([[0.0], [2.0], [4.0]]), "minmax")
    (array([0.]), array([4.]))
    """
    if kind == "standard":
        center, scale = train.mean(0), train.std(0)
    elif kind == "minmax":
        center, scale = train.min(0), train.max(0) - train.min(0)
    elif kind == "robust":
        q1, median, q3 = np.percentile(train, [25, 50, 75], axis=0)
        center, scale = median, q3 - q1
    else:
        raise ConfigError(f"--scaling: must be standard, minmax or robust; got {kind!r}")
    return center, np.where(scale > 1e-12, scale, 1.0)


def unscale(values: Tensor, state: dict) -> np.ndarray:
    """Scaled target values [..., T] -> original units (float64 NumPy)."""
    t = len(state["targets"])
    center = np.asarray(state["center"][:t])
    scale = np.asarray(state["scale"][:t])
    return values.detach().double().cpu().numpy() * scale + center


def _columns(text: str | None, option: str) -> list[str]:
    """The column names of a comma-separated option; a name given twice is refused (the
    table would get two columns of one name).

    >>> _columns("load, temp", "--target")
    ['load', 'temp']
    >>> _columns("temp,temp", "--covariates")
    Traceback (most recent call last):
    grutune.exceptions.ConfigError: --covariates: 'temp' is named twice; name each column once
    """
    names = [c.strip() for c in text.split(",") if c.strip()] if text else []
    twice = next((c for i, c in enumerate(names) if c in names[:i]), None)
    if twice is not None:
        raise ConfigError(f"{option}: {twice!r} is named twice; name each column once")
    return names


def _only_numeric(frame: pd.DataFrame, time_column: str | None, source: str) -> list[str]:
    """The target when none is named: the one numeric column besides the time."""
    numeric = [c for c in frame.columns if c != time_column
               and pd.api.types.is_numeric_dtype(frame[c])]
    if len(numeric) != 1:
        raise DataError(f"{source}: name the column(s) to forecast with --target COL[,COL]; "
                        f"the columns are: {', '.join(map(str, frame.columns))}")
    return numeric


def _lookbacks(space: Space | None) -> list[int]:
    """Every lookback the space can sample (the window must hold the longest)."""
    if space is None or "lookback" not in space.params:
        return []
    p = space["lookback"]
    if p.kind in ("int", "float"):
        return [int(p.low), int(p.high)]
    return [int(v) for v in p.choices]


def _check_length(n: int, train_end: int, val_end: int, window: int, horizon: int,
                  spec: _Spec, cfg: DataConfig) -> None:
    """Enough steps for training windows and for validation and test windows."""
    train_windows = train_end - window - horizon + 1
    if train_windows >= MIN_TRAIN_WINDOWS and val_end - train_end >= horizon and \
            n - val_end >= horizon:
        return
    train_share = 1 - cfg.val_fraction - cfg.test_fraction
    need = max(math.ceil((window + horizon + MIN_TRAIN_WINDOWS - 1) / train_share),
               math.ceil(horizon / min(cfg.val_fraction, cfg.test_fraction)))
    raise DataError(f"{spec.name}: the series has {n} time steps; lookback {window} + horizon "
                    f"{horizon} + validation and test windows need at least {need} (use a "
                    "shorter --horizon or smaller lookback choices in --space)")


def _saved_bounds(saved: dict, index: pd.Index, name: str) -> tuple[int, int]:
    """The study's split boundaries, checked against the data's time steps."""
    if saved.get("steps") != len(index) or saved.get("first") != str(index[0]) or \
            saved.get("last") != str(index[-1]):
        raise DataError(f"{name}: the data no longer matches the study's split.json "
                        f"({saved.get('steps')} steps from {saved.get('first')} to "
                        f"{saved.get('last')}); use a new --study or --run-dir")
    labels = [str(t) for t in index]
    return labels.index(saved["val"][0]), labels.index(saved["test"][0])


def as_float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        return None


def is_offset(freq: str) -> bool:
    from pandas.tseries.frequencies import to_offset

    try:
        to_offset(freq)
    except (ValueError, TypeError):
        return False
    return True
