"""Optuna parts by name: samplers, pruners, storages; create or resume a study.

>>> type(make_pruner("median", max_epochs=10)).__name__
'MedianPruner'
>>> storage_url("runs/demo", None)
'sqlite:///runs/demo/study.db'
>>> storage_url("runs/demo", None, workers=2)
'journal:runs/demo/study.journal'
"""

from __future__ import annotations

import random
import time
import warnings
from pathlib import Path

import optuna
from optuna.storages import (
    JournalStorage,
    RDBStorage,
    RetryFailedTrialCallback,
    RetryHeartbeatStaleTrialCallback,
)
from optuna.storages.journal import JournalFileBackend

from grutune.config import PRUNERS, SAMPLERS
from grutune.exceptions import ConfigError
from grutune.search_space import Space

# trials that ran to an end a study can use: complete, or pruned with a partial curve
FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


def trial_score(trial: optuna.trial.FrozenTrial) -> float | None:
    """A trial's value; a pruned trial's last reported value; None otherwise."""
    if trial.state == optuna.trial.TrialState.COMPLETE:
        return trial.value
    if trial.state == optuna.trial.TrialState.PRUNED and trial.intermediate_values:
        return trial.intermediate_values[max(trial.intermediate_values)]
    return None


# group=True, heartbeats and the retry callback are marked experimental; we rely on them
# knowingly and keep the terminal free of the notice.
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)

HEARTBEAT_S = 30  # a running trial's worker writes a heartbeat this often
GRACE_S = 120  # a trial silent this long is failed (and retried) by the next worker
MAX_RETRY = 2  # a failed-by-heartbeat trial is re-run at most this many times
WARMUP_EPOCHS = 2  # pruners never stop a trial before this many epochs
STARTUP_TRIALS = 5  # trials before the pruner and TPE act on history


def make_sampler(name: str, seed: int, space: Space) -> optuna.samplers.BaseSampler:
    """The sampler called ``name``, seeded."""
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True,
                                          n_startup_trials=STARTUP_TRIALS)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "grid":
        return optuna.samplers.GridSampler(space.grid(), seed=seed)
    if name == "cmaes":
        # CMA-ES handles numbers only; categorical parameters fall back to random.
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    if name == "qmc":
        return optuna.samplers.QMCSampler(seed=seed, scramble=True,
                                          warn_independent_sampling=False)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=STARTUP_TRIALS,
                                         warn_independent_sampling=False)
    raise ConfigError(f"--sampler: must be one of {', '.join(SAMPLERS)}; got {name!r}")


def make_pruner(name: str, max_epochs: int) -> optuna.pruners.BasePruner:
    """The pruner called ``name``; it sees the validation metric after every epoch."""
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=STARTUP_TRIALS,
                                           n_warmup_steps=WARMUP_EPOCHS)
    if name == "percentile":
        return optuna.pruners.PercentilePruner(25.0, n_startup_trials=STARTUP_TRIALS,
                                               n_warmup_steps=WARMUP_EPOCHS)
    if name == "asha":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=WARMUP_EPOCHS)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=WARMUP_EPOCHS,
                                              max_resource=max(max_epochs, WARMUP_EPOCHS + 1))
    if name == "none":
        return optuna.pruners.NopPruner()
    raise ConfigError(f"--pruner: must be one of {', '.join(PRUNERS)}; got {name!r}")


def storage_url(run_dir: str | Path, storage: str | None, workers: int = 1) -> str:
    """The storage URL: the user's, else a file in the run directory.

    One worker: SQLite (``study.db``). Several local workers: Optuna's journal file
    (``study.journal``), made for several processes on one machine. A run directory
    that already holds one of them keeps it, so a study resumes whatever ``--workers``.
    """
    if storage:
        return storage
    run_dir = Path(run_dir)
    sqlite, journal = run_dir / "study.db", run_dir / "study.journal"
    if journal.exists() or (workers > 1 and not sqlite.exists()):
        return f"journal:{journal.as_posix()}"
    return f"sqlite:///{sqlite.as_posix()}"


def recorded_storage(run_dir: str | Path, config: dict) -> str:
    """The storage URL a run directory's ``config.json`` records, for ``report`` and
    ``dashboard``; "" when there is no study to open yet.

    Opening a storage can create a file (an SQLite database, a journal), and a run
    directory may come from someone else: a file storage is opened only when its file
    already exists, so no command that reads a run writes where a config points.

    >>> recorded_storage("/nonexistent-run", {})
    ''
    """
    study_cfg = config.get("study") if isinstance(config, dict) else None
    saved = study_cfg.get("storage") if isinstance(study_cfg, dict) else None
    if saved is not None and not isinstance(saved, str):
        raise ConfigError(f"{Path(run_dir) / 'config.json'}: its study storage must be a URL "
                          f"string; got {type(saved).__name__}")
    url = storage_url(run_dir, saved)
    if url.startswith("journal:"):
        path = url[len("journal:"):]
    elif url.startswith("sqlite:///"):
        path = url[len("sqlite:///"):]
    else:
        return url  # a database server: opening it creates no local file
    return url if path and Path(path).is_file() else ""


def make_storage(url: str, heartbeat_s: int = HEARTBEAT_S,
                 grace_s: int = GRACE_S) -> optuna.storages.BaseStorage:
    """An Optuna storage for ``url``: sqlite/postgresql/mysql (with heartbeats every
    ``heartbeat_s``; a trial silent for ``grace_s`` is failed and retried) or journal."""
    if url.startswith("journal:"):
        path = url[len("journal:"):]
        if not path:
            raise ConfigError("--storage: journal storage needs a file: journal:PATH")
        if Path(path).is_dir():
            raise ConfigError(f"--storage: {path} is a directory; journal:PATH needs a file "
                              "path (made if missing)")
        if not Path(path).parent.is_dir():
            raise ConfigError(f"--storage: {path}: its folder {Path(path).parent} does not "
                              "exist")
        try:
            return JournalStorage(JournalFileBackend(path))
        except OSError as err:
            raise ConfigError(f"--storage: cannot open journal file {path} "
                              f"({err.strerror or err})") from None
    scheme = url.split(":", 1)[0].split("+", 1)[0]
    if scheme not in ("sqlite", "postgresql", "mysql"):
        raise ConfigError(f"--storage: unknown storage {url!r}; use sqlite:///FILE, "
                          "postgresql://HOST/DB, mysql://HOST/DB or journal:FILE")
    try:
        return _rdb_storage(url, scheme, heartbeat_s, grace_s)
    except ImportError as err:
        raise ConfigError(f"--storage: the driver for {scheme} is not installed ({err}); "
                          "pip install 'grutune[postgres]'") from None
    except Exception as err:  # SQLAlchemy's connection and URL errors
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"--storage: cannot open {url!r} ({first})") from None


def _rdb_storage(url: str, scheme: str, heartbeat_s: int, grace_s: int,
                 attempts: int = 5) -> RDBStorage:
    """RDBStorage; when several workers create a new database's tables at the same moment
    one of them loses the race (a duplicate-key error from the server): it tries again."""
    for attempt in range(attempts):
        try:
            return RDBStorage(
                url, heartbeat_interval=heartbeat_s, grace_period=grace_s,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(
                    max_retry=MAX_RETRY),
                engine_kwargs={"pool_pre_ping": True} if scheme != "sqlite" else None)
        except Exception as err:  # SQLAlchemy's IntegrityError / ProgrammingError
            racing = any(s in str(err).lower() for s in ("duplicate key", "already exists"))
            if not racing or attempt == attempts - 1:
                raise
            time.sleep(0.5 + random.random())
    raise AssertionError("unreachable")


def retry_failed(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    """Enqueue ``trial``'s parameters again (at most MAX_RETRY times along one chain), linked
    to it the way Optuna's heartbeat retries are (``RetryFailedTrialCallback``)."""
    RetryFailedTrialCallback(max_retry=MAX_RETRY, inherit_intermediate_values=False)(
        study, trial)


def open_study(name: str, storage: optuna.storages.BaseStorage, direction: str,
               sampler: optuna.samplers.BaseSampler,
               pruner: optuna.pruners.BasePruner) -> optuna.Study:
    """Create the study, or load it with every finished trial when it exists."""
    study = optuna.create_study(study_name=name, storage=storage, sampler=sampler,
                                pruner=pruner, direction=direction, load_if_exists=True)
    if study.direction.name.lower() != direction:
        raise ConfigError(f"--study {name}: the stored study {study.direction.name.lower()}s "
                          f"its metric; this run would {direction} it (use another --study)")
    return study
