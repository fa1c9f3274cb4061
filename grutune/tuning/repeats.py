"""Seed repeats: the final model comes from a configuration that holds up over seeds.

After the search, the top-k configurations (``--repeat-top``, default 3) are trained
again with more seeds (``--repeats`` seeds each, default 3, the search's own run being
the first). Each configuration gets the mean and 95% interval (Student t over seeds) of
its validation metric and of the same metric on test; the final model is the
configuration whose validation interval has the best *lower* bound (upper bound for an
error to minimize) — not the luckiest single run — and averages its seed models. The
test numbers are reported, never used to choose. The seed is never tuned: repeat j of a
trial uses the trial's seed + j x ``SEED_STRIDE``.

Repeats cost time: they run only while the estimate (each configuration's recorded
training time x its new seeds) fits ``repeat_budget_s``; configurations are dropped
from the bottom until it does, and the metrics say so. The estimate comes from the
search's timings, which a busier machine no longer keeps, so the budget is also a
deadline: a seed still training when it passes stops after its epoch and is dropped
(a cut-short model would be judged on fewer epochs than its peers), and no further
seed starts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import optuna

from grutune.exceptions import TrialFailure
from grutune.metrics.intervals import mean_interval, metric_bounds
from grutune.nn.model import Ensemble, SequenceModel
from grutune.nn.oom import is_oom, oom_reason
from grutune.nn.trainer import predict
from grutune.tasks import Prepared, Task
from grutune.tuning.evaluate import trial_models
from grutune.tuning.fitting import fit_trial

log = logging.getLogger("grutune")
SEED_STRIDE = 100_003
REPEAT_SHARE = 0.4  # seed repeats may take up to this share of the search budget


@dataclass
class Repeated:
    """One configuration over seeds."""

    trial: optuna.trial.FrozenTrial
    seeds: list[int] = field(default_factory=list)
    models: list[list[SequenceModel]] = field(default_factory=list)  # per seed: per fold
    val: list[float] = field(default_factory=list)
    test: list[float] = field(default_factory=list)
    epochs: list[int] = field(default_factory=list)  # per seed: its best epoch (refit)

    def summary(self, metric: str) -> dict:
        v_mean, v_low, v_high = mean_interval(self.val, bounds=metric_bounds(metric))
        t_mean, t_low, t_high = mean_interval(self.test, bounds=metric_bounds(metric))
        return {"trial": self.trial.number, "seeds": self.seeds, "metric": metric,
                "validation": [round(x, 6) for x in self.val],
                "validation_mean": v_mean, "validation_interval": [v_low, v_high],
                "test": [round(x, 6) for x in self.test], "test_mean": t_mean,
                "test_interval": [t_low, t_high]}


def now() -> float:
    """The clock deadlines are measured on (``time.monotonic``; tests replace it)."""
    return time.monotonic()


def refit_seconds(trial: optuna.trial.FrozenTrial) -> float:
    """About how long one refit of ``trial``'s configuration takes: its best epoch's share
    of its training time, on the 85% of rows train + validation hold instead of 70%."""
    epochs = max(int(trial.user_attrs.get("epochs", 0)), 1)
    best = min(int(trial.user_attrs.get("best_epoch", epochs)), epochs)
    return trial.user_attrs.get("seconds", 0.0) * best / epochs * 85 / 70


def plan(trials: list[optuna.trial.FrozenTrial], seeds: int, budget_s: float | None,
         refit: bool = False) -> tuple[list[optuna.trial.FrozenTrial], str]:
    """The trials whose repeats fit the budget (best first), and a note when some did not.
    With ``refit``, the budget also keeps room for refitting the costliest planned
    configuration's seeds (the refit shares the repeats' time limit, ``refit.py``)."""
    if seeds < 2:
        return [], "seed repeats off (--repeats 1)"
    chosen = list(trials)
    def cost(ts: list) -> float:
        room = max((refit_seconds(t) for t in ts), default=0.0) * seeds if refit else 0.0
        return sum(t.user_attrs.get("seconds", 0.0) for t in ts) * (seeds - 1) + room
    while chosen and budget_s is not None and cost(chosen) > budget_s:
        chosen.pop()
    if not chosen:
        return [], (f"seed repeats skipped: {seeds - 1} more seeds of the best configuration "
                    f"would take about {cost(trials[:1]) / 60:.0f} min, over the "
                    f"{budget_s / 60:.0f} min allowed")
    note = "" if len(chosen) == len(trials) else (
        f"seed repeats for the top {len(chosen)} configurations only (time)")
    return chosen, note


def repeat(trials: list[optuna.trial.FrozenTrial], seeds: int, task: Task,
           prepared: Prepared, run_dir: Path, max_epochs: int,
           deadline: float | None = None) -> list[Repeated]:
    """Train every trial's configuration with ``seeds`` seeds (the first is its own run).

    ``deadline`` (``time.monotonic()`` seconds): no seed starts after it, and a seed
    still training then stops after its epoch and is dropped; configurations keep the
    seeds that finished.
    """
    def out_of_time() -> str | None:
        return "budget" if deadline is not None and now() > deadline else None

    out = []
    for trial in trials:
        rep = Repeated(trial)
        base = trial.user_attrs["seed"]
        for j in range(seeds):
            seed = base + SEED_STRIDE * j
            if j == 0:
                models = trial_models(trial, task, prepared, run_dir, max_epochs)
                value, best = float(trial.value), int(trial.user_attrs.get("best_epoch", 0))
            else:
                try:
                    done = None if out_of_time() else train_seed(
                        trial.user_attrs["config"], seed, task, prepared, max_epochs,
                        out_of_time)
                except (TrialFailure, RuntimeError, MemoryError) as err:
                    if not isinstance(err, TrialFailure) and not is_oom(err):
                        raise
                    reason = str(err) if isinstance(err, TrialFailure) else oom_reason(err)
                    log.warning("seed repeat: trial %d seed %d failed (%s); it is left out",
                                trial.number, seed, reason)
                    continue
                if done is None:
                    log.info("seed repeats: stopped at their time limit (trial %d, seed %d)",
                             trial.number, seed)
                    return [*out, rep]
                models, value, best = done
            test_out = predict(Ensemble(models, task.combine).eval(), prepared.test)
            rep.seeds.append(seed)
            rep.models.append(models)
            rep.val.append(value)
            rep.epochs.append(best)
            rep.test.append(float(task.val_metric(test_out, prepared.test.y,
                                                  prepared.state)))
            log.info("seed repeat: trial %d seed %d: validation %.4f", trial.number, seed,
                     value)
        out.append(rep)
    return out


def train_seed(params: dict, seed: int, task: Task, prepared: Prepared, max_epochs: int,
               should_stop: Callable[[], str | None] | None = None,
               ) -> tuple[list[SequenceModel], float, int] | None:
    """One seed of a configuration: its models (per fold, in eval mode), validation
    value and best epoch (of the first fold), computed as the search computes a trial's
    (``fitting.fit_trial``).

    None when ``should_stop`` cut its training short (the seed is not comparable).
    """
    done = fit_trial(task, prepared, params, seed, max_epochs, should_stop=should_stop)
    if done.stopped:
        return None
    return [m.eval() for m in done.models], done.value, done.results[0].best_epoch


def choose(results: list[Repeated], direction: str) -> Repeated:
    """The configuration with the best bound of its validation interval (lower bound
    when higher is better); ties go to the better mean, then the earlier (better) trial."""
    def key(item: tuple[int, Repeated]) -> tuple:
        index, r = item
        mean, low, high = mean_interval(r.val)
        return ((low, mean) if direction == "maximize" else (-high, -mean)) + (-index,)
    return max(enumerate(results), key=key)[1]
