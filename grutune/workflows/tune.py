"""The whole job: prepare -> search -> evaluate on test -> bundle -> report.

Nothing is written before the data and configuration have passed every check, so bad
input never leaves a half-made run directory. Re-running the same command resumes: the
split comes from ``split.json`` and the study keeps every finished trial.

>>> from grutune.config import DataConfig, StudyConfig
>>> callable(tune)
True
"""

from __future__ import annotations

import datetime
import json
import logging
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import optuna
import torch
from rich.console import Console

from grutune import __version__, compat
from grutune.bundle import save_bundle
from grutune.config import (
    DEFAULT_DATASET,
    DEFAULT_TASK,
    DataConfig,
    StudyConfig,
    default_study_name,
    to_dict,
)
from grutune.data.cache import fingerprint
from grutune.data.datasets import get_dataset
from grutune.data.folds import CV_BELOW, make_folds, resolve_folds
from grutune.exceptions import ConfigError
from grutune.files import atomic_path, write_json
from grutune.metrics.intervals import intervals_of, resample_scalars
from grutune.nn.device import describe, placed
from grutune.nn.model import Ensemble, SequenceModel
from grutune.nn.recurrence import cpu_kernel
from grutune.nn.trainer import predict
from grutune.render import baseline_table, format_seconds
from grutune.reporting.tables import plan_text, print_result, repeats_table, trials_frame
from grutune.search_space import Space, load_space
from grutune.tasks import Prepared, Task, check_task_options, get_task
from grutune.tuning.evaluate import (
    baseline_metrics,
    evaluate_test,
    final_model,
    prune_checkpoints,
    test_predictions,
    top_trials,
)
from grutune.tuning.hosts import (
    Host,
    check_identity,
    claim_finalization,
    finished,
    new_run_id,
    origin_of,
    problem_identity,
    wait_for_hosts,
)
from grutune.tuning.lint import lint
from grutune.tuning.refit import refit_models, refit_skip_reason
from grutune.tuning.repeats import REPEAT_SHARE, choose, plan, repeat
from grutune.tuning.search import room_left, search
from grutune.tuning.study import (
    FINISHED,
    check_own_study,
    check_storage_given,
    make_pruner,
    make_sampler,
    make_storage,
    open_study,
    retry_failed,
    saved_storage,
    storage_url,
)
from grutune.urls import hidden_argv, hide_password, scrub
from grutune.workflows.predict import write_predictions

log = logging.getLogger("grutune")

SPLIT_FORMAT = 1
# DataConfig fields that change the prepared data; a resumed study must repeat them.
_PREP_FIELDS = ("dataset", "task", "text_column", "target_column", "id_column",
                "time_column", "covariates", "horizon", "season", "scaling", "sample", "seed",
                "stop_words", "stem", "min_count", "max_vocab", "max_len", "len_percentile",
                "val_fraction", "test_fraction")


@dataclass
class TuneResult:
    run_dir: Path
    best_value: float
    best_params: dict
    metrics: dict  # metrics.json ({} when this run did not finalize)
    interrupted: bool
    finalized: bool = True  # False: this run searched only (the model is another's)
    finalizer: dict | None = None  # who finalizes the study, when another run does


def _check_resume(saved: dict, data_cfg: DataConfig, run_dir: Path) -> None:
    old, new = saved.get("data_config", {}), to_dict(data_cfg)
    for key in _PREP_FIELDS:
        if old.get(key) != new.get(key):
            raise ConfigError(f"{run_dir}: this study's data was prepared with {key}="
                              f"{old.get(key)!r}, this command asks for {key}={new.get(key)!r}; "
                              "repeat the original options to resume, or use a new --study "
                              "or --run-dir")


def _read_saved_split(run_dir: Path, data_cfg: DataConfig) -> dict | None:
    path = run_dir / "split.json"
    if not path.is_file():
        return None
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
        saved["split"]["train"], saved["split"]["test"]  # noqa: B018 - shape check
    except (ValueError, KeyError, TypeError):
        raise ConfigError(f"{path}: corrupted split file; move the run directory "
                          "aside to start a new study") from None
    _check_resume(saved, data_cfg, run_dir)
    return saved


INPUT = "input"  # a run directory's copy of in-memory data (grutune.tune(DataFrame))
RUN_MARKERS = ("config.json", "split.json", "study.db", "study.journal", INPUT)


def check_run_dir(run_dir: Path, markers: tuple[str, ...] = RUN_MARKERS) -> None:
    """Refuse a run directory that exists, holds files and is not a grutune run (``/``,
    a home folder, a source tree): grutune would fill it with its files."""
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"--run-dir {run_dir}: exists and is not a directory")
    if not run_dir.is_dir() or any(name in markers for name in _entries(run_dir)):
        return
    if _entries(run_dir):
        raise ConfigError(f"--run-dir {run_dir}: an existing directory that is not a grutune "
                          f"run (it holds other files and none of {', '.join(markers)}); "
                          "give a new or empty directory")


def require_run_dir(run_dir: Path) -> None:
    """Refuse a path that is not an existing tune run directory (``report``,
    ``dashboard``: they read a run, never make one)."""
    if not run_dir.is_dir():
        raise ConfigError(f"{run_dir}: no such directory (give a run directory, runs/STUDY)")
    if not (run_dir / "config.json").is_file():
        raise ConfigError(f"{run_dir}: not a grutune run directory (no config.json)")


def _entries(directory: Path) -> list[str]:
    try:
        return [entry.name for entry in directory.iterdir()]
    except OSError as err:
        raise ConfigError(f"--run-dir {directory}: cannot read it ({err.strerror})") from None


def _make_run_dir(run_dir: Path) -> bool:
    """Create the run directory; True if it is new. ConfigError when it cannot be made."""
    check_run_dir(run_dir)
    existed = run_dir.is_dir()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise ConfigError(f"--run-dir {run_dir}: cannot write there ({err.strerror})") from None
    return not existed


def file_logging(run_dir: Path) -> logging.Handler:
    handler = logging.FileHandler(run_dir / "tune.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(min(log.getEffectiveLevel(), logging.INFO))  # DEBUG stays (grutune -v)
    return handler


def setup(data_cfg: DataConfig, study_cfg: StudyConfig, task: Task, space: Space,
          console: Console, prepared: Prepared | None = None,
          ) -> tuple[Prepared, optuna.Study, bool]:
    """Every check, then the run directory, split.json and the study. (prepared, study, new).

    ``prepared``: data another study of the same run already prepared (``compare``), so
    both studies share one split; its split must match a saved one.
    """
    run_dir = Path(study_cfg.run_dir)
    check_run_dir(run_dir)
    recorded = _recorded_storage(run_dir)
    check_storage_given(run_dir, recorded, study_cfg.storage)
    check_own_study(run_dir, recorded, study_cfg.storage)
    sampler = make_sampler(study_cfg.sampler, study_cfg.seed, space)
    saved = _read_saved_split(run_dir, data_cfg)
    if prepared is not None and saved and saved["split"] != prepared.split:
        raise ConfigError(f"{run_dir}: its split.json differs from this run's split; move "
                          "the directory aside")
    if prepared is None:
        with console.status("preparing data"):
            prepared = task.prepare(data_cfg, saved["split"] if saved else None, space)
    if not task.uses_folds and (study_cfg.folds or 1) > 1:
        raise ConfigError(f"--folds: a {task.name} study validates on the period after "
                          "training (shuffled folds would train on the future); use --folds 1")
    folds = resolve_folds(study_cfg.folds if task.uses_folds else 1,
                          len(prepared.train) + len(prepared.val))
    if folds > 1:
        prepared.folds = make_folds(prepared.train, prepared.val, folds, data_cfg.seed)
    prepared.summary["folds"] = folds
    if folds > 1 and study_cfg.folds is None:  # chosen for the user: the plan says why
        prepared.summary["folds_chosen"] = {"below": CV_BELOW, "sample": data_cfg.sample}
    # under cross-validation the pruner's steps are folds, not epochs
    pruner = make_pruner(study_cfg.pruner, folds if folds > 1 else study_cfg.max_epochs)
    state_fp = fingerprint(prepared.state)
    if saved and saved.get("state_fingerprint") != state_fp:
        raise ConfigError(f"{run_dir}: the prepared data (vocabulary, labels or maximum "
                          "length) differs from the study's; repeat the original options "
                          "or use a new --study")
    identity = problem_identity(task, prepared, data_cfg, study_cfg, space)
    created = _make_run_dir(run_dir)
    try:
        url = storage_url(run_dir, study_cfg.storage, study_cfg.workers)
        storage = make_storage(url, study_cfg.heartbeat_s, study_cfg.grace_s)
        study, made = open_study(study_cfg.study_name, storage, task.direction, sampler,
                                 pruner, create=study_cfg.search)
        check_identity(study, identity, made, hide_password(url))
    except Exception:
        if created:
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    if not prepared.pretrained:  # after the checks: a refused host trains nothing
        with console.status("pretraining (training split only)"):
            task.pretrain(prepared, space, data_cfg.seed)
    if saved is None:
        write_json(run_dir / "split.json", {
            "format": SPLIT_FORMAT, "data_config": to_dict(data_cfg), "split": prepared.split,
            "state_fingerprint": state_fp, "summary": prepared.summary})
    write_json(run_dir / "config.json", {
        "run_id": _recorded_run_id(run_dir) or new_run_id(),
        "grutune_version": __version__, "torch_version": torch.__version__,
        "optuna_version": optuna.__version__, "python": sys.version.split()[0],
        "command": hidden_argv(sys.argv), "data": to_dict(data_cfg),
        "study": study_cfg.public_dict(),
        "metric": getattr(task, "metric", None), "space": space.describe()})
    if study_cfg.storage is None:
        fail_left_running(study)
    return prepared, study, not study.trials


def _recorded_config(run_dir: Path) -> dict:
    """An earlier run's ``config.json`` ({} when absent or unreadable: it is written
    again)."""
    try:
        config = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return config if isinstance(config, dict) else {}


def _recorded_run_id(run_dir: Path) -> str | None:
    """The id ``config.json`` gives this run directory (None: none yet). It names the run
    in a shared study (its host record, the finalization claim) and survives resumes."""
    run_id = _recorded_config(run_dir).get("run_id")
    return run_id if isinstance(run_id, str) and run_id else None


def _recorded_storage(run_dir: Path) -> str | None:
    """The storage an earlier run's ``config.json`` records (None: none, or no readable
    record)."""
    try:
        return saved_storage(run_dir, _recorded_config(run_dir))
    except ValueError:  # ConfigError: a record that is no storage URL
        return None


def fail_left_running(study: optuna.Study) -> None:
    """Mark trials a killed earlier run left RUNNING as failed and enqueue each again
    (the run directory's own storage only: nothing else works on it; shared storages
    rely on heartbeats, which fail and retry the same way)."""
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        retry_failed(study, compat.fail_trial(study, t, "left running by a killed run"))
        log.warning("trial %d was left running by a killed run; marked failed and queued "
                    "again", t.number)


def _finished(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED))


def resolve(data_cfg: DataConfig | None = None, study_cfg: StudyConfig | None = None,
            prefix: str = "") -> tuple[DataConfig, StudyConfig]:
    """Every default the configs leave open, filled the one way the CLI and Python share:
    the data (DEFAULT_DATASET), the task (the dataset's, else DEFAULT_TASK), the study name (from
    the data's name; ``prefix`` for compare), the run directory (runs/STUDY), the epochs
    (the task's ``default_max_epochs``), the device (``auto``: a CUDA GPU, else mps, else
    the CPU; one asked for but absent is a ConfigError) and the workers (one per core
    where workers can be forked, else one: ``usable_workers``; on CUDA one per visible
    GPU: ``device.gpu_workers``).

    >>> data, study = resolve(DataConfig(dataset="sunspots"))
    >>> data.task, study.study_name, study.run_dir, study.max_epochs
    ('forecast', 'sunspots', 'runs/sunspots', 60)
    """
    from grutune.nn.device import gpu_workers, resolve_device
    from grutune.tuning.workers import usable_workers

    data_cfg, study_cfg = data_cfg or DataConfig(), study_cfg or StudyConfig()
    device = resolve_device(study_cfg.device, study_cfg.precision)
    if data_cfg.path is None and data_cfg.dataset is None:
        data_cfg = replace(data_cfg, dataset=DEFAULT_DATASET)
    if data_cfg.task is None:
        task = get_dataset(data_cfg.dataset).task if data_cfg.dataset else DEFAULT_TASK
        data_cfg = replace(data_cfg, task=task)
    check_task_options(data_cfg)
    name = study_cfg.study_name or prefix + default_study_name(
        data_cfg.path, data_cfg.dataset, data_cfg.sample)
    return data_cfg, replace(
        study_cfg, study_name=name, run_dir=study_cfg.run_dir or str(Path("runs") / name),
        max_epochs=study_cfg.max_epochs or get_task(data_cfg.task).default_max_epochs,
        device=device, workers=usable_workers(gpu_workers(device, study_cfg.workers)))


def tune(data_cfg: DataConfig | None = None, study_cfg: StudyConfig | None = None,
         metric: str | None = None, console: Console | None = None,
         out: Console | None = None) -> TuneResult:
    """Tune, evaluate on the test split, and save the bundle; see the module docstring.
    Every option left out takes the library's default (``resolve``). ``console``: the
    plan, progress and warnings (default: standard error); ``out``: the results, the test
    metrics and the run directory (default: ``console``; the command line's standard
    output).

    Example (configs in, on the built-in BBC News data: one validation split, no seed
    repeats)::

        from grutune.workflows.tune import tune  # configs in; grutune.tune takes keywords
        from grutune.config import DataConfig, StudyConfig

        result = tune(DataConfig(dataset="bbc-news", sample=300),
                      StudyConfig(run_dir="runs/demo", trials=2, max_epochs=1, folds=1,
                                  repeats=1))
        print(result.metrics["accuracy"], result.run_dir / "report.html")
    """
    data_cfg, study_cfg = resolve(data_cfg, study_cfg)
    console = console or Console(stderr=True)
    # trial failures are reported by our progress lines (with the reason); Optuna would
    # add a traceback for each
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    if study_cfg.mlflow:
        from grutune.tracking import require_mlflow

        require_mlflow()
    task = get_task(data_cfg.task, metric)
    with console.status("reading data"):
        context = task.space_context(data_cfg)
    space = load_space(task.default_space(context), study_cfg.space_path)
    if study_cfg.sampler == "grid":
        space = space.for_grid()
    prepared, study, new = setup(data_cfg, study_cfg, task, space, console)
    run_dir = Path(study_cfg.run_dir)
    handler = file_logging(run_dir)
    try:
        with placed(study_cfg.device, study_cfg.precision):  # where every model trains
            return _run(task, prepared, study, new, space, data_cfg, study_cfg, console,
                        run_dir, out or console)
    finally:
        log.removeHandler(handler)
        handler.close()


def _run(task: Task, prepared: Prepared, study: optuna.Study, new: bool, space: Space,
         data_cfg: DataConfig, study_cfg: StudyConfig, console: Console,
         run_dir: Path, out: Console) -> TuneResult:
    """Search (unless ``grutune finalize``), then finalize (unless ``--no-finalize``).

    On a shared storage (``--storage``) the host keeps its record on the study, and
    after its search claims the finalization (``tuning/hosts.py``): the one host that
    wins waits for the others' searches and running trials, then finalizes from every
    finished trial; the others say who finalizes and end.
    """
    origin = origin_of(run_dir, _recorded_run_id(run_dir) or new_run_id())
    host = Host(study, origin, study_cfg.heartbeat_s) if study_cfg.storage else None
    started = datetime.datetime.now()
    interrupted = False
    if study_cfg.search:
        if host is not None:
            host.beat("searching")
        interrupted = run_search(task, prepared, study, new, space, study_cfg, console, run_dir,
                                 started=started, origin=origin,
                                 beat=host.beat if host is not None else None)
        if host is not None:
            host.beat("searched")
    else:
        if host is not None:
            host.beat("finalizing")
        console.print(f"Finalizing study '{study.study_name}' from its {_finished(study)} "
                      "finished trials (no search).")
    name = study.study_name
    if not study_cfg.finalize:
        return _searched_only(study, study_cfg, run_dir, interrupted, out,
                              "this host searched only (--no-finalize); finalize the study "
                              "once its search is done: grutune finalize with this command's "
                              "data, study and storage options")
    if host is not None:
        if interrupted:
            return _searched_only(study, study_cfg, run_dir, interrupted, out,
                                  "the search was interrupted: this host leaves the study "
                                  "to the others and does not finalize it")
        claim = claim_finalization(study, origin)
        if not claim.won and study_cfg.search:
            return _searched_only(study, study_cfg, run_dir, interrupted, out,
                                  f"{claim.says(name)}; this host searched only", claim.holder)
        if not claim.won:
            log.warning("%s; finalizing it here as well, as asked", claim.says(name))
        host.beat("finalizing")
        interrupted = _await_hosts(task, prepared, study, space, study_cfg, console, run_dir,
                                   started, origin, host)
        if interrupted:
            return _searched_only(study, study_cfg, run_dir, interrupted, out,
                                  "interrupted while waiting for the other hosts; run the "
                                  "same command again to finalize the study")
    if host is not None or not study_cfg.search:
        write_trials_csv(study, run_dir / "trials.csv")  # every host's trials, as they end
    final = _final_model(task, prepared, study, study_cfg, console, run_dir)
    model, members, repeats = final.model, final.trials, final.repeats
    numbers = [t.number for t in members]
    with console.status("evaluating the final model on the test split"):
        metrics, outputs = evaluate_test(model, task, prepared)
        unit_outputs, units = task.bootstrap_rows(outputs, prepared.test, prepared.state)
        draws = resample_scalars(lambda o, d: task.scalars(o, d, prepared.state),
                                 unit_outputs, units, seed=data_cfg.seed)
        metrics.update(intervals_of(draws, len(units), task.test_unit))
        folds = len(prepared.fold_pairs())
        if folds > 1:  # every fold model saw most of val: report out-of-fold values
            validation = {"scheme": f"{folds}-fold cross-validation on train + validation",
                          task.metric: float(sum(t.value for t in members) / len(members))}
        else:
            validation = {"scheme": "holdout validation split",
                          task.metric: task.val_metric(predict(final.early, prepared.val),
                                                       prepared.val.y, prepared.state)}
    if study_cfg.baseline:
        with console.status("fitting the baseline on the same split"):
            block = baseline_metrics(task, prepared, outputs, data_cfg.seed, draws,
                                     refit=final.refit["done"])
        if block is not None:
            metrics["baseline"] = block
    metrics = {"task": task.name, "split": "test", "best_trial": members[0].number,
               "model": {"kind": "ensemble" if len(model.members) > 1 else "single",
                         "members": numbers, "folds": folds,
                         "member_validation": [t.value for t in members]},
               "validation": validation, "seed_repeats": repeats, "refit": final.refit,
               **metrics}
    write_json(run_dir / "metrics.json", metrics)
    with atomic_path(run_dir / "test_predictions.csv") as tmp, \
            open(tmp, "w", encoding="utf-8", newline="") as stream:
        write_predictions(test_predictions(task, prepared, outputs), stream)
    save_bundle(run_dir / "model", model, prepared.state, metrics,
                extra={"trials": numbers, "params": [t.user_attrs["config"] for t in members],
                       "study": study.study_name})
    prune_checkpoints(run_dir, numbers, folds)
    print_result(out, task.metrics_table(metrics))
    if "baseline" in metrics:
        print_result(out, baseline_table(metrics))
    if study_cfg.report:
        with console.status("writing report.html"):
            _write_report(run_dir, study_cfg.storage)
    if study_cfg.mlflow:
        with console.status(f"logging to MLflow at {hide_password(study_cfg.mlflow)}"):
            _log_mlflow(study_cfg.mlflow, study, run_dir, metrics, to_dict(data_cfg))
    print_result(out, f"run directory: {run_dir}  (report.html, model/, metrics.json, "
                 "trials.csv, split.json)")
    if host is not None:
        finished(study, origin)
    if interrupted:
        console.print("[yellow]the search was interrupted; run the same command again to "
                      "continue it[/yellow]")
    return TuneResult(run_dir, float(members[0].value), members[0].user_attrs["config"], metrics,
                      interrupted)


def _await_hosts(task: Task, prepared: Prepared, study: optuna.Study, space: Space,
                 study_cfg: StudyConfig, console: Console, run_dir: Path,
                 started: datetime.datetime, origin: dict, host: Host) -> bool:
    """The finalizer's wait for the other hosts (``hosts.wait_for_hosts``); meanwhile it
    runs the trials the study has room for again (a killed host's, queued again), within
    what is left of its ``--budget``. True if interrupted."""
    state = {"interrupted": False}

    def run_more() -> bool:
        if not study_cfg.search or state["interrupted"]:
            return False
        room = room_left(study, study_cfg.trials, started)
        left = None if study_cfg.budget_s is None else (
            study_cfg.budget_s - (datetime.datetime.now() - started).total_seconds())
        if room == 0 or (left is not None and left <= 1):
            return False
        before = len(study.get_trials(deepcopy=False))
        log.info("running the %d trial(s) the study still has room for (queued again after "
                 "a host died, or not yet run)", room)
        state["interrupted"] = search(task, prepared, study, space,
                                      replace(study_cfg, budget_s=left), console, run_dir,
                                      _finished(study), started=started, origin=origin,
                                      beat=host.beat)
        return len(study.get_trials(deepcopy=False)) > before

    wait_for_hosts(study, origin, study_cfg.grace_s, console, run_more,
                   poll_s=min(2.0, float(study_cfg.heartbeat_s)))
    return state["interrupted"]


def _searched_only(study: optuna.Study, study_cfg: StudyConfig, run_dir: Path,
                   interrupted: bool, out: Console, why: str,
                   finalizer: dict | None = None) -> TuneResult:
    """The result of a run that did not finalize: its trials.csv, a line on the results
    stream saying why and who does, the study's best trial so far."""
    write_trials_csv(study, run_dir / "trials.csv")
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    best = top_trials(study, 1)[0] if complete else None
    target = f" of {study_cfg.trials}" if study_cfg.trials else ""
    print_result(out, f"study '{study.study_name}': {_finished(study)}{target} trials finished; "
                 f"{why}")
    print_result(out, f"run directory: {run_dir}  (trials.csv, split.json; no model here)")
    return TuneResult(run_dir, float(best.value) if best else float("nan"),
                      best.user_attrs.get("config", {}) if best else {}, {}, interrupted,
                      finalized=False, finalizer=finalizer)


def run_search(task: Task, prepared: Prepared, study: optuna.Study, new: bool, space: Space,
               study_cfg: StudyConfig, console: Console, run_dir: Path,
               plan: str | None = None, started: datetime.datetime | None = None,
               origin: dict | None = None, beat: Callable[[], None] | None = None) -> bool:
    """Say what the search will do, lint the space, search, write trials.csv.

    True if interrupted. ``plan`` replaces the printed plan (``compare`` has its own);
    ``started``, ``origin``, ``beat``: as ``search`` takes them.
    """
    if new:
        # warm start from a known-sensible config (once, even when several processes start
        # a shared study together)
        study.enqueue_trial(space.defaults(), skip_if_exists=True)
    done = _finished(study)
    remaining = None if study_cfg.trials is None else max(study_cfg.trials - done, 0)
    text = plan_text(task, prepared.summary, study_cfg, remaining, done, run_dir)
    if remaining != 0:  # built once, before workers fork, so they share the library
        with console.status("building the GRU kernel (first run on this machine: ~20 s)"):
            built = cpu_kernel() is not None
        on_device = describe(study_cfg.device, study_cfg.precision, study_cfg.workers)
        text += (f"\n{on_device}" if on_device else
                 "\nGRU recurrence: grutune's C++ kernel." if built else
                 "\nGRU recurrence: plain PyTorch, about 1.6x slower (the C++ kernel could "
                 "not be built; see the warning above).")
    console.print(plan or text)
    for warning in lint(space, study_cfg, prepared.summary):
        log.warning("search space: %s", warning)
    log.info("search: %s", text)
    interrupted = False
    if remaining != 0:
        interrupted = search(task, prepared, study, space, study_cfg, console, run_dir, done,
                             started=started, origin=origin, beat=beat)
    write_trials_csv(study, run_dir / "trials.csv")
    return interrupted


@dataclass
class FinalModel:
    """What the seed repeats (or the top trials) give the evaluation."""

    early: Ensemble  # the early-stopped models: the validation figures come from these
    model: Ensemble  # the model evaluated on test and saved: ``early``, or its refit
    trials: list  # the trials the members come from
    repeats: dict  # the seed-repeat record for metrics.json
    refit: dict  # the refit record for metrics.json


def _final_model(task: Task, prepared: Prepared, study: optuna.Study, study_cfg: StudyConfig,
                 console: Console, run_dir: Path) -> FinalModel:
    """The final model, its trials and records.

    With seed repeats (``repeats.py``): the chosen configuration's seed models. Without
    (``--repeats 1``, or no time for them): the top ``--ensemble`` trials' models. Then,
    unless ``--no-refit`` or the task or cross-validation rules it out, each member is
    refitted on train + validation (``refit.py``) within the seed repeats' time limit.
    """
    budget = (study_cfg.budget_s * REPEAT_SHARE) if study_cfg.budget_s else None
    deadline = time.monotonic() + budget if budget else None
    skip = refit_skip_reason(task, len(prepared.fold_pairs()), study_cfg.refit)
    planned, note = plan(top_trials(study, study_cfg.repeat_top), study_cfg.repeats, budget,
                         refit=skip is None)
    results = []
    if planned:
        with console.status(f"seed repeats: trials {[t.number for t in planned]} x "
                            f"{study_cfg.repeats} seeds"):
            results = repeat(planned, study_cfg.repeats, task, prepared, run_dir,
                             study_cfg.max_epochs, deadline)
        done = sum(len(r.seeds) for r in results)
        results = [r for r in results if len(r.seeds) >= 2]  # an interval needs 2 seeds
        if done < len(planned) * study_cfg.repeats:
            note = (f"seed repeats stopped at their time limit "
                    f"({format_seconds(budget or 0)}) after {done} of "
                    f"{len(planned) * study_cfg.repeats} seed models")
            if results:  # else the fallback below says it
                log.warning("%s", note)
    if results:
        chosen = choose(results, task.direction)
        bound = "lower" if task.direction == "maximize" else "upper"
        record = {"rule": f"the configuration with the best {bound} "
                          f"bound of the 95% interval of validation {task.metric} over "
                          f"{study_cfg.repeats} seeds; its seed models are averaged",
                  "chosen_trial": chosen.trial.number, "note": note,
                  "configurations": [r.summary(task.metric) for r in results]}
        console.print(repeats_table(record))
        early = Ensemble([m for ms in chosen.models for m in ms], task.combine).eval()
        groups = [[(chosen.trial.user_attrs["config"], seed, epochs)
                   for seed, epochs in zip(chosen.seeds, chosen.epochs, strict=True)]]
        trials = [chosen.trial]
    else:
        if note:  # a warning only when asked-for repeats did not happen
            (log.warning if study_cfg.repeats > 1 else log.info)("%s", note)
        candidates = top_trials(study, study_cfg.ensemble)
        with console.status(f"loading trials {[t.number for t in candidates]}"):
            early, trials = final_model(candidates, task, prepared, run_dir,
                                        study_cfg.max_epochs)
        record = {"note": note}
        groups = [[(t.user_attrs["config"], t.user_attrs["seed"],
                    int(t.user_attrs.get("best_epoch", 0)))] for t in trials]
    refitted, refit = _refit(task, prepared, study_cfg, groups, skip, deadline, console)
    if refitted is None:
        return FinalModel(early, early, trials, record, refit)
    if len(refitted) < len(groups):  # --ensemble trials whose refit did not fit leave
        trials = trials[:len(refitted)]  # (a refit means no folds: one early model each)
        early = Ensemble(list(early.members)[:len(refitted)], task.combine).eval()
    final = Ensemble([m for ms in refitted for m in ms], task.combine).eval()
    return FinalModel(early, final, trials, record, refit)


def _refit(task: Task, prepared: Prepared, study_cfg: StudyConfig,
           groups: list[list[tuple[dict, int, int]]], skip: str | None,
           deadline: float | None, console: Console
           ) -> tuple[list[list[SequenceModel]] | None, dict]:
    """Each group's members (a configuration's seeds, best first) refitted on train +
    validation, and the record. None: not refitted (``skip``, ``refit_skip_reason``'s
    answer, or the first group did not finish by ``deadline``); the groups after one that
    did not finish are left out."""
    members = [m for group in groups for m in group]
    if skip is None and not all(epochs >= 1 for _, _, epochs in members):
        skip = "a member's best epoch is unknown"
    if skip is not None:
        return None, {"done": False, "reason": skip}
    start = time.monotonic()

    def past_deadline() -> str | None:
        return "budget" if deadline is not None and time.monotonic() > deadline else None

    refitted: list[list[SequenceModel]] = []
    with console.status(f"refitting {len(members)} final model(s) on train + validation"):
        for group in groups:
            models = refit_models(task, prepared, group, study_cfg.max_epochs, past_deadline)
            if models is None:
                break
            refitted.append(models)
    if not refitted:
        reason = ("the seed repeats' time limit passed during the refit; the early-stopped "
                  "models are kept")
        log.warning("refit: %s", reason)
        return None, {"done": False, "reason": reason}
    note = "" if len(refitted) == len(groups) else (
        f"the refit of {len(groups) - len(refitted)} of {len(groups)} configurations did not "
        "fit the seed repeats' time limit; they are left out of the final model")
    if note:
        log.warning("refit: %s", note)
    return refitted, {
        "done": True, "rows": len(prepared.train) + len(prepared.val),
        "epochs": [epochs for group in groups[:len(refitted)] for _, _, epochs in group],
        "seconds": round(time.monotonic() - start, 2), "note": note,
        "rule": "each final model trained again from its seed on train + validation for "
                "the epochs its early-stopped run found best; validation figures come "
                "from the early-stopped models"}


def _write_report(run_dir: Path, storage: str | None) -> None:
    """The report; a failure to draw it is a warning, never a failed run. ``storage``:
    the study's URL (``config.json`` keeps it without its password)."""
    from grutune.reporting.page import build_or_warn, build_report, retry_hint

    build_or_warn(lambda folder: build_report(folder, storage), run_dir, retry_hint(run_dir))


def _log_mlflow(uri: str, study: optuna.Study, run_dir: Path, metrics: dict,
                data: dict) -> None:
    """MLflow logging; a failure is a warning (everything is saved in the run directory)."""
    from grutune.tracking import log_study

    try:
        run_id = log_study(uri, study, run_dir, metrics, data)
        log.info("logged the study to MLflow at %s (run %s)", hide_password(uri), run_id)
    except Exception as err:  # noqa: BLE001 - a tracking server problem must not lose results
        log.warning("MLflow logging to %s failed (%s: %s)", hide_password(uri),
                    type(err).__name__, scrub(str(err), uri))


def write_trials_csv(study: optuna.Study, path: Path) -> None:
    with atomic_path(path) as tmp:
        trials_frame(study).to_csv(tmp, index=False)


__all__ = ["TuneResult", "tune"]
