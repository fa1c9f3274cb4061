"""Task pipelines, by name.

>>> get_task("text").name
'text'
"""

from __future__ import annotations

from ..exceptions import ConfigError
from .base import ClassificationTask, Prepared, Task
from .forecasting import Forecasting
from .series_classification import SeriesClassification
from .text_classification import TextClassification

TASKS: dict[str, type[Task]] = {"text": TextClassification, "series": SeriesClassification,
                                "forecast": Forecasting}


def get_task(name: str, metric: str | None = None) -> Task:
    """A task instance optimizing ``metric`` on validation (None: the task's default)."""
    if name not in TASKS:
        raise ConfigError(f"--task: must be one of {', '.join(TASKS)}; got {name!r}")
    return TASKS[name]() if metric is None else TASKS[name](metric)  # each checks its metric


__all__ = ["ClassificationTask", "Prepared", "TASKS", "Task", "get_task"]
