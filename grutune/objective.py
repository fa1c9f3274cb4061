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
from .config import TrainConfig
from .exceptions import Interrupted, TrialFailure
from .fitting import TrialFit, build_model, checkpoint_paths, fit_trial
from .model import SequenceModel, count_parameters
from .oom import is_oom, oom_reason, release_memory
from .population import fit_population, population_key
from .progress import Progress
from .search_space import Space, train_config
from .tasks import Prepared, Task
from .trainer import EpochLog, FitResult

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

    def _start(self, trial: optuna.Trial) -> tuple[dict, int]:
        """Sample the trial's parameters and record them; (params, seed)."""
        params = self.space.sample(trial)
        seed = trial_seed(self.seed, trial.number)
        trial.set_user_attr("config", params)
        trial.set_user_attr("inactive", self.space.inactive(params))
        trial.set_user_attr("seed", seed)
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

    def population(self, trials: list[optuna.Trial]) -> list[float | BaseException]:
        """Train ``trials`` together where they share an architecture (``population.py``),
        the rest one by one; each trial's value, or the exception that ended it
        (``optuna.TrialPruned``, ``TrialFailure``, ``Interrupted``).

        Every trial is recorded exactly as a single trial is (parameters, seed, curves,
        epochs, checkpoint), plus ``population``: the trial numbers trained with it.
        """
        groups: dict[tuple, list[tuple[optuna.Trial, dict, TrainConfig]]] = {}
        alone = []
        for trial in trials:
            params, seed = self._start(trial)
            cfg = train_config(params, self.max_epochs, seed, self.task.epoch_rows)
            key = population_key(self.task.model_config(params, self.prepared.state), cfg)
            if key is None or len(self.prepared.fold_pairs()) > 1:
                alone.append(trial)
            else:
                groups.setdefault(key, []).append((trial, params, cfg))
        outcomes: dict[int, float | BaseException] = {}
        for group in groups.values():
            if len(group) == 1:
                alone.append(group[0][0])
            else:
                outcomes.update(self._fit_group(group))
        for trial in alone:
            outcomes[trial.number] = _outcome(lambda t=trial: self(t))
        return [outcomes[t.number] for t in trials]

    def _fit_group(self, group: list[tuple[optuna.Trial, dict, TrainConfig]]
                   ) -> dict[int, float | BaseException]:
        """One population; see ``population``."""
        train, val = self.prepared.fold_pairs()[0]
        numbers = [t.number for t, _, _ in group]
        models, cfgs, callbacks = [], [], []
        for trial, params, cfg in group:
            trial.set_user_attr("population", numbers)
            models.append(build_model(self.task, params, self.prepared.state, cfg.seed))
            cfgs.append(cfg)
            trial.set_user_attr("n_params", count_parameters(models[-1]))
            callbacks.append(self._reporter(trial, show=trial is group[0][0]))
        if self.progress:
            self.progress.trial_started(numbers[0])
        start = time.perf_counter()
        reason = None
        try:
            results = fit_population(models, cfgs, train, val,
                                     self.task.scoring(self.prepared.state), callbacks,
                                     self.should_stop)
        except (RuntimeError, MemoryError, OSError) as err:
            if not is_oom(err):  # out of memory: every member fails, the study goes on
                raise
            reason = oom_reason(err).replace("out of memory",
                                             f"out of memory (population of {len(group)})", 1)
        if reason is not None:
            release_memory()
            results = [TrialFailure(reason) for _ in group]
        outcomes: dict[int, float | BaseException] = {}
        for (trial, _, _), model, result in zip(group, models, results, strict=True):
            outcomes[trial.number] = _outcome(
                lambda t=trial, m=model, r=result: self._finish(t, m, r, start))
        return outcomes

    def _reporter(self, trial: optuna.Trial, show: bool,
                  prune: bool = True) -> Callable[[EpochLog], bool]:
        """The per-epoch callback: progress (``show``), and with ``prune`` the epoch's
        value to Optuna and its pruner's verdict (a cross-validation fold only shows)."""
        def on_epoch(epoch_log: EpochLog) -> bool:
            if show and self.progress:
                self.progress.epoch(epoch_log, self.max_epochs)
            if not prune:
                return False
            if math.isfinite(epoch_log.val_metric):
                trial.report(epoch_log.val_metric, epoch_log.epoch)
            return trial.should_prune()
        return on_epoch

    def _finish(self, trial: optuna.Trial, model: SequenceModel,
                result: FitResult | TrialFailure, start: float) -> float:
        """Record a population member like a single trial; its value or the exception."""
        if isinstance(result, TrialFailure):
            self._record_failure(trial, str(result), start)
            raise result
        stopped = result.stopped if result.stopped in SEARCH_ENDS else ""
        return self._conclude(trial, TrialFit([model], [result], stopped, result.best_metric,
                                              result.best_val_loss), start)

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


def _outcome(run: Callable[[], float]) -> float | BaseException:
    """``run()``'s value, or the trial-ending exception it raised."""
    try:
        return run()
    except (optuna.TrialPruned, TrialFailure, Interrupted) as err:
        return err
