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


def importances(study: optuna.Study, seed: int = 0) -> dict[str, float]:
    """fANOVA importance of each parameter (sums to 1), most important first; empty when
    fewer than three complete trials or nothing varied."""
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if len(complete) < 3:
        return {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = optuna.importance.get_param_importances(
                study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=seed))
    except (RuntimeError, ValueError):  # e.g. a single distinct value everywhere
        return {}
    return dict(result)


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


