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

from grutune.bundle import save_weights
from grutune.exceptions import Interrupted, TrialFailure
from grutune.nn.model import count_parameters
from grutune.nn.oom import is_oom, oom_reason, release_memory
from grutune.nn.trainer import EpochLog
from grutune.search_space import Space
from grutune.tasks import Prepared, Task
from grutune.tuning.fitting import TrialFit, checkpoint_paths, fit_trial
from grutune.tuning.progress import Progress

log = logging.getLogger("grutune")


def trial_seed(study_seed: int, number: int) -> int:
    """Each trial's own seed; the seed is never a tuned hyperparameter."""
    return (study_seed * 1_000_003 + number) % 2**31


# fit stops that end a trial unscored; one its time budget cut short is scored
SEARCH_ENDS = ("callback", "interrupted")


class Objective:
    """Callable for ``study.optimize``."""

    def __init__(self, task: Task, prepared: Prepared, space: Space, max_epochs: int,
                 seed: int, run_dir: Path, progress: Progress | None = None,
                 should_stop: Callable[[], str | None] | None = None, keep: int = 1,
                 origin: dict | None = None, tick: Callable[[], None] | None = None):
        self.task = task
        self.prepared = prepared
        self.space = space
        self.max_epochs = max_epochs
        self.seed = seed
        self.run_dir = run_dir
        self.progress = progress
        self.should_stop = should_stop
        self.keep = keep  # checkpoint trials that rank among the `keep` best so far
        self.origin = origin  # the host and run directory, recorded on every trial
        self.tick = tick  # called after every epoch (a shared study's host record)

    def _start(self, trial: optuna.Trial) -> tuple[dict, int]:
        """Sample the trial's parameters and record them; (params, seed)."""
        params = self.space.sample(trial)
        seed = trial_seed(self.seed, trial.number)
        trial.set_user_attr("config", params)
        trial.set_user_attr("inactive", self.space.inactive(params))
        trial.set_user_attr("seed", seed)
        # the intra-op threads it trains with: a retraining elsewhere (another host's
        # final model) uses as many, so that it gives the same weights bit for bit
        trial.set_user_attr("threads", torch.get_num_threads())
        if self.origin is not None:
            trial.set_user_attr("origin", self.origin)
        return params, seed

    def __call__(self, trial: optuna.Trial) -> float:
        """The trial's value; out of memory anywhere in it (building, training,
        validating, checkpointing) fails this trial alone (``TrialFailure``)."""
        start = time.perf_counter()
        try:
            return self._trial(trial)
        except (RuntimeError, MemoryError, OSError) as err:
            if not is_oom(err):
                raise
            reason = oom_reason(err)
        # outside the except block: the error's frames (and their tensors) are gone
        release_memory()
        self._record_failure(trial, reason, start)
        raise TrialFailure(reason)

    def _trial(self, trial: optuna.Trial) -> float:
        params, seed = self._start(trial)
        if self.progress:
            self.progress.trial_started(trial.number)
        folds = len(self.prepared.fold_pairs())
        start = time.perf_counter()

        def after_fold(fold: int, pooled: float) -> bool:  # the pooled metric so far
            trial.report(pooled, fold)
            return fold < folds - 1 and trial.should_prune()

        try:
            done = fit_trial(self.task, self.prepared, params, seed, self.max_epochs,
                             on_epoch=self._reporter(trial, show=True, prune=folds == 1),
                             after_fold=after_fold, should_stop=self.should_stop,
                             ends=SEARCH_ENDS, built=lambda model: trial.set_user_attr(
                                 "n_params", count_parameters(model)))
        except TrialFailure as err:  # a NaN/inf loss; out of memory: see __call__
            self._record_failure(trial, str(err), start)
            raise
        if done.stopped == "fold":
            self._record(trial, done.results, start)
            raise optuna.TrialPruned(f"pruned after fold {len(done.results)}")
        return self._conclude(trial, done, start)

    def _conclude(self, trial: optuna.Trial, done: TrialFit, start: float) -> float:
        """Record a trial's finished fits; its value, or raise TrialPruned / Interrupted."""
        self._record(trial, done.results, start)
        last = done.results[-1]
        if done.stopped == "callback":
            raise optuna.TrialPruned(f"pruned after epoch {len(last.history)}")
        if done.stopped == "interrupted":
            trial.set_user_attr("fail_reason", f"interrupted after epoch {len(last.history)}")
            raise Interrupted()
        if len(done.results) > 1:
            trial.set_user_attr("fold_values", done.fold_values)
        trial.set_user_attr("val_loss", done.val_loss)  # breaks ties between equal values
        self._checkpoint_if_best(trial, done.models, done.value)
        return done.value

    def _reporter(self, trial: optuna.Trial, show: bool,
                  prune: bool = True) -> Callable[[EpochLog], bool]:
        """The per-epoch callback: progress (``show``), and with ``prune`` the epoch's
        value to Optuna and its pruner's verdict (a cross-validation fold only shows)."""
        def on_epoch(epoch_log: EpochLog) -> bool:
            if show and self.progress:
                self.progress.epoch(epoch_log, self.max_epochs)
            if self.tick is not None:
                self.tick()
            if not prune:
                return False
            if math.isfinite(epoch_log.val_metric):
                trial.report(epoch_log.val_metric, epoch_log.epoch)
            return trial.should_prune()
        return on_epoch

    def _record(self, trial: optuna.Trial, results: list, start: float) -> None:
        """Epochs, timing and curves (of the first fold under cross-validation)."""
        trial.set_user_attr("epochs", sum(len(r.history) for r in results))
        trial.set_user_attr("best_epoch", results[0].best_epoch)
        trial.set_user_attr("seconds", round(time.perf_counter() - start, 3))
        trial.set_user_attr("stopped", results[-1].stopped)
        trial.set_user_attr("history", results[0].history_dicts())
        if len(results) > 1 or len(self.prepared.fold_pairs()) > 1:
            trial.set_user_attr("folds", len(self.prepared.fold_pairs()))
            trial.set_user_attr("fold_epochs", [len(r.history) for r in results])

    def _record_failure(self, trial: optuna.Trial, reason: str, start: float) -> None:
        trial.set_user_attr("fail_reason", reason)
        trial.set_user_attr("seconds", round(time.perf_counter() - start, 3))
        log.warning("trial %d failed: %s", trial.number, reason)

    def _checkpoint_if_best(self, trial: optuna.Trial, models: list[torch.nn.Module],
                            value: float) -> None:
        """Keep the weights when this trial ranks among the ``keep`` best finished ones."""
        study = trial.study
        states = (optuna.trial.TrialState.COMPLETE,)
        values = [t.value for t in study.get_trials(deepcopy=False, states=states)]
        maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
        ranked = sorted(values, reverse=maximize)
        if len(ranked) < self.keep or (value >= ranked[self.keep - 1] if maximize
                                       else value <= ranked[self.keep - 1]):
            for model, path in zip(models, checkpoint_paths(self.run_dir, trial.number,
                                                            len(models)), strict=True):
                save_weights(model, path)


def trial_outcome(run: Callable[[], float]) -> float | BaseException:
    """``run()``'s value, or the trial-ending exception it raised."""
    try:
        return run()
    except (optuna.TrialPruned, TrialFailure, Interrupted) as err:
        return err
