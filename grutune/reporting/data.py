"""The numbers behind every figure of the report: plain functions, tested on values.

``report.py`` only draws what these return. Inputs are what a run directory holds: the
Optuna study (its storage), ``metrics.json``, ``split.json``'s summary and
``test_predictions.csv``; any of them may be missing while a study still runs.

>>> best_range_text("lr", [(1e-3, 0.9), (2e-3, 0.95), (4e-3, 0.94), (3e-2, 0.2)], True)
'best trials had lr between 0.002 and 0.004; lr above 0.004 scored at most 0.2'
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import optuna
import pandas as pd

from grutune.exceptions import ConfigError
from grutune.tuning.study import FINISHED, make_storage, recorded_storage, trial_score


@dataclass
class RunFiles:
    """What a run directory holds (None / empty where not written yet)."""

    run_dir: Path
    study: optuna.Study | None
    metrics: dict | None
    config: dict = field(default_factory=dict)
    summary: dict = field(default_factory=dict)
    predictions: pd.DataFrame | None = None


def read_run(run_dir: str | Path, storage: str | None = None) -> RunFiles:
    """Open a run directory's study (read as it is now) and its files. ``storage``: the
    study's URL where ``config.json`` records it without its password."""
    run_dir = Path(run_dir)
    config = read_json(run_dir / "config.json") or {}
    study_cfg = config.get("study") if isinstance(config.get("study"), dict) else {}
    storage = recorded_storage(run_dir, config, storage)
    study = None
    if storage:
        names = optuna.study.get_all_study_names(make_storage(storage))
        name = study_cfg.get("study_name")
        if name in names or (names and name is None):
            study = optuna.load_study(study_name=name or names[0], storage=make_storage(storage))
    split = read_json(run_dir / "split.json") or {}
    predictions = (pd.read_csv(run_dir / "test_predictions.csv")
                   if (run_dir / "test_predictions.csv").exists() else None)
    return RunFiles(run_dir, study, read_json(run_dir / "metrics.json"), config,
                    split.get("summary", {}), predictions)


def read_compare(run_dir: str | Path) -> dict:
    """A ``grutune compare`` directory's ``compare.json``."""
    path = Path(run_dir) / "compare.json"
    record = read_json(path)
    if record is None:
        raise ConfigError(f"{run_dir}: no compare.json (not a finished grutune compare run)")
    return record


def read_json(path: Path) -> dict | None:
    """A run file's JSON object; None when absent; ConfigError when it is no JSON object."""
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as err:
        raise ConfigError(f"{path}: not a readable JSON file ({str(err)[:80]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def maximize(study: optuna.Study) -> bool:
    return study.direction == optuna.study.StudyDirection.MAXIMIZE


def trial_counts(study: optuna.Study) -> dict[str, int]:
    """Trials by state, e.g. {"complete": 12, "pruned": 5, "fail": 0, "running": 1}."""
    counts = {"complete": 0, "pruned": 0, "fail": 0, "running": 0}
    for t in study.get_trials(deepcopy=False):
        key = t.state.name.lower()
        counts[key] = counts.get(key, 0) + 1
    return counts


def history(study: optuna.Study) -> pd.DataFrame:
    """Finished trials in order: number, state, score, the running best of complete ones."""
    rows, best = [], None
    better = max if maximize(study) else min
    for t in study.get_trials(deepcopy=False, states=FINISHED):
        score = trial_score(t)
        if t.state == optuna.trial.TrialState.COMPLETE and score is not None:
            best = score if best is None else better(best, score)
        rows.append({"number": t.number, "state": t.state.name.lower(), "score": score,
                     "best": best})
    return pd.DataFrame(rows, columns=["number", "state", "score", "best"])


IMPORTANCE_RESAMPLES = 20  # bootstrap resamples of the trials behind each importance
IMPORTANCE_TREES = 16  # fANOVA trees per resample (320 in all: Optuna's default is 64)


@dataclass(frozen=True)
class Importance:
    """A parameter's fANOVA share of the validation metric's variance: the mean over
    bootstrap resamples of the complete trials, and the middle 90% of those resamples."""

    share: float
    low: float
    high: float


def importances(study: optuna.Study, seed: int = 0,
                resamples: int = IMPORTANCE_RESAMPLES) -> dict[str, Importance]:
    """fANOVA importance of each parameter (shares sum to 1), most important first; empty
    when fewer than three complete trials or nothing varied.

    One fANOVA on a few dozen trials is a guess: on a 17-trial bbc-news study its top
    factor changed with the forest's seed alone, and every rank moved when the trials
    were resampled. So each share is averaged over ``resamples`` bootstrap resamples of
    the trials (each its own forest), and ``low``/``high`` say how far it moved.

    >>> from optuna.distributions import FloatDistribution
    >>> study = optuna.create_study(direction="maximize")
    >>> for i in range(12):
    ...     study.add_trial(optuna.trial.create_trial(
    ...         params={"lr": 10 ** (-4 + i / 4), "dropout": (i % 3) / 10},
    ...         distributions={"lr": FloatDistribution(1e-4, 1.0, log=True),
    ...                        "dropout": FloatDistribution(0.0, 0.5)}, value=-abs(i - 6)))
    >>> scores = importances(study)
    >>> list(scores), scores["lr"].low <= scores["lr"].share <= scores["lr"].high
    (['lr', 'dropout'], True)
    """
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if len(complete) < 3:
        return {}
    params = sorted(optuna.search_space.intersection_search_space(complete))
    if not params:
        return {}
    rng = np.random.default_rng(seed)
    draws: list[dict[str, float]] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        verbosity = optuna.logging.get_verbosity()
        optuna.logging.set_verbosity(optuna.logging.ERROR)  # no "new study" per resample
        try:
            for r in range(resamples):
                sample = optuna.create_study(direction=study.direction)
                sample.add_trials([complete[i] for i in rng.integers(0, len(complete),
                                                                     len(complete))])
                evaluator = optuna.importance.FanovaImportanceEvaluator(
                    n_trees=IMPORTANCE_TREES, seed=seed + r)
                try:
                    draws.append(optuna.importance.get_param_importances(
                        sample, evaluator=evaluator, params=params))
                except (RuntimeError, ValueError):  # e.g. one distinct value in a resample
                    continue
        finally:
            optuna.logging.set_verbosity(verbosity)
    if not draws:
        return {}
    table = pd.DataFrame(draws, columns=params).fillna(0.0)  # [resamples, params]
    low, high = table.quantile(0.05), table.quantile(0.95)
    shares = table.mean().sort_values(ascending=False, kind="stable")
    return {name: Importance(float(v), min(float(low[name]), float(v)),
                             max(float(high[name]), float(v)))
            for name, v in shares.items()}


def importance_note(scores: dict[str, Importance], complete: int) -> str:
    """What the importance bars can and cannot tell, in words: which factors (at most
    three, best first) stand apart, i.e. whose lowest resampled share is above every
    other factor's mean share.

    >>> importance_note({"lr": Importance(0.6, 0.4, 0.8), "dropout": Importance(0.3, 0.1, 0.5),
    ...                  "init": Importance(0.1, 0.0, 0.3)}, 40).split(". ")[-1]
    'lr stands apart from the rest.'
    """
    text = (f"From {complete} complete trials: each bar is the mean share over "
            f"{IMPORTANCE_RESAMPLES} bootstrap resamples of the trials, its line the middle "
            "90% of the resamples. ")
    names = list(scores)
    for k in range(1, min(3, len(names) - 1) + 1):
        rest = max(scores[n].share for n in names[k:])
        if min(scores[n].low for n in names[:k]) > rest:
            lead = ", ".join(names[:k])
            return text + f"{lead} {'stands' if k == 1 else 'stand'} apart from the rest."
    return text + ("No factor stands apart: the lines overlap, so the order is a hint; "
                   "more trials would tell them apart.")


def slice_points(study: optuna.Study, param: str) -> pd.DataFrame:
    """Every finished trial that set ``param``: number, value of param, score, state."""
    rows = []
    for t in study.get_trials(deepcopy=False, states=FINISHED):
        score = trial_score(t)
        if param in t.params and score is not None:
            rows.append({"number": t.number, "value": t.params[param], "score": score,
                         "state": t.state.name.lower()})
    return pd.DataFrame(rows, columns=["number", "value", "score", "state"])


def best_range_text(param: str, points: list[tuple], higher_is_better: bool,
                    top: float = 0.25) -> str:
    """The range of ``param`` among the best trials, in words.

    ``points``: (value, score) of finished trials. The best quarter (at least two) of
    trials define the range; for a numeric parameter, values beyond it are described by
    the best score they reached (often how a too-high learning rate diverged).
    """
    if not points:
        return f"no finished trial set {param}"
    ranked = sorted(points, key=lambda p: p[1], reverse=higher_is_better)
    best = ranked[: max(2, math.ceil(top * len(ranked)))]
    values = [v for v, _ in best]
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v, _ in points):
        low, high = min(values), max(values)
        text = f"best trials had {param} between {_num(low)} and {_num(high)}"
        above = [s for v, s in points if v > high]
        if above:
            worst = max(above) if higher_is_better else min(above)
            text += f"; {param} above {_num(high)} scored at most {_num(worst)}"
        return text
    counts = pd.Series([str(v) for v in values]).value_counts()
    return (f"best trials had {param} = {counts.index[0]} ({counts.iloc[0]} of "
            f"{len(values)})")


def _num(x: float) -> str:
    return f"{x:.3g}"


def curves(trial: optuna.trial.FrozenTrial) -> pd.DataFrame:
    """A trial's per-epoch log: epoch, train_loss, val_loss, val_metric, lr, seconds."""
    return pd.DataFrame(trial.user_attrs.get("history", []))


def intermediate(study: optuna.Study) -> list[dict]:
    """Each finished trial's validation curve: number, state, steps, values."""
    out = []
    for t in study.get_trials(deepcopy=False, states=FINISHED):
        steps = sorted(t.intermediate_values)
        out.append({"number": t.number, "state": t.state.name.lower(), "steps": steps,
                    "values": [t.intermediate_values[s] for s in steps]})
    return out


