"""Populations in the search (``--population K``): K trials that share an architecture
asked together, trained as one stacked model (``grutune.nn.population``), each told its
own result and recorded exactly as a single trial is.

The model side (stacked weights, the fused optimizer, ``fit_population``) knows no
Optuna; this module is its Optuna glue, as ``objective.py`` is for one trial.

>>> issubclass(PopulationObjective, Objective)
True
"""

from __future__ import annotations

import contextlib
import time
import warnings

import optuna

from grutune import compat
from grutune.config import TrainConfig
from grutune.exceptions import Interrupted, TrialFailure
from grutune.nn.model import SequenceModel, count_parameters
from grutune.nn.oom import is_oom, oom_reason, release_memory
from grutune.nn.population import POPULATION_PARAMS, fit_population, population_key
from grutune.nn.trainer import FitResult
from grutune.search_space import train_config
from grutune.tuning.fitting import TrialFit, build_model
from grutune.tuning.objective import SEARCH_ENDS, Objective, trial_outcome


class PopulationObjective(Objective):
    """An ``Objective`` that can also train several trials together (``population``)."""

    def population(self, trials: list[optuna.Trial]) -> list[float | BaseException]:
        """Train ``trials`` together where they share an architecture (``grutune.nn.population``),
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
            outcomes[trial.number] = trial_outcome(lambda t=trial: self(t))
        return [outcomes[t.number] for t in trials]

    def _fit_group(self, group: list[tuple[optuna.Trial, dict, TrainConfig]]
                   ) -> dict[int, float | BaseException]:
        """One population; see ``population``."""
        train, val = self.prepared.fold_pairs()[0]
        numbers = [t.number for t, _, _ in group]
        models, cfgs, callbacks = [], [], []
        for trial, params, cfg in group:
            trial.set_user_attr("population", numbers)
            models.append(build_model(self.task, params, self.prepared.state, cfg.seed,
                                      self.prepared))
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
            outcomes[trial.number] = trial_outcome(
                lambda t=trial, m=model, r=result: self._finish(t, m, r, start))
        return outcomes

    def _finish(self, trial: optuna.Trial, model: SequenceModel,
                result: FitResult | TrialFailure, start: float) -> float:
        """Record a population member like a single trial; its value or the exception."""
        if isinstance(result, TrialFailure):
            self._record_failure(trial, str(result), start)
            raise result
        stopped = result.stopped if result.stopped in SEARCH_ENDS else ""
        return self._conclude(trial, TrialFit([model], [result], stopped, result.best_metric,
                                              result.best_val_loss), start)


def population_round(study: optuna.Study, objective: PopulationObjective, size: int,
                      callbacks: tuple) -> None:
    """Ask ``size`` trials that share the first one's architecture, train them together,
    tell each its own result.

    The sampler chooses the first trial freely; the others are enqueued with its shared
    parameters fixed (``POPULATION_PARAMS``), so the sampler chooses only their training
    factors. Should another worker take one of the enqueued trials, the trials that
    still share an architecture train together and the rest alone.
    """
    beating = compat.heartbeat_enabled(study)
    if beating:  # what study.optimize does before each trial
        optuna.storages.fail_stale_trials(study)
    with warnings.catch_warnings():  # "heartbeat is supposed to be used with optimize":
        warnings.simplefilter("ignore", UserWarning)  # we run the heartbeats ourselves
        first = study.ask()
        shared = {name: value for name, value in objective.space.sample(first).items()
                  if name in POPULATION_PARAMS and objective.space[name].kind != "fixed"}
        trials = [first]
        for _ in range(size - 1):
            study.enqueue_trial(shared, skip_if_exists=False)
            trials.append(study.ask())
    with contextlib.ExitStack() as beats:
        if beating:  # each member's heartbeat, as study.optimize keeps one per trial
            for trial in trials:
                beats.enter_context(compat.heartbeat(study, trial))
        outcomes = objective.population(trials)
    interrupted = False
    for trial, outcome in zip(trials, outcomes, strict=True):
        if isinstance(outcome, optuna.TrialPruned):
            frozen = study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        elif isinstance(outcome, BaseException):
            interrupted = interrupted or isinstance(outcome, Interrupted)
            frozen = study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            frozen = study.tell(trial, outcome)
        for callback in callbacks:
            callback(study, frozen)
    if interrupted:
        raise Interrupted()
