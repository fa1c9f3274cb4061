"""Task pipelines, by name.

>>> get_task("text").name
'text'
"""

from __future__ import annotations

from ..exceptions import ConfigError
from ..metrics import SCORES
from .base import ClassificationTask, Prepared, Task
from .series_classification import SeriesClassification
from .text_classification import TextClassification

TASKS: dict[str, type[Task]] = {"text": TextClassification, "series": SeriesClassification}


def get_task(name: str, metric: str = "accuracy") -> Task:
    """A task instance optimizing ``metric`` on validation."""
    if name not in TASKS:
        raise ConfigError(f"--task: must be one of {', '.join(TASKS)}; got {name!r}")
    if metric not in SCORES:
        raise ConfigError(f"--metric: must be one of {', '.join(SCORES)}; got {metric!r}")
    return TASKS[name](metric)


__all__ = ["ClassificationTask", "Prepared", "TASKS", "Task", "get_task"]
