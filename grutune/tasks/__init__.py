"""Task pipelines, by name: the registry every other layer goes through.

A new task is one module with a ``Task`` subclass and one ``register_task`` call; no
other module names a task.

>>> get_task("text").name
'text'
>>> default_space("series")["batch_size"].choices
(8, 16, 32)
"""

from __future__ import annotations

from grutune.config import DataConfig
from grutune.exceptions import ConfigError
from grutune.search_space import Space
from grutune.tasks.base import ClassificationTask, Prepared, Task, check_options
from grutune.tasks.forecasting import Forecasting
from grutune.tasks.recommend import Recommendation
from grutune.tasks.series_classification import SeriesClassification
from grutune.tasks.text_classification import TextClassification

TASKS: dict[str, type[Task]] = {"text": TextClassification, "series": SeriesClassification,
                                "forecast": Forecasting, "recommend": Recommendation}


def register_task(cls: type[Task]) -> type[Task]:
    """Add a task to the registry under its ``name`` (usable as a class decorator)."""
    TASKS[cls.name] = cls
    return cls


def default_space(name: str, context: dict | None = None) -> Space:
    """The default search space of the task called ``name``."""
    return get_task(name).default_space(context or {})


def get_task(name: str, metric: str | None = None) -> Task:
    """A task instance optimizing ``metric`` on validation (None: the task's default)."""
    if name not in TASKS:
        raise ConfigError(f"--task: must be one of {', '.join(TASKS)}; got {name!r}")
    return TASKS[name]() if metric is None else TASKS[name](metric)  # each checks its metric


def check_task_options(cfg: DataConfig) -> None:
    """ConfigError when ``cfg`` sets an option its task (``cfg.task``) does not read.

    >>> check_task_options(DataConfig(dataset="gunpoint", task="series", horizon=3))
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    grutune.exceptions.ConfigError: --horizon: a forecast option; a series run does not ...
    """
    check_options(cfg, get_task(cfg.task), {name: t.options for name, t in TASKS.items()})


__all__ = ["ClassificationTask", "Prepared", "TASKS", "Task", "check_task_options",
           "default_space", "get_task", "register_task"]
