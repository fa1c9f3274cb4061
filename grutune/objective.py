"""Glue: an Optuna trial -> params -> model -> trainer -> validation metric.

Each epoch's validation metric is reported to Optuna (so the pruner can stop the
trial); everything a report or a resumed run needs is stored on the trial as user
attributes (the full parameter dict, seed, epochs, seconds, per-epoch history, why it
stopped). The weights of a trial that beats the study's best so far are checkpointed in
the run directory (enough of them for the final ensemble), so the final evaluation needs
no retraining.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from pathlib import Path

import optuna
import torch

from .bundle import save_weights
from .exceptions import Interrupted, TrialFailure
from .model import SequenceModel, count_parameters
from .progress import Progress
from .search_space import Space, train_config
from .tasks import Prepared, Task
from .trainer import EpochLog, fit, seed_everything

log = logging.getLogger("grutune")


def trial_seed(study_seed: int, number: int) -> int:
    """Each trial's own seed; the seed is never a tuned hyperparameter."""
    return (study_seed * 1_000_003 + number) % 2**31


def checkpoint_path(run_dir: Path, number: int) -> Path:
    return run_dir / "checkpoints" / f"trial-{number}.safetensors"


def build_model(task: Task, params: dict, state: dict, seed: int) -> SequenceModel:
    """The trial's model, initialized from its seed."""
    seed_everything(seed)
    return SequenceModel(task.model_config(params, state))


class Objective:
    """Callable for ``study.optimize``."""

    def __init__(self, task: Task, prepared: Prepared, space: Space, max_epochs: int,
                 seed: int, run_dir: Path, progress: Progress | None = None,
                 should_stop: Callable[[], str | None] | None = None, keep: int = 1):
        self.task = task
        self.prepared = prepared
        self.space = space
        self.max_epochs = max_epochs
        self.seed = seed
        self.run_dir = run_dir
        self.progress = progress
        self.should_stop = should_stop
        self.keep = keep  # checkpoint trials that rank among the `keep` best so far

    def __call__(self, trial: optuna.Trial) -> float:
        params = self.space.sample(trial)
        seed = trial_seed(self.seed, trial.number)
        trial.set_user_attr("config", params)
        trial.set_user_attr("inactive", self.space.inactive(params))
        trial.set_user_attr("seed", seed)
        if self.progress:
            self.progress.trial_started(trial.number)
        model = build_model(self.task, params, self.prepared.state, seed)
        trial.set_user_attr("n_params", count_parameters(model))
        cfg = train_config(params, self.max_epochs, seed)

        def on_epoch(epoch_log: EpochLog) -> bool:
            if math.isfinite(epoch_log.val_metric):
                trial.report(epoch_log.val_metric, epoch_log.epoch)
            if self.progress:
                self.progress.epoch(epoch_log, self.max_epochs)
            return trial.should_prune()

        start = time.perf_counter()
        try:
            result = fit(model, self.prepared.train, self.prepared.val, cfg, self.task,
                         on_epoch=on_epoch, should_stop=self.should_stop)
        except TrialFailure as err:
            self._record_failure(trial, str(err), start)
            raise
        except RuntimeError as err:  # out of memory and other numeric breakdowns
            if "out of memory" not in str(err).lower():
                raise
            self._record_failure(trial, f"out of memory: {str(err).splitlines()[0]}", start)
            raise TrialFailure(str(err)) from err
        trial.set_user_attr("epochs", len(result.history))
        trial.set_user_attr("best_epoch", result.best_epoch)
        trial.set_user_attr("seconds", round(time.perf_counter() - start, 3))
        trial.set_user_attr("stopped", result.stopped)
        trial.set_user_attr("history", result.history_dicts())
        if result.stopped == "callback":
            raise optuna.TrialPruned(f"pruned after epoch {len(result.history)}")
        if result.stopped == "interrupted":
            trial.set_user_attr("fail_reason", f"interrupted after epoch {len(result.history)}")
            raise Interrupted()
        self._checkpoint_if_best(trial, model, result.best_metric)
        return result.best_metric

    def _record_failure(self, trial: optuna.Trial, reason: str, start: float) -> None:
        trial.set_user_attr("fail_reason", reason)
        trial.set_user_attr("seconds", round(time.perf_counter() - start, 3))
        log.warning("trial %d failed: %s", trial.number, reason)

    def _checkpoint_if_best(self, trial: optuna.Trial, model: torch.nn.Module,
                            value: float) -> None:
        """Keep the weights when this trial ranks among the ``keep`` best finished ones."""
        study = trial.study
        states = (optuna.trial.TrialState.COMPLETE,)
        values = [t.value for t in study.get_trials(deepcopy=False, states=states)]
        maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
        ranked = sorted(values, reverse=maximize)
        if len(ranked) < self.keep or (value >= ranked[self.keep - 1] if maximize
                                       else value <= ranked[self.keep - 1]):
            save_weights(model, checkpoint_path(self.run_dir, trial.number))
