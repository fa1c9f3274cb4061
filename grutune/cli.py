"""The command line: each command parses options -> configs -> one library call.

Exit codes: 0 success, 2 bad input or configuration (one line, no traceback),
1 internal error, 130 stopped by a second Ctrl-C.

Standard output carries results (the test metrics and the run directory of ``tune``, or
its ``--json`` summary; ``predict``'s rows; the dataset list), standard error everything
else: the plan, progress, warnings and errors.

Importing this module is cheap: the heavy modules (PyTorch, the pipeline, Optuna,
scikit-learn, pandas) are imported inside the commands that need them, so ``--help``,
``--version`` and shell completion answer at once (``bench/cli_help.py``).
"""

from __future__ import annotations

import inspect
import json
import logging
import math
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from grutune import __version__
from grutune.config import (
    COMPARE_SEEDS,
    DEFAULT_DATASET,
    DEVICES,
    PRECISIONS,
    PRUNERS,
    SAMPLERS,
    SCALINGS,
    DataConfig,
    StudyConfig,
    parse_duration,
)
from grutune.exceptions import ConfigError, GrutuneError

if TYPE_CHECKING:
    from grutune.workflows.compare import CompareResult
    from grutune.workflows.tune import TuneResult

err_console = Console(stderr=True)
log = logging.getLogger("grutune")

# The built-in tasks (grutune.tasks.TASKS) and the validation metrics each accepts,
# default first, by name only: the registry imports PyTorch and --help must not. A test
# (tests/test_cli_polish.py) keeps these equal to the registry's built-ins; the library
# still validates --task and --metric, so a task registered in-process is accepted too.
TASK_METRICS: dict[str, tuple[str, ...]] = {
    "text": ("accuracy", "f1_macro", "log_loss"),
    "series": ("accuracy", "f1_macro", "log_loss"),
    "forecast": ("mase", "mae", "rmse"),
    "recommend": ("ndcg_10", "recall_20", "hr_10", "mrr_20"),
}
TASK_NAMES = tuple(TASK_METRICS)
EXPORT_FORMATS = ("onnx", "torchscript")  # grutune.export.FORMATS (a test keeps them equal)

# tune's and compare's help panels
DATA, SEARCH, TRAINING, STORAGE, OUTPUT = "Data", "Search", "Training", "Storage", "Output"


def _error_line(message: str) -> None:
    """The one ``error:`` line every refusal ends with (no markup, never wrapped)."""
    err_console.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)


# Typer 0.29 vendors its own click: take the exception classes from typer's own
# BadParameter, whichever click it is built on.
_CLICK = {c.__name__: c for c in typer.BadParameter.__mro__}
_UsageError, _ClickException = _CLICK["UsageError"], _CLICK["ClickException"]
_NoArgsIsHelp = getattr(sys.modules[_UsageError.__module__], "NoArgsIsHelpError", None)


class _OneLineErrors(TyperGroup):
    """Usage errors (a missing argument, a bad number, an unknown option) as one
    ``error:`` line with exit code 2, like every other refusal, instead of click's or
    rich's multi-line usage box."""

    def main(self, *args: object, standalone_mode: bool = True, **kwargs: object) -> object:
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except _UsageError as err:
            if _NoArgsIsHelp is not None and isinstance(err, _NoArgsIsHelp):
                # raising it drew the help (rich prints it and leaves the message empty)
                if err.format_message():
                    typer.echo(err.format_message())
                sys.exit(0)
            where = f" (see {err.ctx.command_path} --help)" if err.ctx else ""
            _error_line(f"{err.format_message()}{where}")
            sys.exit(2)
        except _ClickException as err:
            _error_line(err.format_message())
            sys.exit(err.exit_code)
        except typer.Abort:
            err_console.print("aborted")
            sys.exit(130)
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(cls=_OneLineErrors, no_args_is_help=True, pretty_exceptions_enable=False,
                  rich_markup_mode="rich",
                  help="Tune, evaluate and ship GRU sequence models.")


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"grutune {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option(
        "--version", help="Show the version and exit.", callback=_show_version,
        is_eager=True)] = False) -> None:
    """The options before a command (--version; typer adds shell completion's)."""


def _h(text: str) -> str:
    """Help text shown as written: help is rich markup, where ``'grutune[mlflow]'`` would
    lose its ``[mlflow]``."""
    return escape(text)


def _choice(names: tuple[str, ...] | Callable[[Any], tuple[str, ...]]) -> dict[str, Any]:
    """typer.Option keywords listing ``names`` in the help (``<a|b|c>``, as typer shows a
    choice) and completing them in the shell. The value is checked by the library, which
    names the rule in its one-line error (``--sampler: must be one of ...``) and knows
    tasks registered at run time. ``names``: a tuple, or a function of the click context
    (``--metric`` completes the metrics of the ``--task`` given before it)."""
    shown = names if isinstance(names, tuple) else names(None)

    def complete(ctx: typer.Context, incomplete: str) -> list[str]:
        options = names if isinstance(names, tuple) else names(ctx)
        return [name for name in options if name.startswith(incomplete)]

    return {"metavar": f"<{'|'.join(shown)}>", "autocompletion": complete}


def _metric_names(ctx: Any) -> tuple[str, ...]:
    """The metrics of the --task given (all of them without one)."""
    task = (ctx.params.get("task") if ctx is not None else None) or ""
    return TASK_METRICS.get(task) or tuple(dict.fromkeys(
        name for names in TASK_METRICS.values() for name in names))


def _dataset_names(incomplete: str) -> list[str]:
    from grutune.data.datasets import DATASETS  # pandas: only while completing --dataset

    return [name for name in DATASETS if name.startswith(incomplete)]


# The defaults below are read from the library's configs: the CLI has none of its own.
_D, _S = DataConfig, StudyConfig


@contextmanager
def _fatal_errors() -> Iterator[None]:
    """GrutuneError -> one line on stderr and exit code 2; a second Ctrl-C -> 130.

    An OSError that reaches here comes from a path the user gave (too long, a directory
    where a file belongs, no permission): one line naming the path, exit 2 as well.
    """
    try:
        yield
    except GrutuneError as err:
        _error_line(str(err))
        raise typer.Exit(2) from None
    except OSError as err:
        where = f"{err.filename}: " if err.filename else ""
        _error_line(f"{where}{err.strerror or err}")
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        err_console.print("stopped; every finished trial is kept in the study")
        raise typer.Exit(130) from None


class _StderrHandler(logging.Handler):
    """Log records as ``warning: ...`` lines (``info:``/``debug:`` with -v) on whatever
    sys.stderr is at the time. Records already shown by the progress display (a trial's
    line, the results) carry ``shown`` and are left to tune.log."""

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "shown", False):
            return
        kind = "warning" if record.levelno >= logging.WARNING else record.levelname.lower()
        sys.stderr.write(f"{kind}: {record.getMessage()}\n")  # error: is the refusal's


def _setup_logging(quiet: bool = False, verbose: bool = False) -> None:
    """Warnings on stderr; -q: errors only; -v: every record down to debug."""
    level = logging.ERROR if quiet else logging.DEBUG if verbose else logging.WARNING
    handler = next((h for h in log.handlers if isinstance(h, _StderrHandler)), None)
    if handler is None:
        handler = _StderrHandler()
        log.addHandler(handler)
    handler.setLevel(level)
    log.setLevel(logging.DEBUG if verbose else logging.INFO)
    log.propagate = False


# Options shared by `tune` and `compare` (the data and the search), one definition each,
# in help panels: data, search, training, storage, output.
File = Annotated[Path | None, typer.Argument(
    metavar="FILE", show_default=False,
    help=f"CSV, Parquet or JSON Lines file; omit to use --dataset (default {DEFAULT_DATASET}).")]
Dataset = Annotated[str | None, typer.Option(
    metavar="NAME", autocompletion=_dataset_names, rich_help_panel=DATA,
    help="A built-in dataset (grutune datasets).")]
TaskName = Annotated[str | None, typer.Option(
    "--task", **_choice(TASK_NAMES), rich_help_panel=DATA,
    help=f"Task: {', '.join(TASK_NAMES)} (default: the dataset's, else text).")]
Text = Annotated[str | None, typer.Option("--text", metavar="COLUMN", rich_help_panel=DATA,
                                          help="Text column (default: text).")]
Target = Annotated[str | None, typer.Option(
    metavar="COLUMN", rich_help_panel=DATA,
    help="Label column (default: label); for a forecast the value column(s), COL[,COL].")]
Test = Annotated[Path | None, typer.Option(metavar="FILE", rich_help_panel=DATA,
                                           help="Your own held-out test file.")]
IdColumn = Annotated[str | None, typer.Option(
    "--id", metavar="COLUMN", rich_help_panel=DATA,
    help="Series in long form: the series id column.")]
TimeColumn = Annotated[str | None, typer.Option(
    "--time", metavar="COLUMN", rich_help_panel=DATA,
    help="The time column (forecast; series in long form; recommend); default: row order.")]
UserColumn = Annotated[str | None, typer.Option(
    "--user", metavar="COLUMN", rich_help_panel=DATA,
    help="Recommend: whose history an event belongs to.")]
ItemColumn = Annotated[str | None, typer.Option(
    "--item", metavar="COLUMN", rich_help_panel=DATA, help="Recommend: the event's item.")]
SessionColumn = Annotated[str | None, typer.Option(
    "--session", metavar="COLUMN", rich_help_panel=DATA,
    help="Recommend: histories are sessions (of each --user, if given).")]
Covariates = Annotated[str | None, typer.Option(
    metavar="COL[,COL]", rich_help_panel=DATA,
    help="Forecast: past-observed input columns, COL[,COL].")]
Horizon = Annotated[int | None, typer.Option(
    metavar="STEPS", rich_help_panel=DATA,
    help="Forecast: steps predicted at once (default: the season, else 10).")]
Season = Annotated[int | None, typer.Option(
    metavar="STEPS", rich_help_panel=DATA,
    help="Forecast: seasonal period for MASE and the seasonal-naive baseline (default: "
         "from the frequency).")]
Scaling = Annotated[str, typer.Option(
    **_choice(SCALINGS), rich_help_panel=DATA,
    help=f"Forecast: {', '.join(SCALINGS)} scaling, fitted on the training part.")]
Sample = Annotated[int | None, typer.Option(metavar="N", rich_help_panel=DATA,
                                            help="Use a stratified sample of N rows.")]
StopWords = Annotated[bool | None, typer.Option("--stop-words/--keep-stop-words",
                                                rich_help_panel=DATA,
                                                help="Remove English stop words.")]
Stem = Annotated[bool | None, typer.Option(
    "--stem/--no-stem", rich_help_panel=DATA,
    help="Reduce words to their English Snowball stems (loved, loves -> love); default: "
    "the built-in dataset's choice, off for your files.")]
MaxLen = Annotated[int | None, typer.Option(
    metavar="TOKENS", rich_help_panel=DATA,
    help="Tokens kept per text (default: 98th percentile of training lengths).")]
MinCount = Annotated[int, typer.Option(rich_help_panel=DATA,
                                       help="Minimum token count for the vocabulary.")]
MaxVocab = Annotated[int, typer.Option(rich_help_panel=DATA,
                                       help="Vocabulary size at most.")]
Trials = Annotated[int | None, typer.Option(metavar="N", rich_help_panel=SEARCH,
                                            help="Finished trials to aim for.")]
Budget = Annotated[str | None, typer.Option(
    metavar="DURATION", rich_help_panel=SEARCH,
    help=f"Search wall time: 90s, 20m, 1h (default {StudyConfig.budget_s / 60:g}m).")]
Seed = Annotated[int, typer.Option(rich_help_panel=SEARCH,
                                   help="Seed of the split, sampler and trials.")]
Sampler = Annotated[str, typer.Option(**_choice(SAMPLERS), rich_help_panel=SEARCH,
                                      help="The Optuna sampler.")]
Pruner = Annotated[str, typer.Option(**_choice(PRUNERS), rich_help_panel=SEARCH,
                                     help="The Optuna pruner (none: no pruning).")]
Workers = Annotated[int | None, typer.Option(
    metavar="N", rich_help_panel=SEARCH,
    help="Trial worker processes on this machine, one thread each (default, or 0: one per "
         "core; on CUDA one per visible GPU, each pinned to its GPU; more share them).")]
Device = Annotated[str, typer.Option(
    **_choice(DEVICES), rich_help_panel=TRAINING,
    help="Where models train: auto (a CUDA GPU, else Apple's mps, else the CPU), cpu, "
         "cuda (every visible GPU), cuda:N, mps. The GPU path is untested on a real GPU "
         "until bench/gpu_check.py's figures are in bench/RESULTS.md.")]
Precision = Annotated[str, typer.Option(
    **_choice(PRECISIONS), rich_help_panel=TRAINING,
    help="fp32, or bf16 / fp16 autocast on CUDA (fp16 with a loss scaler).")]
Folds = Annotated[int | None, typer.Option(
    metavar="K", rich_help_panel=SEARCH,
    help="Score trials by K-fold cross-validation (default: 5 below 500 train+validation "
         "rows, else 1 = one validation split).")]
Metric = Annotated[str | None, typer.Option(
    **_choice(_metric_names), rich_help_panel=SEARCH,
    help="Validation metric by task: " + "; ".join(
        f"{', '.join(t for t in TASK_METRICS if TASK_METRICS[t] == names)}: {names[0]} "
        f"(default), {', '.join(names[1:])}" for names in dict.fromkeys(TASK_METRICS.values()))
    + ".")]
SpaceFile = Annotated[Path | None, typer.Option(
    "--space", metavar="FILE", rich_help_panel=SEARCH,
    help="YAML file overriding the search space.")]
MaxEpochs = Annotated[int | None, typer.Option(
    metavar="N", rich_help_panel=TRAINING,
    help="Epochs per trial at most (early stopping; default: text 20, series 100, "
         "forecast 60).")]
STORAGE_ENV = "GRUTUNE_STORAGE"  # the storage URL, kept off command lines (a password)
Storage = Annotated[str | None, typer.Option(
    metavar="URL", rich_help_panel=STORAGE, envvar=STORAGE_ENV, show_envvar=True,
    help="Optuna storage URL (default: SQLite in the run directory).")]
# report and dashboard: the URL again, where the run directory keeps it without its password
RunStorage = Annotated[str | None, typer.Option(
    "--storage", metavar="URL", envvar=STORAGE_ENV, show_envvar=True,
    help="The study's storage URL: needed when the run used a database URL with a "
         "password, which the run directory does not keep.")]
StudyName = Annotated[str | None, typer.Option(
    "--study", metavar="STUDY", rich_help_panel=STORAGE,
    help="Study name (default: data name).")]
Heartbeat = Annotated[int, typer.Option(
    metavar="SECONDS", rich_help_panel=STORAGE,
    help="Database storages: seconds between a running trial's heartbeats.")]
Grace = Annotated[int, typer.Option(
    metavar="SECONDS", rich_help_panel=STORAGE,
    help="Database storages: a trial whose worker is silent this many seconds is failed "
         "and retried.")]
RunDir = Annotated[Path | None, typer.Option(metavar="RUN_DIR", rich_help_panel=OUTPUT,
                                             help="Run directory (default runs/STUDY).")]
Quiet = Annotated[bool, typer.Option(
    "--quiet", "-q", rich_help_panel=OUTPUT,
    help="Only errors and results: no plan, progress or warnings.")]
Verbose = Annotated[bool, typer.Option(
    "--verbose", "-v", rich_help_panel=OUTPUT,
    help="Debug logging: every log record on standard error, not only warnings.")]


def _configs(o: dict, **study: object) -> tuple[DataConfig, StudyConfig]:
    """The DataConfig and StudyConfig of a command's options (``o``: the ``locals()`` of
    ``tune`` or ``compare``, which share the data and search options); ``study``: the
    command's own StudyConfig fields. Options not given stay unset: the library fills
    them (``pipeline.resolve``), so Python and the command line share one set of defaults.
    """
    file, dataset = o["file"], o["dataset"]
    if file is not None and dataset is not None:
        raise ConfigError("give a FILE or --dataset, not both")
    if o["test"] is not None and file is not None and _same_file(o["test"], file):
        raise ConfigError(f"--test {o['test']}: is FILE itself; the held-out test rows "
                           "must be a separate file")
    data = dict(
        dataset=dataset, path=str(file) if file is not None else None,
        test_path=str(o["test"]) if o["test"] is not None else None, task=o["task"],
        text_column=o["text"], id_column=o["id_column"], time_column=o["time_column"],
        covariates=o["covariates"], horizon=o["horizon"], season=o["season"],
        user_column=o["user"], item_column=o["item"], session_column=o["session"],
        scaling=o["scaling"], target_column=o["target"], sample=o["sample"], seed=o["seed"],
        stop_words=o["stop_words"], stem=o["stem"], min_count=o["min_count"],
        max_vocab=o["max_vocab"], max_len=o["max_len"])
    search = dict(
        study_name=o["study"], run_dir=str(o["run_dir"]) if o["run_dir"] else None,
        storage=o["storage"], sampler=o["sampler"], pruner=o["pruner"], trials=o["trials"],
        budget_s=parse_duration(o["budget"]) if o["budget"] else None,
        max_epochs=o["max_epochs"],
        space_path=str(o["space"]) if o["space"] is not None else None, seed=o["seed"],
        folds=o["folds"], workers=o["workers"], device=o["device"],
        precision=o["precision"], heartbeat_s=o["heartbeat"], grace_s=o["grace"], **study)
    return (DataConfig(**{k: v for k, v in data.items() if v is not None}),
            StudyConfig(**{k: v for k, v in search.items() if v is not None}))


@app.command()
def tune(  # the options in the order of their help panels: data, search, training, ...
    file: File = None, dataset: Dataset = None, task: TaskName = None, text: Text = None,
    target: Target = None, test: Test = None, id_column: IdColumn = None,
    time_column: TimeColumn = None, user: UserColumn = None, item: ItemColumn = None,
    session: SessionColumn = None, covariates: Covariates = None, horizon: Horizon = None,
    season: Season = None, scaling: Scaling = _D.scaling, sample: Sample = None,
    stop_words: StopWords = None, stem: Stem = None, max_len: MaxLen = None,
    min_count: MinCount = _D.min_count,
    max_vocab: MaxVocab = _D.max_vocab,
    trials: Trials = _S.trials, budget: Budget = None, seed: Seed = _D.seed,
    sampler: Sampler = _S.sampler, pruner: Pruner = _S.pruner, workers: Workers = None,
    folds: Folds = None, metric: Metric = None, space: SpaceFile = None,
    max_epochs: MaxEpochs = None, device: Device = _S.device,
    precision: Precision = _S.precision,
    population: int = typer.Option(
        _S.population, metavar="K", rich_help_panel=TRAINING,
        help="Train K trials that share an architecture together as one stacked model (GRU "
        "classifiers; 1: one at a time, the default - see bench/population.py, and on a GPU "
        "bench/gpu_check.py)."),
    repeats: int = typer.Option(
        _S.repeats, metavar="N", rich_help_panel=TRAINING,
        help="Seed repeats: re-train the top configurations with N seeds each and choose by "
        "the lower bound of the validation interval (1: off)."),
    repeat_top: int = typer.Option(_S.repeat_top, metavar="N", rich_help_panel=TRAINING,
                                   help="Configurations the seed repeats re-train."),
    ensemble: int = typer.Option(
        _S.ensemble, metavar="K", rich_help_panel=TRAINING,
        help="Without seed repeats, the final model averages the K best trials (1: the best "
        "trial alone)."),
    refit: bool = typer.Option(
        _S.refit, "--refit/--no-refit", rich_help_panel=TRAINING,
        help="Train the final models again on train + validation for the epochs early "
        "stopping chose (not under cross-validation or for forecasts)."),
    storage: Storage = None, study: StudyName = None, heartbeat: Heartbeat = _S.heartbeat_s,
    grace: Grace = _S.grace_s,
    finalize: bool = typer.Option(
        _S.finalize, "--finalize/--no-finalize", rich_help_panel=STORAGE,
        help="After the search, build the final model. On a shared --storage the first host "
        "whose search ends claims it (exactly one does), waits for the other hosts' trials, "
        "then finalizes from all of them. --no-finalize: search only (a worker host); "
        "grutune finalize builds the model later."),
    run_dir: RunDir = None,
    mlflow: str | None = typer.Option(
        None, "--mlflow", metavar="URI", rich_help_panel=OUTPUT,
        help=_h("MLflow tracking URI (e.g. file:///path/mlruns): log every trial and the model "
                "when the run ends (pip install 'grutune[mlflow]').")),
    baseline: bool = typer.Option(
        _S.baseline, "--baseline/--no-baseline", rich_help_panel=OUTPUT,
        help="Also fit the task's baseline (text: TF-IDF + logistic regression; series: "
        "1-NN, Euclidean or DTW; forecasts: Theta) on the same split and show the model beside it "
        "(seconds)."),
    as_json: bool = typer.Option(
        False, "--json", rich_help_panel=OUTPUT,
        help="Print one JSON summary on standard output (run directory, best parameters, test "
        "metrics) and nothing else there; the tables go to standard error."),
    quiet: Quiet = False, verbose: Verbose = False,
) -> None:
    """Tune a GRU on FILE (or a built-in dataset), evaluate it on test, save the model.

    The test metrics and the run directory go to standard output; the plan, progress and
    warnings to standard error."""
    _tune_command(locals(), search=True)


def _tune_command(options: dict, search: bool) -> None:
    """``tune`` (``search``) and ``finalize``: the options -> configs -> one library call."""
    quiet, verbose, as_json = options["quiet"], options["verbose"], options["as_json"]
    _setup_logging(quiet, verbose)
    with _fatal_errors():
        _check_quiet_verbose(quiet, verbose)
        data_cfg, study_cfg = _configs(
            options, ensemble=options["ensemble"], population=options["population"],
            mlflow=options["mlflow"], repeats=options["repeats"],
            repeat_top=options["repeat_top"], baseline=options["baseline"],
            refit=options["refit"], search=search, finalize=options.get("finalize", True))
        log.debug("data: %s; study: %s", data_cfg, study_cfg)
        from grutune.workflows.tune import tune as run_tune

        progress = Console(stderr=True, quiet=quiet)
        results = progress if as_json else Console()
        result = run_tune(data_cfg, study_cfg, metric=options["metric"], console=progress,
                          out=results)
    if as_json:
        typer.echo(json.dumps(_summary(result), indent=2, allow_nan=False))
    if result.interrupted:
        raise typer.Exit(130)


def finalize_cmd(**options: Any) -> None:
    """Build the final model of a study from its finished trials, without searching.

    Tune's command line with finalize in place of tune (the search options are accepted
    and unused). On a shared --storage it waits until no host searches and no trial runs.
    The test metrics and the run directory go to standard output; the rest to standard
    error."""
    _tune_command(options, search=False)


# finalize takes tune's options (all but --finalize/--no-finalize): one definition of each
_TUNE_SIGNATURE = inspect.signature(tune, eval_str=True)
finalize_cmd.__signature__ = _TUNE_SIGNATURE.replace(parameters=[  # type: ignore[attr-defined]
    p for p in _TUNE_SIGNATURE.parameters.values() if p.name != "finalize"])
finalize_cmd.__annotations__ = {k: v for k, v in tune.__annotations__.items()
                                if k != "finalize"}
app.command("finalize")(finalize_cmd)


def _check_quiet_verbose(quiet: bool, verbose: bool) -> None:
    if quiet and verbose:
        raise ConfigError("give -q/--quiet or -v/--verbose, not both")


def _summary(result: TuneResult) -> dict:
    """``tune --json``: the run directory, the best trial and the test metrics (the finite
    numbers of metrics.json, baselines as ``baselines.NAME.KEY``, with their intervals)."""
    from grutune.files import plain_json
    from grutune.render import metric_scalars

    metrics = result.metrics
    if not result.finalized:
        return _finite({
            "run_dir": str(result.run_dir), "finalized": False, "finalizer": result.finalizer,
            "best_value": result.best_value, "best_params": result.best_params,
            "interrupted": result.interrupted})
    return _finite({
        "run_dir": str(result.run_dir), "finalized": True, "task": metrics.get("task"),
        "best_trial": metrics.get("best_trial"), "best_value": result.best_value,
        "best_params": plain_json(result.best_params),
        "validation": plain_json(metrics.get("validation", {})),
        "test_metrics": metric_scalars(metrics),
        "test_intervals": plain_json(metrics.get("intervals", {})),
        "baseline": _baseline_summary(metrics.get("baseline")),
        "metrics_file": str(Path(result.run_dir) / "metrics.json"),
        "model": str(Path(result.run_dir) / "model"),
        "interrupted": result.interrupted})


def _baseline_summary(block: dict | None) -> dict | None:
    """``--json``'s baseline: its name, the metrics it is compared by, the difference."""
    if not block:
        return None
    return {"name": block["name"], "chosen": block.get("chosen"),
            "metrics": {k: block[k] for k in block.get("shown", []) if k in block},
            "difference": block.get("difference")}


def _compare_summary(result: CompareResult) -> dict:
    """``compare --json``: the run directory, the verdict and the table (one row per metric
    and cell: mean, interval over seeds, p-value, parameters)."""
    record = result.record
    return _finite({
        "run_dir": str(result.run_dir), "task": record.get("task"),
        "metric": record.get("metric"), "seeds": record.get("seeds"),
        "verdict": record.get("verdict"), "table": record.get("table"),
        "size": record.get("size"), "compare_file": str(Path(result.run_dir) / "compare.json"),
        "interrupted": result.interrupted})


def _finite(value: Any) -> Any:
    """NaN and infinities as null: strict JSON, which every reader (jq included) parses."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


@app.command()
def compare(  # the options in the order of their help panels, as tune's
    file: File = None, dataset: Dataset = None, task: TaskName = None, text: Text = None,
    target: Target = None, test: Test = None, id_column: IdColumn = None,
    time_column: TimeColumn = None, user: UserColumn = None, item: ItemColumn = None,
    session: SessionColumn = None, covariates: Covariates = None, horizon: Horizon = None,
    season: Season = None, scaling: Scaling = _D.scaling, sample: Sample = None,
    stop_words: StopWords = None, stem: Stem = None, max_len: MaxLen = None,
    min_count: MinCount = _D.min_count,
    max_vocab: MaxVocab = _D.max_vocab,
    trials: Trials = _S.trials,
    budget: Annotated[str | None, typer.Option(
        metavar="DURATION", rich_help_panel=SEARCH,
        help="Search wall time of EACH cell's study: 90s, 20m, 1h (default "
             f"{_S.budget_s / 60:g}m).")] = None,
    seed: Seed = _D.seed, sampler: Sampler = _S.sampler, pruner: Pruner = _S.pruner,
    workers: Workers = None, folds: Folds = None, metric: Metric = None,
    space: SpaceFile = None,
    max_epochs: MaxEpochs = None, device: Device = _S.device,
    precision: Precision = _S.precision,
    seeds: int = typer.Option(COMPARE_SEEDS, metavar="N", rich_help_panel=TRAINING,
                              help="Seeds each winner is trained with for the paired test "
                              "(the same seeds for both cells)."),
    storage: Storage = None, study: StudyName = None, heartbeat: Heartbeat = _S.heartbeat_s,
    grace: Grace = _S.grace_s, run_dir: RunDir = None,
    as_json: bool = typer.Option(
        False, "--json", rich_help_panel=OUTPUT,
        help="Print one JSON summary on standard output (run directory, verdict, the "
        "table's rows) and nothing else there; the tables go to standard error."),
    quiet: Quiet = False, verbose: Verbose = False,
) -> None:
    """GRU vs LSTM on FILE (or a built-in dataset): both tuned on one split with the same
    budget at a matched size, each winner trained over the same seeds, a paired test;
    writes compare.json and report.html.

    The verdict table and the run directory go to standard output; the plan, progress and
    warnings to standard error."""
    options = locals()
    _setup_logging(quiet, verbose)
    with _fatal_errors():
        _check_quiet_verbose(quiet, verbose)
        data_cfg, study_cfg = _configs(options)
        from grutune.workflows.compare import compare as run_compare

        progress = Console(stderr=True, quiet=quiet)
        result = run_compare(data_cfg, study_cfg, seeds=seeds, metric=metric,
                             console=progress, out=progress if as_json else Console())
    if as_json:
        typer.echo(json.dumps(_compare_summary(result), indent=2, allow_nan=False))
    if result.interrupted:
        raise typer.Exit(130)


def _check_output(out: Path | None, option: str = "--out") -> None:
    """An output file the user named: its folder must exist (no folders are made for a
    typo) and it must not be a directory."""
    if out is None:
        return
    if out.is_dir():
        raise ConfigError(f"{option} {out}: is a directory; give a file name")
    if not out.parent.is_dir():
        raise ConfigError(f"{option} {out}: the folder {out.parent} does not exist")


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and a.samefile(b))
    except OSError:
        return False


@app.command("predict")
def predict_cmd(
    model: Path = typer.Argument(..., metavar="MODEL",
                                 help="A bundle directory (RUN_DIR/model)."),
    file: Path = typer.Argument(..., metavar="FILE",
                                help="CSV, Parquet or JSON Lines rows to predict; - reads "
                                     "them from standard input (CSV unless --format)."),
    text: str | None = typer.Option(None, "--text", metavar="COLUMN", help="Text column "
                                    "(default: the training data's)."),
    out: Path | None = typer.Option(None, metavar="FILE", help="Output file, its format by "
                                    "extension: .csv, .tsv, .parquet/.pq, .jsonl/.ndjson "
                                    "(default: CSV on standard output)."),
    keep: list[str] | None = typer.Option(None, "--keep", metavar="COLUMN", help="Copy this "
                                          "input column beside the predictions, e.g. an id "
                                          "(repeatable; not for forecasts or recommenders)."),
    fmt: str | None = typer.Option(None, "--format", metavar="FORMAT", help="Format of the "
                                   "rows on standard input (FILE -): csv (default), tsv, "
                                   "jsonl or parquet."),
    top: int | None = typer.Option(None, "--top", metavar="K", min=1, help="Recommenders: "
                                   "the K best items per history (default 10)."),
) -> None:
    """Predict every row of FILE with a saved model."""
    import tempfile

    _setup_logging()
    with _fatal_errors():
        _check_output(out)
        writer = _predict_writer(out)
        stdin = str(file) == "-"
        suffix = _predict_stdin_suffix(fmt, stdin)
        keep = list(dict.fromkeys(keep or []))
        if not stdin:
            if out is not None and _same_file(out, file):
                raise ConfigError(f"--out {out}: is the input FILE {file}; write the "
                                  "predictions to another file")
            _predict(model, file, str(file), text, keep, out, writer, top)
            return
        if sys.stdin is None or sys.stdin.isatty():
            raise ConfigError("FILE -: standard input is a terminal; pipe the rows in "
                              "(grutune predict MODEL - < rows.csv) or give a file")
        with tempfile.TemporaryDirectory(prefix="grutune-stdin-") as folder:
            path = Path(folder) / f"stdin{suffix}"
            with open(path, "wb") as spool:
                source = getattr(sys.stdin, "buffer", None)
                if source is None:  # a text-only stream: its text as UTF-8
                    spool.write(sys.stdin.read().encode("utf-8"))
                else:
                    while chunk := source.read(1 << 20):
                        spool.write(chunk)
            shown = logging.Filter()
            shown.filter = lambda record: _predict_rename(record, str(path))  # type: ignore
            logger = logging.getLogger("grutune")
            logger.addFilter(shown)
            try:
                _predict(model, path, "standard input", text, keep, out, writer, top)
            except GrutuneError as err:  # name the input as the user gave it, not the spool
                raise type(err)(str(err).replace(str(path), "standard input")) from None
            finally:
                logger.removeFilter(shown)


# output formats of ``grutune predict --out``, by extension
_PREDICT_FORMATS = {".csv": "csv", ".tsv": "tsv", ".parquet": "parquet", ".pq": "parquet",
                    ".jsonl": "jsonl", ".ndjson": "jsonl"}
_STDIN_FORMATS = {"csv": ".csv", "tsv": ".tsv", "jsonl": ".jsonl", "parquet": ".parquet"}


def _predict_writer(out: Path | None) -> str:
    """The output format ``--out`` names by its extension (csv on standard output)."""
    if out is None:
        return "csv"
    ext = out.suffix.lower()
    if ext not in _PREDICT_FORMATS:
        hint = " (.jsonl for JSON Lines)" if ext == ".json" else ""
        raise ConfigError(f"--out {out}: unknown extension {ext or '(none)'!r}{hint}; use "
                          f"one of {', '.join(_PREDICT_FORMATS)}")
    return _PREDICT_FORMATS[ext]


def _predict_stdin_suffix(fmt: str | None, stdin: bool) -> str:
    if fmt is None:
        return ".csv"
    if not stdin:
        raise ConfigError("--format: only for rows on standard input (FILE -); a file's "
                          "format is its extension")
    if fmt.lower() not in _STDIN_FORMATS:
        raise ConfigError(f"--format: must be one of {', '.join(_STDIN_FORMATS)}; got {fmt!r}")
    return _STDIN_FORMATS[fmt.lower()]


def _predict_rename(record: logging.LogRecord, spool: str) -> bool:
    """A log record about the spooled standard input names it as the user gave it."""
    message = record.getMessage()
    if spool in message:
        record.msg, record.args = message.replace(spool, "standard input"), None
    return True


def _predict(model: Path, path: Path, name: str, text: str | None, keep: list[str],
             out: Path | None, writer: str, top: int | None = None) -> None:
    """Predict ``path`` (shown as ``name``), add the ``keep`` columns, write the table."""
    import pandas as pd

    from grutune.bundle import load_bundle
    from grutune.exceptions import DataError
    from grutune.files import atomic_path
    from grutune.tasks import TASKS
    from grutune.workflows.predict import predict_with, write_predictions

    bundle = load_bundle(model)
    kept = None
    if keep:
        task = TASKS.get(bundle.state.get("task"))
        if task is not None and task.prediction_rows:
            raise ConfigError(f"--keep: {model} {task.prediction_rows}; its rows are not input "
                              "rows, so no input column can be kept beside them")
        kept = _predict_kept(path, name, keep)
    table = predict_with(bundle, path, text, str(model), top=top)
    if kept is not None:
        if len(kept) != len(table):
            raise DataError(f"{name}: {len(kept)} input rows give {len(table)} predictions; "
                            "--keep needs one prediction per row")
        clash = [c for c in keep if c in table.columns]
        if clash:
            raise ConfigError(f"--keep {clash[0]}: the predictions have a column of that "
                              f"name ({', '.join(map(str, table.columns))}); rename it")
        table = pd.concat([kept, table.reset_index(drop=True)], axis=1)
    if out is None:
        write_predictions(table, sys.stdout, "csv")
        sys.stdout.flush()
        return
    try:
        with atomic_path(out) as tmp:
            if writer == "parquet":
                table.to_parquet(tmp, index=False)
            else:
                with open(tmp, "w", encoding="utf-8", newline="") as f:
                    write_predictions(table, f, writer)
    except OSError as err:
        raise ConfigError(f"--out {out}: cannot write ({err.strerror})") from None
    except (TypeError, ValueError) as err:  # pyarrow: a column of mixed value types
        raise ConfigError(f"--out {out}: Parquet cannot hold these predictions ({err}); "
                          "write .csv or .jsonl") from None
    err_console.print(f"wrote {len(table):,} predictions to {out}")


def _predict_kept(path: Path, name: str, keep: list[str]) -> Any:
    """The ``keep`` columns of the input file, as written, in its row order."""
    from grutune.data.readers import SUPPORTED, read_table
    from grutune.exceptions import DataError

    if path.suffix.lower() not in SUPPORTED:
        raise DataError(f"{name}: --keep copies columns of a CSV, Parquet or JSON Lines "
                        f"table; a {path.suffix or 'plain'} file has none")
    frame = read_table(path, as_written=keep,
                       flat={c: "a kept column must be text or numbers" for c in keep})
    for column in keep:
        if column not in frame.columns:
            raise DataError(f"{name}: no column {column!r} to keep (--keep); the columns "
                            f"are: {', '.join(map(str, frame.columns))}")
    return frame[keep].reset_index(drop=True)


@app.command("report")
def report_cmd(
    run_dir: Path = typer.Argument(..., metavar="RUN_DIR",
                                   help="A run directory (runs/STUDY)."),
    storage: RunStorage = None,
) -> None:
    """(Re)build RUN_DIR/report.html from the run's study and files (a tune or a compare
    run); works while the study is still running."""
    from grutune.api import report

    _setup_logging()
    with _fatal_errors():
        path = report(run_dir, storage)
    err_console.print(f"wrote {path}")


@app.command("dashboard")
def dashboard_cmd(
    run_dir: Path = typer.Argument(..., metavar="RUN_DIR",
                                   help="A run directory (runs/STUDY)."),
    port: int = typer.Option(8080, min=1, max=65535, metavar="PORT",
                             help="Port on 127.0.0.1."),
    storage: RunStorage = None,
) -> None:
    """Serve optuna-dashboard for RUN_DIR's study on http://127.0.0.1:PORT (Ctrl-C stops)."""
    from grutune.reporting.data import read_json
    from grutune.tuning.study import make_storage, recorded_storage
    from grutune.workflows.tune import require_run_dir

    _setup_logging()
    with _fatal_errors():
        require_run_dir(run_dir)
        try:
            from optuna_dashboard import run_server
        except ImportError:
            raise ConfigError("grutune dashboard needs optuna-dashboard; pip install "
                               "'grutune[dashboard]'") from None
        url = recorded_storage(run_dir, read_json(run_dir / "config.json") or {}, storage)
        if not url:
            raise ConfigError(f"{run_dir}: its study has not been created yet (no study "
                               "file); start the run first")
        storage = make_storage(url)
        err_console.print(f"optuna-dashboard for {run_dir} on http://127.0.0.1:{port} "
                          "(Ctrl-C stops)")
        run_server(storage, host="127.0.0.1", port=port)


@app.command("export")
def export_cmd(
    model: Path = typer.Argument(..., metavar="MODEL",
                                 help="A bundle directory (RUN_DIR/model)."),
    format: str = typer.Option("onnx", "--format", **_choice(EXPORT_FORMATS),
                               help="The exported model's format."),
    out: Path | None = typer.Option(None, metavar="FILE", help="Output file: .onnx, or .pt "
                                    "(.pth, .torchscript) for torchscript; not inside MODEL "
                                    "(default: MODEL/model.onnx or model.pt)."),
) -> None:
    """Export a saved model and check it against the bundle on the run's test split."""
    from grutune.export import TOLERANCE, export_bundle

    _setup_logging()
    with _fatal_errors():
        _check_output(out)
        result = export_bundle(model, format, out)
    err_console.print(f"wrote {result.path}; on the {result.rows} test rows (lengths "
                      f"{result.lengths[0]}-{result.lengths[1]}) its outputs match the "
                      f"bundle's within {result.max_abs_diff:.1e} (tolerance {TOLERANCE:.0e})")


@app.command()
def datasets() -> None:
    """List the built-in real datasets."""
    from rich.table import Table

    from grutune.data.datasets import DATASETS

    table = Table(title=_h("Built-in datasets (pip install 'grutune[datasets]')"))
    table.add_column("name", no_wrap=True)
    table.add_column("task", no_wrap=True)
    for col in ("size", "classes / horizon", "source"):
        table.add_column(col, overflow="fold")
    for d in DATASETS.values():
        table.add_row(d.name, d.task, d.size, d.classes, d.source)
    console = Console()  # a terminal's width (or COLUMNS): the table wraps its cells to fit
    if not console.is_terminal and not os.environ.get("COLUMNS", "").isdigit():
        console = Console(width=UNWRAPPED)  # a pipe or a file: one line per dataset
    console.print(table)


UNWRAPPED = 1000  # columns of `grutune datasets` into a pipe: wide enough for every row


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
