"""The small Task interface and what classification tasks share.

A task turns raw data into prepared tensors (``prepare``), names its model's outputs
(``model_config``), scores outputs (``loss``, ``val_metric``, ``evaluate``), and
turns new raw data into inputs and outputs into predictions (``encode``, ``decode``).
Everything else — trainer, study, bundle, CLI — is shared by all tasks.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import pandas as pd
import torch
from sklearn.model_selection import train_test_split
from torch import Tensor

from ..cache import SequenceData
from ..config import DataConfig, ModelConfig
from ..exceptions import ConfigError, DataError
from ..metrics import SCORES, classification_metrics, classification_scalars
from ..readers import read_table
from ..search_space import Space
from ..trainer import predict


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

    def fold_pairs(self) -> list[tuple[SequenceData, SequenceData]]:
        """The (train, held-out) pairs a trial is scored on: the folds, or train/val."""
        return self.folds or [(self.train, self.val)]


class Task(ABC):
    """One kind of problem (text classification, forecasting, series classification)."""

    name: ClassVar[str]
    direction: str = "maximize"
    combine: ClassVar[str] = "mean"  # how an Ensemble averages members' outputs
    default_max_epochs: ClassVar[int] = 20

    def read_rows(self, path: str, state: dict) -> pd.DataFrame:
        """The rows of a file to predict (``encode`` turns them into inputs)."""
        return read_table(path)

    uses_folds: ClassVar[bool] = True  # may trials be cross-validated on shuffled folds?
    select_members: ClassVar[bool] = False  # ensemble: keep the best prefix on validation
    epoch_rows: ClassVar[int] = 0  # training rows drawn per epoch (0: all of them)

    def space_context(self, cfg: DataConfig) -> dict:
        """Data facts the default search space depends on (a forecaster's lookbacks)."""
        return {}

    @abstractmethod
    def prepare(self, cfg: DataConfig, saved_split: dict | None = None,
                space: Space | None = None) -> Prepared:
        """Read, clean, split (or reuse ``saved_split``), fit on train only, tensorize.

        ``space`` is the study's search space, for data shapes that depend on it (the
        longest lookback of a forecaster).
        """

    @abstractmethod
    def model_config(self, params: dict, state: dict) -> ModelConfig:
        """The architecture for sampled ``params`` (input and output sizes from ``state``)."""

    @abstractmethod
    def loss(self, outputs: Tensor, y: Tensor) -> Tensor: ...

    @abstractmethod
    def val_metric(self, outputs: Tensor, y: Tensor) -> float: ...

    @abstractmethod
    def evaluate(self, outputs: Tensor, data: SequenceData, state: dict) -> dict:
        """Test-set metrics (JSON-able) of ``outputs`` for the rows of ``data``."""

    def scalars(self, outputs: Tensor, data: SequenceData, state: dict) -> dict:
        """The scalar test metrics only (what the bootstrap recomputes per resample)."""
        from ..intervals import scalar_metrics

        return scalar_metrics(self.evaluate(outputs, data, state))

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


class ClassificationTask(Task):
    """Cross-entropy over class ids; metrics and predictions with class names."""

    combine = "probability"

    def __init__(self, metric: str = "accuracy"):
        if metric not in SCORES:
            raise ConfigError(f"--metric: must be one of {', '.join(SCORES)}; got {metric!r}")
        self.metric = metric
        self._score, self.direction = SCORES[metric]

    def loss(self, outputs: Tensor, y: Tensor) -> Tensor:
        return torch.nn.functional.cross_entropy(outputs, y)

    def val_metric(self, outputs: Tensor, y: Tensor) -> float:
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


def class_names(values: pd.Series) -> tuple[list[str], str]:
    """Sorted class names as strings, and "int" when every label is an integer.

    >>> class_names(pd.Series([10, 2, 2]))
    (['2', '10'], 'int')
    """
    names = {str(v) for v in values}
    if all(re.fullmatch(r"-?[0-9]+", n) for n in names):
        return sorted(names, key=int), "int"
    return sorted(names), "str"


def restore_label_type(names: list[str], state: dict) -> list:
    return [int(n) for n in names] if state.get("label_kind") == "int" else names


def stratified_split(labels: np.ndarray, cfg: DataConfig, has_test: bool,
                     source: str) -> dict[str, np.ndarray]:
    """Positions for train/val(/test), stratified by label, seeded.

    Without a given test part: test_fraction of all rows, then val_fraction of all rows
    from the rest (70/15/15 by default). With one: val_fraction of the rows from ``labels``.
    """
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
