"""The final model on the untouched test split.

The final model is the ensemble of the K best complete trials by validation metric
(K = ``--ensemble``, default 3; 1 = the best trial alone): their class probabilities
are averaged. Under cross-validation each trial brings its k fold models. Selection
uses validation only; the test split is touched once, here.
Each member's checkpointed weights are used as they are; only when a checkpoint is
missing (a trial another host ran: checkpoints stay on the host that trained them) is
that configuration retrained from its recorded parameters and seed, with the intra-op
thread count it trained with, which on the same kind of machine gives the same weights
bit for bit.
"""

from __future__ import annotations

import logging
from pathlib import Path

import optuna
import pandas as pd
import torch
from torch import Tensor

from grutune.data.cache import SequenceData
from grutune.exceptions import SearchError, TrialFailure
from grutune.metrics.intervals import Draws, intervals_of, paired_interval, resample_scalars
from grutune.nn.model import Ensemble, SequenceModel
from grutune.nn.oom import is_oom, oom_reason
from grutune.nn.trainer import predict
from grutune.tasks import Prepared, Task
from grutune.tuning.fitting import checkpoint_paths, restore_models

log = logging.getLogger("grutune")


def best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial:
    """The best complete trial, or a SearchError that says why there is none."""
    states = optuna.trial.TrialState
    complete = study.get_trials(deepcopy=False, states=(states.COMPLETE,))
    if complete:
        return study.best_trial
    failed = study.get_trials(deepcopy=False, states=(states.FAIL,))
    reasons = sorted({t.user_attrs.get("fail_reason", "unknown") for t in failed})
    if failed:
        raise SearchError(f"every trial failed or was pruned ({len(failed)} failed: "
                           f"{'; '.join(reasons[:3])}); try a lower learning rate range "
                           "or a smaller model")
    raise SearchError("no trial completed; give the search more --trials or --budget")


def trial_models(trial: optuna.trial.FrozenTrial, task: Task, prepared: Prepared,
                 run_dir: Path, max_epochs: int) -> list[SequenceModel]:
    """The trial's models (one, or one per fold) with their best-epoch weights.

    From the checkpoints, or retrained from the recorded parameters and seed where a
    checkpoint is missing.
    """
    params, seed = trial.user_attrs["config"], trial.user_attrs["seed"]
    paths = checkpoint_paths(run_dir, trial.number, len(prepared.fold_pairs()))
    threads = trial.user_attrs.get("threads")
    origin = trial.user_attrs.get("origin") or {}
    elsewhere = origin.get("run_dir") not in (None, str(Path(run_dir).resolve()))

    def missing(path: Path) -> None:
        if elsewhere:  # a shared study: another host's trial, expected
            log.info("trial %d ran on %s (%s): retraining it here from its parameters and "
                     "seed, with its %s thread(s)", trial.number, origin.get("host"),
                     origin.get("run_dir"), threads or "(unrecorded)")
        else:
            log.warning("no checkpoint %s; retraining it from its parameters and seed",
                        path.name)

    try:
        return restore_models(task, prepared, params, seed, paths, max_epochs, missing,
                              threads)
    except (TrialFailure, RuntimeError, MemoryError, OSError) as err:
        if not isinstance(err, TrialFailure) and not is_oom(err):
            raise
        reason = str(err) if isinstance(err, TrialFailure) else oom_reason(err)
        raise SearchError(f"trial {trial.number}: retraining it for the final model "
                           f"failed ({reason})") from None


def top_trials(study: optuna.Study, k: int) -> list[optuna.trial.FrozenTrial]:
    """The ``k`` best complete trials, best first (fewer if fewer completed).

    Equal values (common with small validation data: many trials score 100%) are
    ranked by the validation loss recorded with them, lower first.
    """
    best_trial(study)  # raises with the reason when there is none
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    sign = -1.0 if study.direction == optuna.study.StudyDirection.MAXIMIZE else 1.0
    return sorted(complete, key=lambda t: (sign * t.value,
                                           t.user_attrs.get("val_loss", float("inf"))))[:k]


def final_model(trials: list[optuna.trial.FrozenTrial], task: Task, prepared: Prepared,
                run_dir: Path, max_epochs: int
                ) -> tuple[Ensemble, list[optuna.trial.FrozenTrial]]:
    """The ensemble of ``trials``' models, in eval mode, and the trials it holds.

    Tasks with ``select_members`` (forecasts, whose trials' errors differ by multiples,
    not by noise) keep the best-first prefix of ``trials`` whose ensemble scores best on
    validation: a poor third member must not drag down a good first one. Otherwise, and
    under cross-validation (no common held-out rows), all ``trials`` are kept.
    """
    models = [trial_models(t, task, prepared, run_dir, max_epochs) for t in trials]
    keep = len(trials)
    if task.select_members and len(trials) > 1 and not prepared.folds:
        sign = 1.0 if task.direction == "maximize" else -1.0
        scores = [sign * task.val_metric(
            predict(Ensemble([m for ms in models[:k] for m in ms], task.combine),
                    prepared.val), prepared.val.y, prepared.state)
            for k in range(1, len(trials) + 1)]
        keep = max(range(len(scores)), key=lambda i: (scores[i], i)) + 1  # ties: more
    members = [m for ms in models[:keep] for m in ms]
    return Ensemble(members, task.combine).eval(), trials[:keep]


def evaluate_test(model: torch.nn.Module, task: Task, prepared: Prepared) -> tuple[dict, Tensor]:
    """Test metrics and the raw outputs (row order of the test split)."""
    outputs = predict(model, prepared.test)
    return task.evaluate(outputs, prepared.test, prepared.state), outputs


def test_predictions(task: Task, prepared: Prepared, outputs: Tensor) -> pd.DataFrame:
    """The test rows with their true values and the model's predictions."""
    return task.prediction_table(outputs, prepared)


def prune_checkpoints(run_dir: Path, keep: list[int], folds: int = 1) -> None:
    """Remove every trial checkpoint but those of the trials in ``keep``."""
    kept = {p for n in keep for p in checkpoint_paths(run_dir, n, folds)}
    for path in (run_dir / "checkpoints").glob("trial-*.safetensors"):
        if path not in kept:
            path.unlink(missing_ok=True)


def baseline_metrics(task: Task, prepared: Prepared, outputs: Tensor, seed: int,
                     model_draws: Draws, refit: bool = False) -> dict | None:
    """The task's baseline on the same test rows (``Task.baseline``): its test metrics
    and their intervals, what validation chose, and the model's difference in the task's
    metric with a paired bootstrap interval (the same resampled rows for both). None when
    the task has no baseline of this kind. ``refit``: the model was refitted on train +
    validation, so the baseline is too. ``model_draws``: the model's own bootstrap draws
    with this seed (``metrics.intervals.resample_scalars``), which its intervals came
    from; the baseline's are drawn on the same resamples and paired with them.
    """
    base = task.baseline(prepared, seed, refit=refit)
    if base is None:
        return None
    def scalars(o: Tensor, d: SequenceData) -> dict:
        return task.scalars(o, d, prepared.state)

    ours_rows, rows = task.bootstrap_rows(outputs, prepared.test, prepared.state)
    base_rows, _ = task.bootstrap_rows(base.test_outputs, prepared.test, prepared.state)
    values = {k: v for k, v in scalars(base_rows, rows).items() if k != "n"}
    metric = task.metric if task.metric in values else next(iter(values))
    shown = [m for m in dict.fromkeys([metric, *task.verdict_metrics]) if m in values]
    block = {"name": base.name, "chosen": base.chosen, "shown": shown, "refit": refit,
             "validation": {task.metric: base.validation, "tried": base.tried},
             "seconds": round(base.seconds, 2), **values}
    theirs = resample_scalars(scalars, base_rows, rows, seed=seed)
    block.update(intervals_of(theirs, len(rows), task.test_unit))
    ours = scalars(ours_rows, rows)[metric]
    block["difference"] = {
        "metric": metric, "model_minus_baseline": ours - values[metric],
        "interval": paired_interval(model_draws, theirs, metric)}
    return block
