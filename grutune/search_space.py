"""The search space: a list of parameters, sampled from an Optuna trial.

The space lives outside the model (the model sees a ModelConfig, the trainer a
TrainConfig). Each parameter is a float or int range, a list of choices, or a fixed
value, and may apply only when another parameter has certain values (``when``): momentum
only for SGD/RMSprop, layer dropout only with two or more layers, and so on.

A YAML file overrides any parameter (``--space space.yaml``)::

    lr: {low: 1.0e-4, high: 1.0e-2, log: true}   # a range
    hidden_size: [64, 128]                        # choices
    cell: gru                                     # fixed

Each task assembles its default space (``Task.default_space``) from the shared lists
here (``training_params``, ``numeric_params``) and its own parameters.

>>> space = Space(numeric_params() + training_params())
>>> space["lr"].kind, space["lr"].log
('float', True)
>>> sorted(space.apply({"lr": {"low": 1e-3, "high": 1e-2}}).names)[:3]
['average', 'batch_size', 'bidirectional']
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from grutune.config import INITS, OPTIMIZERS, POOLINGS, SCHEDULES, TrainConfig
from grutune.exceptions import ConfigError, short

REGULARIZATIONS = ("weight_decay", "l2_penalty")
# A full grid over every factor has billions of points; the grid sampler searches these
# key factors plus any the space file names, and keeps the rest at their defaults.
GRID_FACTORS = ("lr", "hidden_size", "dropout", "batch_size")
MAX_GRID = 10_000


@dataclass(frozen=True)
class Param:
    """One hyperparameter: a float/int range, categorical choices, or a fixed value."""

    name: str
    kind: str  # "float" | "int" | "categorical" | "fixed"
    default: Any  # the value of the first (warm-start) trial, and when inactive
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple = ()
    when: tuple[tuple[str, tuple], ...] = ()  # ((other param, values it must take), ...)
    allowed: tuple = ()  # categorical values that make sense at all
    bounds: tuple[float, float] = (-math.inf, math.inf)  # limits of any range or value

    def active(self, values: dict) -> bool:
        return all(values.get(other) in options for other, options in self.when)


def float_param(name: str, low: float, high: float, default: float, log: bool = False,
                when: tuple = (), bounds: tuple = (-math.inf, math.inf)) -> Param:
    """A float range (a task's default space is built from these four helpers)."""
    return Param(name, "float", default, low, high, log, when=when, bounds=bounds)


def int_param(name: str, low: int, high: int, default: int, when: tuple = (),
              bounds: tuple = (1, math.inf)) -> Param:
    """An integer range."""
    return Param(name, "int", default, low, high, when=when, bounds=bounds)


def choice_param(name: str, choices: list, default: Any, allowed: tuple = (),
                 when: tuple = (), bounds: tuple = (-math.inf, math.inf)) -> Param:
    """A list of choices; ``allowed`` limits what a space file may choose."""
    return Param(name, "categorical", default, choices=tuple(choices), when=when,
                 allowed=tuple(allowed), bounds=bounds)


def fixed_param(name: str, value: Any, allowed: tuple = (),
                bounds: tuple = (-math.inf, math.inf)) -> Param:
    """A fixed value (a space file may still turn it into a range or choices)."""
    return Param(name, "fixed", value, choices=(value,), allowed=tuple(allowed), bounds=bounds)


SGD_LIKE = (("optimizer", ("sgd", "rmsprop")),)
UNIT = (0.0, 0.95)  # dropout probabilities
AVERAGES = (1, 10)  # epochs in a trailing weight average
POSITIVE = (1e-12, math.inf)


def training_params() -> list[Param]:
    """Training factors shared by every task, in sampling order."""
    return [
        # TrainConfig.average: each epoch's weights averaged with the N - 1 before; fixed
        # at 1 (off) unless a task's space (text) or a space file searches it
        fixed_param("average", 1, bounds=AVERAGES),
        choice_param("optimizer", ["adamw", "sgd", "rmsprop"], "adamw", allowed=OPTIMIZERS),
        float_param("lr", 1e-4, 3e-2, 2e-2, log=True, bounds=POSITIVE),
        float_param("momentum", 0.5, 0.99, 0.9, when=SGD_LIKE, bounds=(0.0, 0.999)),
        choice_param("nesterov", [False, True], True, when=(("optimizer", ("sgd",)),),
                     allowed=(False, True)),
        choice_param("regularization", list(REGULARIZATIONS), "l2_penalty",
                     allowed=REGULARIZATIONS),
        float_param("weight_decay", 1e-6, 1e-1, 1e-2, log=True,
                    when=(("regularization", ("weight_decay",)),), bounds=(0.0, 1.0)),
        float_param("l2_penalty", 1e-7, 1e-3, 2e-5, log=True,
                    when=(("regularization", ("l2_penalty",)),), bounds=(0.0, 1.0)),
        choice_param("schedule", list(SCHEDULES), "cosine", allowed=SCHEDULES),
        int_param("warmup_epochs", 0, 3, 2, bounds=(0, math.inf)),
        int_param("step_size", 2, 8, 4, when=(("schedule", ("step",)),)),
        float_param("step_gamma", 0.1, 0.9, 0.5, when=(("schedule", ("step",)),),
                    bounds=(1e-6, 1.0)),
        float_param("exp_gamma", 0.8, 0.99, 0.9, when=(("schedule", ("exponential",)),),
                    bounds=(1e-6, 1.0)),
        choice_param("batch_size", [16, 32, 64, 128], 64, bounds=(1, math.inf)),
        int_param("patience", 2, 6, 5),
        choice_param("grad_clip", [0.0, 0.5, 1.0, 5.0], 0.0, bounds=(0.0, math.inf)),
    ]


class Space:
    """An ordered set of Params; ``sample`` turns an Optuna trial into a full param dict."""

    def __init__(self, params: list[Param], named: frozenset[str] = frozenset()):
        self.params = {p.name: p for p in params}
        self.named = named  # parameters a space file set explicitly

    @property
    def names(self) -> list[str]:
        return list(self.params)

    def __getitem__(self, name: str) -> Param:
        return self.params[name]

    def sample(self, trial: Any) -> dict:
        """Every parameter's value: suggested when active and free, else its default."""
        values: dict = {}
        for p in self.params.values():
            if p.kind == "fixed" or not p.active(values):
                values[p.name] = p.default
            elif p.kind == "float":
                values[p.name] = trial.suggest_float(p.name, p.low, p.high, log=p.log)
            elif p.kind == "int":
                values[p.name] = trial.suggest_int(p.name, int(p.low), int(p.high))
            else:
                values[p.name] = trial.suggest_categorical(p.name, list(p.choices))
        return values

    def inactive(self, values: dict) -> list[str]:
        """Parameters that do not apply to ``values`` (e.g. momentum for AdamW)."""
        return [p.name for p in self.params.values() if not p.active(values)]

    def defaults(self) -> dict:
        """The warm-start trial's free parameters (active under the defaults)."""
        values: dict = {}
        free: dict = {}
        for p in self.params.values():
            values[p.name] = p.default
            if p.kind != "fixed" and p.active(values):
                free[p.name] = p.default
        return free

    def for_grid(self) -> Space:
        """The space the grid sampler walks: key factors and named ones free, others fixed.

        >>> sorted(Space(numeric_params() + training_params()).for_grid().grid())
        ['batch_size', 'dropout', 'hidden_size', 'lr']
        """
        keep = set(GRID_FACTORS) | set(self.named)
        params = [p if p.name in keep or p.kind == "fixed" else
                  replace(p, kind="fixed", choices=(p.default,), low=None, high=None)
                  for p in self.params.values()]
        space = Space(params, self.named)
        size = math.prod(len(v) for v in space.grid().values())
        if size > MAX_GRID:
            raise ConfigError(f"--sampler grid: the grid has {size:,} points (more than "
                              f"{MAX_GRID:,}); fix parameters or list fewer choices in --space")
        return space

    def grid(self) -> dict[str, list]:
        """A grid for GridSampler: choices, or low/middle/high of each range."""
        grid = {}
        for p in self.params.values():
            if p.kind == "categorical":
                grid[p.name] = list(p.choices)
            elif p.kind in ("float", "int"):
                mid = math.sqrt(p.low * p.high) if p.log else (p.low + p.high) / 2
                points = [p.low, mid, p.high]
                grid[p.name] = sorted({int(round(v)) for v in points} if p.kind == "int"
                                      else set(points))
        return grid

    def describe(self) -> dict:
        """JSON-able description (saved in the run directory)."""
        out = {}
        for p in self.params.values():
            if p.kind == "fixed":
                out[p.name] = p.default
            elif p.kind == "categorical":
                out[p.name] = list(p.choices)
            else:
                out[p.name] = {"low": p.low, "high": p.high, "log": p.log}
        return out

    def apply(self, overrides: dict, source: str = "space") -> Space:
        """A new space with ``overrides`` (the YAML mapping) validated and applied."""
        if not isinstance(overrides, dict):
            raise ConfigError(f"{source}: expected a mapping of parameter names to ranges, "
                              f"choices or values; got {type(overrides).__name__} "
                              f"{short(overrides)}")
        params = dict(self.params)
        for name, spec in overrides.items():
            if name not in params:
                raise ConfigError(f"{source}: unknown parameter {short(name)}; known parameters: "
                                  f"{', '.join(params)}")
            params[name] = _override(params[name], spec, source)
        return Space(list(params.values()), self.named | frozenset(overrides))


def _number(value: Any, where: str) -> float:
    """YAML reads 1e-4 (no dot) as a string: accept numeric strings too (finite ones)."""
    if isinstance(value, bool):
        raise ConfigError(f"{where}: expected a number; got {short(value)}")
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(f"{where}: expected a number; got {short(value)}") from None
    if not math.isfinite(number):
        raise ConfigError(f"{where}: expected a finite number; got {short(value)}")
    return number


def _check_value(p: Param, value: Any, where: str) -> Any:
    if p.allowed:
        if value not in p.allowed:
            raise ConfigError(f"{where}: must be one of {', '.join(map(str, p.allowed))}; "
                              f"got {short(value)}")
        return value
    number = _number(value, where)
    low, high = p.bounds
    if not low <= number <= high:
        raise ConfigError(f"{where}: must be between {low} and {high}; got {short(value)}")
    if p.kind == "int" or (isinstance(p.default, int) and not isinstance(p.default, bool)):
        if number != int(number):
            raise ConfigError(f"{where}: must be a whole number; got {short(value)}")
        return int(number)
    return number


def _override(p: Param, spec: Any, source: str) -> Param:
    where = f"{source}: {p.name}"
    if isinstance(spec, dict):
        unknown = set(spec) - {"low", "high", "log"}
        if unknown or not {"low", "high"} <= set(spec):
            raise ConfigError(f"{where}: a range needs exactly low, high and optional log; "
                              f"got keys {short(sorted(map(str, spec)))}")
        if p.allowed:
            raise ConfigError(f"{where}: takes choices ({', '.join(map(str, p.allowed))}), "
                              "not a range")
        low, high = _check_value(p, spec["low"], where), _check_value(p, spec["high"], where)
        if not low < high:
            raise ConfigError(f"{where}: low must be < high, got low={short(spec['low'])} "
                              f"high={short(spec['high'])}")
        log = spec.get("log", p.log)
        if not isinstance(log, bool):
            raise ConfigError(f"{where}: log must be true or false; got {short(log)}")
        if log and low <= 0:
            raise ConfigError(f"{where}: a log range needs low > 0, got "
                              f"low={short(spec['low'])}")
        is_int = isinstance(low, int) and isinstance(high, int) and p.kind != "float"
        default = min(max(p.default, low), high)
        return replace(p, kind="int" if is_int else "float", low=low, high=high, log=log,
                       choices=(), default=int(default) if is_int else float(default))
    if isinstance(spec, list):
        if not spec:
            raise ConfigError(f"{where}: an empty list of choices")
        choices = tuple(_check_value(p, v, where) for v in spec)
        default = p.default if p.default in choices else choices[0]
        return replace(p, kind="categorical", choices=choices, default=default,
                       low=None, high=None)
    value = _check_value(p, spec, where)
    return replace(p, kind="fixed", default=value, choices=(value,), low=None, high=None)


def numeric_params() -> list[Param]:
    """Recurrent factors for numeric inputs (series, forecasts): small input projections."""
    return [
        choice_param("embed_dim", [16, 32, 64], 32, bounds=(1, math.inf)),
        choice_param("hidden_size", [32, 64, 128], 64, bounds=(1, math.inf)),
        choice_param("num_layers", [1, 2], 1, bounds=(1, 8)),
        choice_param("bidirectional", [False, True], True, allowed=(False, True)),
        float_param("layer_dropout", 0.0, 0.5, 0.2, when=(("num_layers", (2, 3, 4, 5, 6, 7, 8)),),
                    bounds=UNIT),
        choice_param("pooling", list(POOLINGS), "mean", allowed=POOLINGS),
        float_param("dropout", 0.0, 0.5, 0.1, bounds=UNIT),
        choice_param("init", list(INITS), "xavier", allowed=INITS),
    ]


def with_params(params: list[Param], **changes: Param) -> list[Param]:
    """``params`` with some replaced by name."""
    return [changes.get(p.name, p) for p in params]


def load_space(default: Space, path: str | None) -> Space:
    """``default`` (a task's ``default_space``) with a YAML file's overrides applied
    (validated).

    The file must be a mapping of parameter names to ranges, choices or values. An empty
    file (or one holding only comments) means no overrides; any other document that is
    not a mapping (``0``, ``false``, ``""``, ``[]``, a bare string or number) is refused.
    What is parsed is bounded: at most MAX_SPACE_BYTES bytes, no YAML anchors or aliases
    (``&a`` / ``*a``: a few hundred bytes of nested aliases expand to gigabytes), nesting
    at most MAX_SPACE_DEPTH deep; errors quote at most SHORT characters of a value.
    """
    space = default
    if path is None:
        return space
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"{path}: no such space file")
    try:
        with open(file, "rb") as f:
            data = f.read(MAX_SPACE_BYTES + 1)
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the space file ({err.strerror})") from None
    if len(data) > MAX_SPACE_BYTES:
        raise ConfigError(f"{path}: a space file is at most {MAX_SPACE_BYTES // 1024} KB; "
                          "this one is larger")
    try:
        overrides = yaml.load(data.decode("utf-8"), Loader=_SpaceLoader)  # noqa: S506 - safe
    except _Refused as err:
        raise ConfigError(f"{path}: {err}") from None
    except (yaml.YAMLError, UnicodeDecodeError, ValueError, RecursionError) as err:
        # ValueError: e.g. an integer of more than 4,300 digits
        reason = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
        raise ConfigError(f"{path}: not valid YAML ({reason})") from None
    if overrides is None:  # empty, or only comments
        return space
    return space.apply(overrides, source=path)


MAX_SPACE_BYTES = 64 * 1024  # a full space file with comments is ~2 KB
MAX_SPACE_DEPTH = 8  # a space file nests 3 deep (mapping -> range -> value)


class _Refused(Exception):
    """A YAML construct a space file may not use."""


class _SpaceLoader(yaml.SafeLoader):
    """SafeLoader without anchors or aliases, and with a nesting limit."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            line = event.start_mark.line + 1 if event.start_mark else "?"
            raise _Refused(f"line {line}: YAML anchors and aliases (&name, *name) are not "
                           "allowed in a space file; write each value out")
        self._depth += 1
        try:
            if self._depth > MAX_SPACE_DEPTH:
                line = event.start_mark.line + 1 if event.start_mark else "?"
                raise _Refused(f"line {line}: nested more than {MAX_SPACE_DEPTH} deep; a "
                               "space file is a mapping of names to ranges, lists or values")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def train_config(params: dict, max_epochs: int, seed: int, epoch_rows: int = 0) -> TrainConfig:
    """The TrainConfig for a full param dict (as returned by ``Space.sample``)."""
    schedule = params["schedule"]
    gamma = {"step": params["step_gamma"], "exponential": params["exp_gamma"]}.get(schedule, 1.0)
    regularization = params["regularization"]
    return TrainConfig(
        optimizer=params["optimizer"], lr=params["lr"], momentum=params["momentum"],
        nesterov=params["nesterov"],
        weight_decay=params["weight_decay"] if regularization == "weight_decay" else 0.0,
        l2_penalty=params["l2_penalty"] if regularization == "l2_penalty" else 0.0,
        schedule=schedule, warmup_epochs=min(params["warmup_epochs"], max_epochs - 1),
        step_size=params["step_size"], gamma=gamma, batch_size=params["batch_size"],
        max_epochs=max_epochs, patience=params["patience"],
        grad_clip=float(params["grad_clip"]), seed=seed, epoch_rows=epoch_rows,
        average=int(params.get("average", 1)),  # absent from bundles made before it
    )
