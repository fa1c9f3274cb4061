"""Optuna parts by name: samplers, pruners, storages; create or resume a study.

>>> type(make_pruner("median", max_epochs=10)).__name__
'MedianPruner'
>>> storage_url("runs/demo", None)
'sqlite:///runs/demo/study.db'
>>> storage_url("runs/demo", None, workers=2)
'journal:runs/demo/study.journal'

Database URLs work as the README writes them: ``postgresql://`` and ``mysql://`` name no
driver, and ``with_driver`` picks the installed one (``grutune[postgres]`` installs
psycopg, ``grutune[mysql]`` PyMySQL). A URL's password is only ever given to the driver:
every message shows the URL with it hidden (``grutune.urls``), ``config.json`` records it
hidden, and a run whose recorded URL lacks its password is opened again with the URL
given anew (``--storage`` or ``GRUTUNE_STORAGE``).
"""

from __future__ import annotations

import importlib
import random
import time
import warnings
from pathlib import Path

import optuna
from optuna.storages import JournalStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import JournalFileBackend

from grutune.config import PRUNERS, SAMPLERS
from grutune.exceptions import ConfigError
from grutune.search_space import Space
from grutune.urls import hide_password, parse_url, password_hidden, same_database, scrub

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


def saved_storage(run_dir: str | Path, config: dict) -> str | None:
    """The storage URL a run directory's ``config.json`` records (None: the run
    directory's own file); a password in it is hidden."""
    study_cfg = config.get("study") if isinstance(config, dict) else None
    saved = study_cfg.get("storage") if isinstance(study_cfg, dict) else None
    if saved is not None and not isinstance(saved, str):
        raise ConfigError(f"{Path(run_dir) / 'config.json'}: its study storage must be a URL "
                          f"string; got {type(saved).__name__}")
    return saved


def recorded_storage(run_dir: str | Path, config: dict, given: str | None = None) -> str:
    """The storage URL a run directory's ``config.json`` records, for ``report`` and
    ``dashboard``; "" when there is no study to open yet.

    Opening a storage can create a file (an SQLite database, a journal), and a run
    directory may come from someone else: a file storage is opened only when its file
    already exists, so no command that reads a run writes where a config points.

    A recorded URL whose password is hidden cannot connect: ``given`` (``--storage`` or
    ``GRUTUNE_STORAGE``) is then the URL, and must name the recorded database (its
    password and driver may differ). Otherwise ``given`` is not needed and not used.

    >>> recorded_storage("/nonexistent-run", {})
    ''
    >>> recorded_storage("run", {"study": {"storage": "mysql://u:***@h/d"}}, "mysql://u:pw@h/d")
    'mysql://u:pw@h/d'
    """
    saved = saved_storage(run_dir, config)
    if password_hidden(saved):
        return _with_password(run_dir, saved, given)
    url = storage_url(run_dir, saved)
    if url.startswith("journal:"):
        path = url[len("journal:"):]
    elif url.startswith("sqlite:///"):
        path = url[len("sqlite:///"):]
    else:
        return url  # a database server: opening it creates no local file
    # an empty file is no study (opening it would write a new, empty one there)
    return url if path and Path(path).is_file() and Path(path).stat().st_size else ""


def _with_password(run_dir: str | Path, saved: str, given: str | None) -> str:
    """The URL ``given`` for a study recorded as ``saved`` (password hidden)."""
    if not given:
        raise ConfigError(f"{run_dir}: its study is in {saved}, and the run directory does "
                          "not keep the password; give the URL with --storage URL or the "
                          "GRUTUNE_STORAGE environment variable")
    if not same_database(given, saved):
        raise ConfigError(f"--storage {hide_password(given)}: is not the storage {run_dir} "
                          f"records ({saved})")
    return given


def check_storage_given(run_dir: str | Path, saved: str | None, given: str | None) -> None:
    """Refuse to resume a run directory whose study lives in a storage it does not own
    (``--storage`` when it started: a database, a file elsewhere) without that storage:
    the run would silently start a new study in its own file.

    >>> check_storage_given("runs/demo", "sqlite:///runs/demo/study.db", None)
    """
    if saved is None or given is not None:
        return
    own = {storage_url(run_dir, None, workers) for workers in (1, 2)}
    if saved not in own:
        raise ConfigError(f"{run_dir}: its study is in {hide_password(saved)}; give that "
                          "storage again to resume it (--storage URL or the GRUTUNE_STORAGE "
                          "environment variable), or use a new --run-dir")


def check_own_study(run_dir: str | Path, saved: str | None, given: str | None) -> None:
    """Refuse a run directory whose ``config.json`` records a study in its own file
    (``study.db`` or ``study.journal``) that is gone or empty: a re-run would start a new
    study there and silently replace the model and metrics made from the old one, and a
    report would show no search.

    >>> check_own_study("runs/never-made", None, None)
    """
    run_dir = Path(run_dir)
    if saved is not None or given is not None or not (run_dir / "config.json").is_file():
        return
    files = [run_dir / name for name in ("study.db", "study.journal")]
    if not any(f.is_file() and f.stat().st_size > 0 for f in files):
        raise ConfigError(f"{run_dir}: its config.json records a study in the run directory, "
                          "but study.db (or study.journal) is missing or empty; restore it "
                          "to resume or report this run, or use a new --run-dir")


# the drivers tried, in order, for a database URL that names none, as (SQLAlchemy's
# driver name, its module), and the extra that installs the first
DRIVERS = {"postgresql": (("psycopg", "psycopg"), ("psycopg2", "psycopg2")),
           "mysql": (("pymysql", "pymysql"), ("mysqldb", "MySQLdb"))}
EXTRAS = {"postgresql": "postgres", "mysql": "mysql"}
SCHEMES = ("sqlite", "postgresql", "mysql")


def _importable(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ImportError:  # absent, or present without what it needs (psycopg's libpq)
        return False
    return True


def with_driver(url: str) -> str:
    """``url`` with the driver that is installed: a ``postgresql://`` or ``mysql://`` URL
    that names none gets the first of ``DRIVERS`` that imports (SQLAlchemy's own default,
    psycopg or mysqlclient, may be missing); a URL that names one, or SQLite's, is kept.

    >>> with_driver("sqlite:///runs/demo/study.db")
    'sqlite:///runs/demo/study.db'
    """
    parsed = parse_url(url)
    backend = parsed.get_backend_name() if parsed is not None else None
    if backend not in DRIVERS or "+" in parsed.drivername:
        return url
    for driver, module in DRIVERS[backend]:
        if _importable(module):
            return parsed.set(drivername=f"{backend}+{driver}").render_as_string(
                hide_password=False)
    names = " or ".join(module for _, module in DRIVERS[backend])
    raise ConfigError(f"--storage {hide_password(url)}: no {backend} driver is installed "
                      f"({names}); pip install 'grutune[{EXTRAS[backend]}]'")


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
    parsed = parse_url(url)
    scheme = parsed.get_backend_name() if parsed is not None else None
    shown = hide_password(url)
    if scheme not in SCHEMES:
        raise ConfigError(f"--storage: unknown storage {shown!r}; use sqlite:///FILE, "
                          "postgresql://HOST/DB, mysql://HOST/DB or journal:FILE")
    driven = with_driver(url)
    try:
        return _rdb_storage(driven, scheme, heartbeat_s, grace_s)
    except ImportError as err:  # a driver the URL names (postgresql+psycopg2://)
        extra = (f", or write {scheme}:// without +DRIVER to use the one pip install "
                 f"'grutune[{EXTRAS[scheme]}]' installs" if scheme in EXTRAS else "")
        raise ConfigError(f"--storage {shown}: its driver is not installed "
                          f"({scrub(str(err), url)}); pip install it{extra}") from None
    except Exception as err:  # SQLAlchemy's connection and URL errors
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"--storage: cannot open {shown!r} ({scrub(first, url)})") from None


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
    to it the way Optuna's heartbeat retries are (``RetryHeartbeatStaleTrialCallback``,
    named ``RetryFailedTrialCallback`` before Optuna 4.9, which deprecated that name)."""
    RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY, inherit_intermediate_values=False)(
        study, trial)


def open_study(name: str, storage: optuna.storages.BaseStorage, direction: str,
               sampler: optuna.samplers.BaseSampler, pruner: optuna.pruners.BasePruner,
               create: bool = True) -> tuple[optuna.Study, bool]:
    """Create the study, or load it with every finished trial when it exists; (study,
    created). Creation is atomic in every storage (a unique name in a database, the
    journal's order in a file), so of several hosts starting a new shared study together
    exactly one gets ``created``. ``create=False``: load only (``grutune finalize``), a
    ConfigError when there is no such study."""
    created = False
    if create:
        try:
            study = optuna.create_study(study_name=name, storage=storage, sampler=sampler,
                                        pruner=pruner, direction=direction)
            created = True
        except optuna.exceptions.DuplicatedStudyError:
            pass
    if not created:
        try:
            study = optuna.load_study(study_name=name, storage=storage, sampler=sampler,
                                      pruner=pruner)
        except KeyError:
            raise ConfigError(f"--study {name}: no such study in this storage; nothing to "
                              "finalize (run grutune tune first)") from None
    if study.direction.name.lower() != direction:
        raise ConfigError(f"--study {name}: the stored study {study.direction.name.lower()}s "
                          f"its metric; this run would {direction} it (use another --study)")
    return study, created
