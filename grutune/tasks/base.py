"""The small Task interface and what classification tasks share.

A task turns raw data into prepared tensors (``prepare``), names its model's outputs
(``model_config``), scores outputs (``loss``, ``val_metric``, ``evaluate``), and
turns new raw data into inputs and outputs into predictions (``encode``, ``decode``).
Everything else — trainer, study, bundle, CLI — is shared by all tasks.
"""

from __future__ import annotations

import logging
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, fields
from typing import ClassVar

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from grutune.config import DataConfig, ModelConfig
from grutune.data.cache import SequenceData
from grutune.data.readers import read_table, show
from grutune.exceptions import ConfigError, DataError
from grutune.manifest_checks import Checker, is_str_list
from grutune.metrics.scores import SCORES, classification_metrics, classification_scalars
from grutune.nn.trainer import predict
from grutune.render import scalar_metrics_html, scalar_table
from grutune.search_space import Space
from grutune.tasks.baselines import Baseline
from grutune.tasks.views import (
    classification_data_text,
    classification_metrics_html,
    classification_sections,
    classification_table,
)

log = logging.getLogger("grutune")


@dataclass
class Prepared:
    """A task's prepared data: tensors per split plus the fitted, JSON-able state."""

    train: SequenceData
    val: SequenceData
    test: SequenceData
    state: dict  # everything predict needs: vocabulary, labels, scaling, columns
    split: dict  # {"train": [row ids], "val": [...], "test": [...], ...} -> split.json
    summary: dict = field(default_factory=dict)  # counts for the log and the report
    test_frame: pd.DataFrame | None = None  # raw test rows (for predictions.csv)
    folds: list[tuple[SequenceData, SequenceData]] | None = None  # cross-validation pairs
    # what the task's baseline reads beyond the tensors (a text task: each split's cleaned
    # texts; a forecaster: the series in original units and each split's window origins)
    raw: dict[str, object] | None = None
    # what a trial's model starts from beyond its seed, fitted on the training split by
    # ``Task.pretrain`` (a text task: word vectors); never saved: bundles hold the weights
    pretrained: dict[str, object] = field(default_factory=dict)

    def fold_pairs(self) -> list[tuple[SequenceData, SequenceData]]:
        """The (train, held-out) pairs a trial is scored on: the folds, or train/val."""
        return self.folds or [(self.train, self.val)]


class Task(ABC):
    """One kind of problem (text classification, forecasting, series classification).

    A task holds no state between calls: ``prepare`` returns everything later steps need
    (``Prepared.state`` travels into the bundle), and every other method reads only its
    arguments. The defaults below fit any task; a task overrides what it knows better.
    """

    name: ClassVar[str]
    metric: str  # the validation metric optimized (set by ``__init__``; ``--metric``)
    direction: str = "maximize"
    combine: ClassVar[str] = "mean"  # how an Ensemble averages members' outputs
    default_max_epochs: ClassVar[int] = 20

    def read_rows(self, path: str, state: dict) -> pd.DataFrame:
        """The rows of a file to predict (``encode`` turns them into inputs)."""
        return read_table(path)

    # the test metrics ``grutune compare`` judges two cells by, and their directions
    verdict_metrics: ClassVar[dict[str, str]] = {}
    test_unit: ClassVar[str] = "rows"  # what one test row is, in words (intervals)
    forecasts: ClassVar[bool] = False  # predicts the steps after a history (Model.forecast)
    # what a prediction row is, where it is not one input row (no --keep then), in words
    # after the model's name: "" means one prediction per input row
    prediction_rows: ClassVar[str] = ""
    uses_folds: ClassVar[bool] = True  # may trials be cross-validated on shuffled folds?
    select_members: ClassVar[bool] = False  # ensemble: keep the best prefix on validation
    # may the final models be refitted on train + validation (``tuning/refit.py``)? Not
    # when validation is the period after training
    refits: ClassVar[bool] = True
    epoch_rows: ClassVar[int] = 0  # training rows drawn per epoch (0: all of them)
    # the DataConfig fields this task reads beyond COMMON_OPTIONS; one given to a task
    # that does not read it is refused (``check_options``), never silently ignored
    options: ClassVar[frozenset[str]] = frozenset()

    def space_context(self, cfg: DataConfig) -> dict:
        """Data facts the default search space depends on (a forecaster's lookbacks)."""
        return {}

    @classmethod
    def check_state(cls, state: dict, config: ModelConfig, check: Checker) -> None:
        """Check a loaded bundle's ``state`` against its model ``config`` (a manifest may
        be damaged or forged); ``check.require`` raises the BundleError. Default: the
        state is a mapping."""
        check.require(isinstance(state, dict), "state", "a mapping", state)

    @abstractmethod
    def describe_data(self, summary: dict) -> str:
        """The plan's first sentence: what is tuned on which data (``Prepared.summary``)."""

    def plan_phrases(self, summary: dict) -> tuple[str, str]:
        """(how trials are scored, appended to "epochs per trial"; how the final model is
        evaluated) for the plan paragraph."""
        return "", "evaluated on the untouched test split"

    def metrics_table(self, metrics: dict) -> object:
        """The test metrics printed at the end of a run (a rich renderable). Default:
        every scalar of ``metrics.json`` with its 95% interval."""
        return scalar_table(metrics)

    def report_metrics(self, metrics: dict) -> str:
        """The report's test-metrics table (HTML) of ``metrics.json``. Default: every
        scalar with its 95% interval."""
        return scalar_metrics_html(metrics)

    def report_summary_rows(self, summary: dict) -> list[tuple[str, object]]:
        """Rows the task adds to the report's summary table, from ``Prepared.summary``
        (as split.json saved it)."""
        return []

    def report_sections(self, run: object, figure: object) -> list[str]:
        """The report's task sections (HTML parts) for a run directory's files (called
        once metrics.json exists); ``figure(fig, height)`` adds a plotly figure."""
        return []

    def baseline(self, prepared: Prepared, seed: int, refit: bool = False) -> Baseline | None:
        """A cheap strong model on the same split, fitted on train with its settings
        chosen on validation only, its test outputs in the model's output space (so it is
        scored as the model is). ``refit``: the chosen setting is fitted again on train +
        validation, as the final model was (``tuning/refit.py``). None: no baseline beyond
        what ``evaluate`` reports (a forecaster's naive forecasts)."""
        return None

    @abstractmethod
    def default_space(self, context: dict) -> Space:
        """The task's search space before a space file's overrides; ``context`` is what
        ``space_context`` found in the data."""

    @abstractmethod
    def prepare(self, cfg: DataConfig, saved_split: dict | None = None,
                space: Space | None = None) -> Prepared:
        """Read, clean, split (or reuse ``saved_split``), fit on train only, tensorize.

        ``space`` is the study's search space, for data shapes that depend on it (the
        longest lookback of a forecaster).
        """

    def pretrain(self, prepared: Prepared, space: Space, seed: int) -> None:
        """Fit, on the training split only, what the ``space``'s trials may start from,
        into ``prepared.pretrained`` (a text task: word vectors). Called once per study,
        after ``prepare`` and before any trial. Default: nothing."""
        return None

    def initialize(self, model: torch.nn.Module, params: dict, prepared: Prepared) -> None:
        """Start a freshly seeded ``model`` from ``prepared.pretrained`` as ``params`` say
        (a text task copies its word vectors into the embedding). Default: the seeded
        random start as it is."""
        return None

    @abstractmethod
    def model_config(self, params: dict, state: dict) -> ModelConfig:
        """The architecture for sampled ``params`` (input and output sizes from ``state``)."""

    @abstractmethod
    def loss(self, outputs: Tensor, y: Tensor) -> Tensor:
        """The training loss of ``outputs`` against targets ``y`` (a scalar tensor)."""

    @abstractmethod
    def val_metric(self, outputs: Tensor, y: Tensor, state: dict | None = None) -> float:
        """The validation metric (``metric``, better in ``direction``) of ``outputs``
        against ``y``. ``state``: the prepared state, for a metric that needs fitted
        numbers (a forecaster's MASE scale; such a task refuses None)."""

    def scoring(self, state: dict) -> Scoring:
        """The loss and validation metric bound to one prepared ``state``: what the
        trainer calls (a task keeps no state of its own between calls)."""
        return Scoring(self, state)

    @abstractmethod
    def evaluate(self, outputs: Tensor, data: SequenceData, state: dict) -> dict:
        """Test-set metrics (JSON-able) of ``outputs`` for the rows of ``data``."""

    def scalars(self, outputs: Tensor, data: SequenceData, state: dict) -> dict:
        """The scalar test metrics only (what the bootstrap recomputes per resample)."""
        from grutune.metrics.intervals import scalar_metrics

        return scalar_metrics(self.evaluate(outputs, data, state))

    def bootstrap_rows(self, outputs: Tensor, data: SequenceData,
                       state: dict) -> tuple[Tensor, SequenceData]:
        """The test rows as the bootstrap draws them (``metrics.intervals``): outputs and
        rows in a form ``scalars`` reads, one row per resampling unit. Default: as they
        are, a unit is a test row (a recommender makes a user one row, holding the sums
        its metrics need, so its intervals resample users and stay cheap)."""
        return outputs, data

    @abstractmethod
    def encode(self, frame: pd.DataFrame, state: dict, source: str) -> SequenceData:
        """New raw rows -> inputs (targets zero), exactly as the training data was encoded."""

    @abstractmethod
    def decode(self, outputs: Tensor, state: dict) -> pd.DataFrame:
        """Outputs -> a prediction table, one row per input row."""

    def prediction_table(self, outputs: Tensor, prepared: Prepared) -> pd.DataFrame:
        """The test rows (``test_frame``) beside their predictions: test_predictions.csv."""
        table = self.decode(outputs, prepared.state)
        frame = (prepared.test_frame.reset_index(drop=True) if prepared.test_frame is not None
                 else pd.DataFrame(index=range(len(table))))
        return pd.concat([frame, table], axis=1)

    def predict_rows(self, model: torch.nn.Module, frame: pd.DataFrame, state: dict,
                     source: str) -> pd.DataFrame:
        """Predictions of ``model`` for new raw rows (``grutune predict``)."""
        return self.decode(predict(model, self.encode(frame, state, source)), state)


@dataclass(frozen=True)
class Scoring:
    """A task's scoring for one prepared state (``trainer.Scorer``).

    >>> from grutune.tasks import get_task
    >>> scoring = get_task("text").scoring({"labels": ["a", "b"]})
    >>> scoring.direction, scoring.val_metric(torch.tensor([[2.0, 0.0]]), torch.tensor([0]))
    ('maximize', 1.0)
    """

    task: Task
    state: dict

    @property
    def direction(self) -> str:
        return self.task.direction

    def loss(self, outputs: Tensor, y: Tensor) -> Tensor:
        return self.task.loss(outputs, y)

    def val_metric(self, outputs: Tensor, y: Tensor) -> float:
        return self.task.val_metric(outputs, y, self.state)


class ClassificationTask(Task):
    """Cross-entropy over class ids; metrics and predictions with class names."""

    combine = "probability"
    verdict_metrics = {"accuracy": "maximize", "f1_macro": "maximize", "roc_auc": "maximize",
                       "log_loss": "minimize"}

    def __init__(self, metric: str = "accuracy"):
        if metric not in SCORES:
            raise ConfigError(f"--metric: must be one of {', '.join(SCORES)}; got {metric!r}")
        self.metric = metric
        self._score, self.direction = SCORES[metric]

    model_kinds: ClassVar[tuple[str, ...]] = ("sequence",)  # what a bundle's model may be

    @classmethod
    def check_state(cls, state: dict, config: ModelConfig, check: Checker) -> None:
        """Labels: distinct strings, one per model output, of a known kind."""
        labels = state.get("labels")
        check.require(is_str_list(labels) and len(labels) >= 1, "state.labels",
                      "a non-empty list of strings", labels)
        check.require(len(set(labels)) == len(labels), "state.labels", "distinct", labels)
        check.require(len(labels) == config.num_outputs, "state.labels",
                      f"one per model output ({config.num_outputs})", labels)
        check.require(config.kind in cls.model_kinds, "members[0].model_config.kind",
                      f"one of {', '.join(cls.model_kinds)} for a {cls.name} classifier",
                      config.kind)
        kind = state.get("label_kind", "str")
        check.require(kind in ("str", "int", "value"), "state.label_kind", "str, int or value",
                      kind)
        if kind == "int":
            check.require(all(re.fullmatch(r"-?[0-9]{1,30}", v) for v in labels), "state.labels",
                          "whole numbers (label_kind int)", labels)
        if kind == "value":  # labels of a typed file (JSON Lines, Parquet) as they were written
            values = state.get("label_values")
            check.require(isinstance(values, list) and len(values) == len(labels)
                          and all(isinstance(v, (str, int, float, bool)) for v in values),
                          "state.label_values", "one text, number or boolean per label", values)
        for key in ("target_column",):
            if key in state:
                check.require(isinstance(state[key], str), f"state.{key}", "a string", state[key])

    def describe_data(self, summary: dict) -> str:
        inputs, notes = self.describe_inputs(summary)
        return classification_data_text(summary, inputs, notes)

    def describe_inputs(self, summary: dict) -> tuple[str, list[str]]:
        """(the inputs in words, notes on what preparation changed) for the plan."""
        return "", []

    def metrics_table(self, metrics: dict) -> object:
        return classification_table(metrics)

    def report_metrics(self, metrics: dict) -> str:
        return classification_metrics_html(metrics)

    def report_sections(self, run: object, figure: object) -> list[str]:
        return classification_sections(run, figure) if "confusion_matrix" in run.metrics else []

    def loss(self, outputs: Tensor, y: Tensor) -> Tensor:
        return torch.nn.functional.cross_entropy(outputs, y)

    def val_metric(self, outputs: Tensor, y: Tensor, state: dict | None = None) -> float:
        return self._score(y.cpu().numpy(), probabilities(outputs))

    def evaluate(self, outputs: Tensor, data: SequenceData, state: dict) -> dict:
        return classification_metrics(data.y.cpu().numpy(), probabilities(outputs),
                                      state["labels"])

    def scalars(self, outputs: Tensor, data: SequenceData, state: dict) -> dict:
        return classification_scalars(data.y.cpu().numpy(), probabilities(outputs))

    def decode(self, outputs: Tensor, state: dict) -> pd.DataFrame:
        proba = probabilities(outputs)
        labels = state["labels"]
        predicted = [labels[i] for i in proba.argmax(1)]
        table = pd.DataFrame({"prediction": restore_label_type(predicted, state)})
        for i, name in enumerate(labels):
            table[f"prob_{name}"] = proba[:, i]
        return table


def probabilities(outputs: Tensor) -> np.ndarray:
    """Softmax of logits as float64 NumPy (exact sums for scikit-learn's checks)."""
    return torch.softmax(outputs.detach().double(), dim=-1).cpu().numpy()


def label_name(value: object) -> str | None:
    """A label cell's class name: the label as the user wrote it; None when missing.

    Text stays as written (``"007"``, ``"NA"``, ``" a"``); a blank (empty or only
    whitespace) cell, ``None`` and a NaN are missing; numbers are written as Python does
    (``7``, ``1.0``), booleans as ``True``/``False``.

    >>> [label_name(v) for v in ["007", "NA", 7, 1.0, True, "  ", None, float("nan")]]
    ['007', 'NA', '7', '1.0', 'True', None, None, None]
    """
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return None if np.isnan(value) else str(value) if isinstance(value, np.floating) \
            else repr(value)
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if isinstance(value, str):
        return value if value.strip() else None
    return str(value)


def label_value(value: object) -> object:
    """The JSON-able value of a present label, of the file's type (str, int, float, bool)."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, np.floating):
        return float(str(value))  # float32 0.1 stays 0.1, as its name says
    if isinstance(value, float):
        return value
    if isinstance(value, str):
        return value
    return label_name(value)


def read_labels(values: pd.Series | list, source: str, column: str,
                unit: str = "data row") -> tuple[list[str | None], list]:
    """Per cell: the class name (None: missing) and the typed value, as written.

    DataError when a label is not a finite number, and when two cells of different types
    read the same (``1`` and ``"1"`` in JSON Lines): those would silently merge.
    """
    names, typed, first = [], [], {}
    for row, value in enumerate(values):
        name = label_name(value)
        if name is not None and isinstance(value, (float, np.floating)) and not np.isfinite(value):
            raise DataError(f"{source}: target column {column!r} has the label {show(value)} "
                            f"({unit} {row + 1}); a numeric label must be a finite number")
        typed_value = None if name is None else label_value(value)
        if name is not None:
            seen = first.setdefault(name, (row, typed_value))
            if type(seen[1]) is not type(typed_value):
                raise DataError(
                    f"{source}: target column {column!r} has the label {show(seen[1])} "
                    f"({_kind(seen[1])}, {unit} {seen[0] + 1}) and {show(typed_value)} "
                    f"({_kind(typed_value)}, {unit} {row + 1}), which read the same; write "
                    "each class one way (labels are kept as written)")
        names.append(name)
        typed.append(typed_value)
    return names, typed


def _kind(value: object) -> str:
    return {str: "text", bool: "a boolean", int: "an integer", float: "a number"}.get(
        type(value), type(value).__name__)


def warn_similar_labels(names: list[str], source: str, column: str) -> None:
    """Warn when class names differ only by surrounding whitespace (kept as written)."""
    by_stripped: dict[str, set[str]] = {}
    for name in set(names):
        by_stripped.setdefault(name.strip(), set()).add(name)
    for group in by_stripped.values():
        if len(group) > 1:
            shown = ", ".join(show(n) for n in sorted(group)[:3])
            log.warning("%s: target column %r has labels that differ only by surrounding "
                        "spaces (%s); they are different classes", source, column, shown)
            return


def _canonical_int(name: str) -> bool:
    return re.fullmatch(r"-?[0-9]+", name) is not None and str(int(name)) == name


def label_state(names: list[str], values: list, typed: bool) -> dict:
    """The bundle-state entries of the labels: ``labels`` (sorted class names),
    ``label_kind`` and, where the kind alone cannot give the values back,
    ``label_values`` (each class's value as written, same order).

    Kinds: "int" (every label an integer: a typed integer, or CSV/.ts text written as a
    plain integer such as 10, not 007), "str" (every label text) or "value" (anything
    else: floats, booleans, mixed types; ``label_values`` holds them).

    >>> label_state(["10", "2", "2"], ["10", "2", "2"], typed=False)
    {'labels': ['2', '10'], 'label_kind': 'int'}
    >>> label_state(["1", "01"], ["1", "01"], typed=False)
    {'labels': ['01', '1'], 'label_kind': 'str'}
    >>> label_state(["1.5", "a"], [1.5, "a"], typed=True)
    {'labels': ['1.5', 'a'], 'label_kind': 'value', 'label_values': [1.5, 'a']}
    """
    first: dict[str, object] = {}
    for name, value in zip(names, values, strict=True):
        first.setdefault(name, value)
    found = list(first.values())
    if all(isinstance(v, str) for v in found):
        if not typed and all(_canonical_int(n) for n in first):
            return {"labels": sorted(first, key=int), "label_kind": "int"}
        return {"labels": sorted(first), "label_kind": "str"}
    if all(isinstance(v, int) and not isinstance(v, bool) for v in found):
        return {"labels": sorted(first, key=int), "label_kind": "int"}

    def order(name: str) -> tuple:
        value = first[name]
        numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
        return (0, float(value), name) if numeric else (1, 0.0, name)

    labels = sorted(first, key=order)
    return {"labels": labels, "label_kind": "value", "label_values": [first[n] for n in labels]}


def class_names(values: pd.Series) -> tuple[list[str], str]:
    """Sorted class names as written, and "int" when every label is a plain integer.

    >>> class_names(pd.Series([10, 2, 2]))
    (['2', '10'], 'int')
    >>> class_names(pd.Series(["007", "7"]))
    (['007', '7'], 'str')
    """
    names = [label_name(v) for v in values]
    state = label_state([n for n in names if n is not None],
                        [str(n) for n in names if n is not None], typed=False)
    return state["labels"], state["label_kind"]


def restore_label_type(names: list[str], state: dict) -> list:
    """Class names back to the labels as the user wrote them (their type included).

    Bundles without ``label_values`` (and every bundle written before it existed) use
    ``label_kind`` alone: "int" gives integers, anything else the names.
    """
    if "label_values" in state:
        values = dict(zip(state["labels"], state["label_values"], strict=True))
        return [values.get(n, n) for n in names]
    return [int(n) for n in names] if state.get("label_kind") == "int" else list(names)


# DataConfig fields every task reads; the others belong to the tasks that name them
COMMON_OPTIONS = frozenset({"dataset", "path", "test_path", "task", "seed", "sample",
                            "val_fraction", "test_fraction"})
# how a DataConfig field is given on the command line (the API takes the field's name or
# the flag's, ``grutune.api.ALIASES``)
FLAGS = {"text_column": "--text", "target_column": "--target", "id_column": "--id",
         "time_column": "--time", "user_column": "--user", "item_column": "--item",
         "session_column": "--session"}


def check_options(cfg: DataConfig, task: Task, readers: dict[str, frozenset[str]]) -> None:
    """ConfigError at the first option ``cfg`` sets (away from its default) that ``task``
    does not read: ``--horizon`` on a series classifier would be ignored, and the user
    who gave it believes it acted. ``readers``: each registered task's ``options``, to
    say which tasks read it."""
    for item in fields(cfg):
        if item.name in COMMON_OPTIONS or item.name in task.options:
            continue
        if getattr(cfg, item.name) == item.default:
            continue
        flag = FLAGS.get(item.name, "--" + item.name.replace("_", "-"))
        users = sorted(name for name, options in readers.items() if item.name in options)
        raise ConfigError(f"{flag}: a {' / '.join(users) or 'no'} option; a {task.name} run "
                          "does not read it, so drop it (or give the task that does, --task)")


def stratified_sample(rows: pd.DataFrame, n: int, seed: int, name: str = "data") -> pd.DataFrame:
    """``n`` of ``rows`` drawn by ``seed``, each class (column ``label``) in its share
    (``--sample``); all of them when ``n`` is not fewer."""
    if n >= len(rows):
        return rows
    counts = rows["label"].astype(str).value_counts()
    if counts.iloc[-1] < 2 or min(n, len(rows) - n) < len(counts):
        raise DataError(f"{name}: --sample {n}: a stratified sample needs at least 2 rows of "
                        f"each class and one row per class ({len(counts)} classes); class "
                        f"{counts.index[-1]!r} has {int(counts.iloc[-1])} rows. Use a larger "
                        "--sample, or none")
    from sklearn.model_selection import train_test_split

    keep, _ = train_test_split(np.arange(len(rows)), train_size=n, stratify=rows["label"],
                               random_state=seed)
    return rows.iloc[np.sort(keep)].reset_index(drop=True)


def stratified_split(labels: np.ndarray, cfg: DataConfig, has_test: bool,
                     source: str) -> dict[str, np.ndarray]:
    """Positions for train/val(/test), stratified by label, seeded.

    Without a given test part: test_fraction of all rows, then val_fraction of all rows
    from the rest (70/15/15 by default). With one: val_fraction of the rows from ``labels``.
    """
    from sklearn.model_selection import train_test_split

    positions = np.arange(len(labels))
    try:
        if has_test:
            train, val = train_test_split(positions, test_size=cfg.val_fraction,
                                          stratify=labels, random_state=cfg.seed)
            return {"train": np.sort(train), "val": np.sort(val)}
        rest, test = train_test_split(positions, test_size=cfg.test_fraction,
                                      stratify=labels, random_state=cfg.seed)
        val_share = cfg.val_fraction / (1 - cfg.test_fraction)
        train, val = train_test_split(rest, test_size=val_share, stratify=labels[rest],
                                      random_state=cfg.seed)
    except ValueError as err:
        raise DataError(f"{source}: cannot make a stratified split of {len(labels)} rows "
                        f"({err}); use more rows (or a larger --sample)") from None
    return {"train": np.sort(train), "val": np.sort(val), "test": np.sort(test)}


def check_classes(labels: pd.Series, source: str, column: str, minimum: int = 3) -> None:
    """Fail unless there are >= 2 classes, each with >= ``minimum`` rows."""
    counts = labels.astype(str).value_counts()
    if len(counts) < 2:
        only = counts.index[0] if len(counts) else "(none)"
        raise DataError(f"{source}: target column {column!r} has a single class ({only!r}); "
                        "classification needs at least 2 classes")
    small = counts[counts < minimum]
    if len(small):
        raise DataError(f"{source}: class {small.index[0]!r} of column {column!r} has "
                        f"{int(small.iloc[0])} rows; each class needs at least {minimum} "
                        "for a stratified train/validation/test split")
