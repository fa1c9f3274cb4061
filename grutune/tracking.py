"""Log a finished study to MLflow (``--mlflow URI``), with MLflow's own API.

One parent run per ``grutune tune`` (data, task, test metrics, and the run directory's
``model/`` bundle, ``metrics.json``, ``trials.csv`` and ``report.html`` as artifacts)
and one nested run per trial: its parameters, state, value and its per-epoch curves
(training loss, validation loss, validation metric, learning rate; step = epoch). The
trials are logged when the search ends, from the study, so trials run by parallel
workers or resumed runs are logged exactly once.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import optuna

from grutune.exceptions import ConfigError

CURVES = ("train_loss", "val_loss", "val_metric", "lr")


def require_mlflow() -> None:
    """ConfigError now, before a study starts, when MLflow is not installed."""
    try:
        import mlflow  # noqa: F401
    except ImportError:
        raise ConfigError("--mlflow: MLflow is not installed; pip install "
                          "'grutune[mlflow]'") from None


def log_study(uri: str, study: optuna.Study, run_dir: Path, metrics: dict,
              data: dict) -> str:
    """Log ``study`` and the run's results to the tracking server at ``uri``; the parent
    run's id."""
    import mlflow

    if uri.startswith("file:") or "://" not in uri:  # asked for a local file store: allow
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # it (MLflow 3 opts out)
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(f"grutune-{study.study_name}")
    with mlflow.start_run(run_name=study.study_name) as parent:
        mlflow.set_tags({"grutune.task": metrics.get("task", ""),
                         "grutune.run_dir": str(run_dir)})
        mlflow.log_params({f"data.{k}": v for k, v in data.items() if v is not None})
        mlflow.log_metrics({f"test.{k}": float(v) for k, v in metrics.items()
                            if isinstance(v, (int, float)) and not isinstance(v, bool)
                            and math.isfinite(v)})
        mlflow.log_artifacts(str(run_dir / "model"), artifact_path="model")
        for name in ("metrics.json", "trials.csv", "report.html"):
            if (run_dir / name).exists():
                mlflow.log_artifact(str(run_dir / name))
        for trial in study.get_trials(deepcopy=False):
            _log_trial(mlflow, trial)
        return parent.info.run_id


def _log_trial(mlflow, trial: optuna.trial.FrozenTrial) -> None:
    params = trial.user_attrs.get("config", trial.params)
    inactive = set(trial.user_attrs.get("inactive", []))
    with mlflow.start_run(run_name=f"trial {trial.number}", nested=True):
        mlflow.set_tags({"optuna.trial": trial.number, "optuna.state": trial.state.name,
                         "grutune.stopped": trial.user_attrs.get("stopped", ""),
                         "grutune.fail_reason": trial.user_attrs.get("fail_reason", "")})
        mlflow.log_params({k: v for k, v in params.items() if k not in inactive})
        if trial.value is not None:
            mlflow.log_metric("value", trial.value)
        for epoch in trial.user_attrs.get("history", []):
            mlflow.log_metrics({k: float(epoch[k]) for k in CURVES
                                if k in epoch and math.isfinite(epoch[k])},
                               step=int(epoch["epoch"]))
