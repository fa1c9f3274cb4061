"""The command line: each command parses options -> configs -> one library call.

Exit codes: 0 success, 2 bad input or configuration (one line, no traceback),
1 internal error, 130 stopped by a second Ctrl-C.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from .config import COMPARE_SEEDS, DEFAULT_DATASET, DataConfig, StudyConfig, parse_duration
from .exceptions import ConfigError, GrutuneError

err_console = Console(stderr=True)


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
                typer.echo(err.ctx.get_help())
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


app = typer.Typer(cls=_OneLineErrors, add_completion=False, no_args_is_help=True,
                  pretty_exceptions_enable=False,
                  help="Tune, evaluate and ship GRU sequence models.")

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
    """Warnings as ``warning: ...`` lines on whatever sys.stderr is at the time."""

    def emit(self, record: logging.LogRecord) -> None:
        sys.stderr.write(f"warning: {record.getMessage()}\n")


def _setup_logging() -> None:
    logger = logging.getLogger("grutune")
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        logger.addHandler(_StderrHandler(logging.WARNING))
    logger.setLevel(logging.INFO)
    logger.propagate = False


# Options shared by `tune` and `compare` (the data and the search), one definition each.
File = Annotated[Path | None, typer.Argument(
    help=f"CSV, Parquet or JSON Lines file; omit to use --dataset (default {DEFAULT_DATASET}).")]
Dataset = Annotated[str | None, typer.Option(help="A built-in dataset (grutune datasets).")]
TaskName = Annotated[str | None, typer.Option(
    "--task", help="Task: text, series or forecast (default: the dataset's, else text).")]
Text = Annotated[str | None, typer.Option("--text", help="Text column (default: text).")]
Target = Annotated[str | None, typer.Option(
    help="Label column (default: label); for a forecast the value column(s), COL[,COL].")]
Test = Annotated[Path | None, typer.Option(help="Your own held-out test file.")]
IdColumn = Annotated[str | None, typer.Option(
    "--id", help="Series in long form: the series id column.")]
TimeColumn = Annotated[str | None, typer.Option(
    "--time", help="The time column (forecast; series in long form); default: row order.")]
Covariates = Annotated[str | None, typer.Option(
    help="Forecast: past-observed input columns, COL[,COL].")]
Horizon = Annotated[int | None, typer.Option(
    help="Forecast: steps predicted at once (default: the season, else 10).")]
Season = Annotated[int | None, typer.Option(
    help="Forecast: seasonal period for MASE and the seasonal-naive baseline (default: "
         "from the frequency).")]
Scaling = Annotated[str, typer.Option(
    help="Forecast: standard, minmax or robust scaling, fitted on the training part.")]
Trials = Annotated[int | None, typer.Option(help="Finished trials to aim for.")]
Budget = Annotated[str | None, typer.Option(
    help=f"Search wall time: 90s, 20m, 1h (default {StudyConfig.budget_s / 60:g}m).")]
MaxEpochs = Annotated[int | None, typer.Option(
    help="Epochs per trial at most (early stopping; default: text 20, series 100, "
         "forecast 60).")]
Sample = Annotated[int | None, typer.Option(help="Use a stratified sample of N rows.")]
Seed = Annotated[int, typer.Option(help="Seed of the split, sampler and trials.")]
Sampler = Annotated[str, typer.Option(help="tpe, random, grid, cmaes, qmc or gp.")]
Pruner = Annotated[str, typer.Option(help="median, percentile, asha, hyperband or none.")]
Workers = Annotated[int | None, typer.Option(
    help="Trial worker processes on this machine, one thread each (default, or 0: one per "
         "core).")]
Folds = Annotated[int | None, typer.Option(
    help="Score trials by k-fold cross-validation (default: 5 below 500 train+validation "
         "rows, else 1 = one validation split).")]
Metric = Annotated[str | None, typer.Option(
    help="Validation metric: accuracy (default), f1_macro, log_loss; forecast: mase "
         "(default), mae, rmse.")]
SpaceFile = Annotated[Path | None, typer.Option("--space",
                                                help="YAML file overriding the search space.")]
Storage = Annotated[str | None, typer.Option(
    help="Optuna storage URL (default: SQLite in the run directory).")]
StudyName = Annotated[str | None, typer.Option("--study",
                                               help="Study name (default: data name).")]
Heartbeat = Annotated[int, typer.Option(
    help="Database storages: seconds between a running trial's heartbeats.")]
Grace = Annotated[int, typer.Option(
    help="Database storages: a trial whose worker is silent this many seconds is failed "
         "and retried.")]
RunDir = Annotated[Path | None, typer.Option(help="Run directory (default runs/STUDY).")]
StopWords = Annotated[bool | None, typer.Option("--stop-words/--keep-stop-words",
                                                help="Remove English stop words.")]
MaxLen = Annotated[int | None, typer.Option(
    help="Tokens kept per text (default: 98th percentile of training lengths).")]
MinCount = Annotated[int, typer.Option(help="Minimum token count for the vocabulary.")]
MaxVocab = Annotated[int, typer.Option(help="Vocabulary size at most.")]


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
        scaling=o["scaling"], target_column=o["target"], sample=o["sample"], seed=o["seed"],
        stop_words=o["stop_words"], min_count=o["min_count"], max_vocab=o["max_vocab"],
        max_len=o["max_len"])
    search = dict(
        study_name=o["study"], run_dir=str(o["run_dir"]) if o["run_dir"] else None,
        storage=o["storage"], sampler=o["sampler"], pruner=o["pruner"], trials=o["trials"],
        budget_s=parse_duration(o["budget"]) if o["budget"] else None,
        max_epochs=o["max_epochs"],
        space_path=str(o["space"]) if o["space"] is not None else None, seed=o["seed"],
        folds=o["folds"], workers=o["workers"], heartbeat_s=o["heartbeat"],
        grace_s=o["grace"], **study)
    return (DataConfig(**{k: v for k, v in data.items() if v is not None}),
            StudyConfig(**{k: v for k, v in search.items() if v is not None}))


@app.command()
def tune(
    file: File = None, dataset: Dataset = None, task: TaskName = None, text: Text = None,
    target: Target = None, test: Test = None, id_column: IdColumn = None,
    time_column: TimeColumn = None, covariates: Covariates = None, horizon: Horizon = None,
    season: Season = None, scaling: Scaling = _D.scaling, trials: Trials = _S.trials,
    budget: Budget = None, max_epochs: MaxEpochs = None, sample: Sample = None,
    seed: Seed = _D.seed, sampler: Sampler = _S.sampler, pruner: Pruner = _S.pruner,
    workers: Workers = None,
    population: int = typer.Option(
        _S.population, help="Train K trials that share an architecture together as one "
        "stacked model (GRU classifiers; 1: one at a time, the CPU default - see "
        "bench/population.py)."),
    mlflow: str | None = typer.Option(None, "--mlflow", help="MLflow tracking URI "
                                      "(e.g. file:///path/mlruns): log every trial and the "
                                      "model when the run ends (pip install "
                                      "'grutune[mlflow]')."),
    repeats: int = typer.Option(
        _S.repeats, help="Seed repeats: re-train the top configurations with N seeds each "
        "and choose by the lower bound of the validation interval (1: off)."),
    repeat_top: int = typer.Option(_S.repeat_top,
                                   help="Configurations the seed repeats re-train."),
    ensemble: int = typer.Option(
        _S.ensemble, help="Without seed repeats, the final model averages the K best trials "
        "(1: the best trial alone)."),
    folds: Folds = None, metric: Metric = None, space: SpaceFile = None,
    storage: Storage = None, study: StudyName = None, heartbeat: Heartbeat = _S.heartbeat_s,
    grace: Grace = _S.grace_s, run_dir: RunDir = None, stop_words: StopWords = None,
    max_len: MaxLen = None, min_count: MinCount = _D.min_count, max_vocab: MaxVocab = _D.max_vocab,
) -> None:
    """Tune a GRU on FILE (or a built-in dataset), evaluate it on test, save the model."""
    options = locals()
    from .pipeline import tune as run_tune

    _setup_logging()
    with _fatal_errors():
        data_cfg, study_cfg = _configs(options, ensemble=ensemble, population=population,
                                       mlflow=mlflow, repeats=repeats, repeat_top=repeat_top)
        result = run_tune(data_cfg, study_cfg, metric=metric, console=err_console)
    if result.interrupted:
        raise typer.Exit(130)


@app.command()
def compare(
    file: File = None, dataset: Dataset = None, task: TaskName = None, text: Text = None,
    target: Target = None, test: Test = None, id_column: IdColumn = None,
    time_column: TimeColumn = None, covariates: Covariates = None, horizon: Horizon = None,
    season: Season = None, scaling: Scaling = _D.scaling,
    trials: Trials = _S.trials,
    budget: Annotated[str | None, typer.Option(
        help="Search wall time of EACH cell's study: 90s, 20m, 1h (default "
             f"{_S.budget_s / 60:g}m).")] = None,
    seeds: int = typer.Option(COMPARE_SEEDS, help="Seeds each winner is trained with for "
                              "the paired test (the same seeds for both cells)."),
    max_epochs: MaxEpochs = None, sample: Sample = None, seed: Seed = _D.seed,
    sampler: Sampler = _S.sampler, pruner: Pruner = _S.pruner, workers: Workers = None,
    folds: Folds = None, metric: Metric = None, space: SpaceFile = None,
    storage: Storage = None, study: StudyName = None, heartbeat: Heartbeat = _S.heartbeat_s,
    grace: Grace = _S.grace_s, run_dir: RunDir = None, stop_words: StopWords = None,
    max_len: MaxLen = None, min_count: MinCount = _D.min_count, max_vocab: MaxVocab = _D.max_vocab,
) -> None:
    """GRU vs LSTM on FILE (or a built-in dataset): both tuned on one split with the same
    budget at a matched size, each winner trained over the same seeds, a paired test;
    writes compare.json and report.html."""
    options = locals()
    from .compare import compare as run_compare

    _setup_logging()
    with _fatal_errors():
        data_cfg, study_cfg = _configs(options)
        result = run_compare(data_cfg, study_cfg, seeds=seeds, metric=metric,
                             console=err_console)
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
    model: Path = typer.Argument(..., help="A bundle directory (RUN_DIR/model)."),
    file: Path = typer.Argument(..., help="CSV, Parquet or JSON Lines rows to predict."),
    text: str | None = typer.Option(None, "--text", help="Text column (default: the "
                                       "training data's)."),
    out: Path | None = typer.Option(None, help="Output CSV (default: standard output)."),
) -> None:
    """Predict every row of FILE with a saved model."""
    from .files import atomic_path
    from .pipeline import predict_file

    _setup_logging()
    with _fatal_errors():
        _check_output(out)
        table = predict_file(model, file, text_column=text)
        if out is None:
            table.to_csv(sys.stdout, index=False)
        else:
            try:
                with atomic_path(out) as tmp:
                    table.to_csv(tmp, index=False)
            except OSError as err:
                raise ConfigError(f"--out {out}: cannot write ({err.strerror})") from None
            err_console.print(f"wrote {len(table):,} predictions to {out}")


def _require_run_dir(run_dir: Path) -> None:
    if not run_dir.is_dir():
        raise ConfigError(f"{run_dir}: no such directory (give a run directory, runs/STUDY)")
    if not (run_dir / "config.json").is_file():
        raise ConfigError(f"{run_dir}: not a grutune run directory (no config.json)")


@app.command("report")
def report_cmd(
    run_dir: Path = typer.Argument(..., help="A run directory (runs/STUDY)."),
) -> None:
    """(Re)build RUN_DIR/report.html from the run's study and files; works while the
    study is still running."""
    from .report import build_report

    _setup_logging()
    with _fatal_errors():
        _require_run_dir(run_dir)
        path = build_report(run_dir)
    err_console.print(f"wrote {path}")


@app.command("dashboard")
def dashboard_cmd(
    run_dir: Path = typer.Argument(..., help="A run directory (runs/STUDY)."),
    port: int = typer.Option(8080, min=1, max=65535, help="Port on 127.0.0.1."),
) -> None:
    """Serve optuna-dashboard for RUN_DIR's study on http://127.0.0.1:PORT (Ctrl-C stops)."""
    from .report_data import read_json
    from .study import make_storage, recorded_storage

    _setup_logging()
    with _fatal_errors():
        _require_run_dir(run_dir)
        try:
            from optuna_dashboard import run_server
        except ImportError:
            raise ConfigError("grutune dashboard needs optuna-dashboard; pip install "
                               "'grutune[dashboard]'") from None
        url = recorded_storage(run_dir, read_json(run_dir / "config.json") or {})
        if not url:
            raise ConfigError(f"{run_dir}: its study has not been created yet (no study "
                               "file); start the run first")
        storage = make_storage(url)
        err_console.print(f"optuna-dashboard for {run_dir} on http://127.0.0.1:{port} "
                          "(Ctrl-C stops)")
        run_server(storage, host="127.0.0.1", port=port)


@app.command("export")
def export_cmd(
    model: Path = typer.Argument(..., help="A bundle directory (RUN_DIR/model)."),
    format: str = typer.Option("onnx", "--format", help="onnx or torchscript."),
    out: Path | None = typer.Option(None, help="Output file (default: MODEL/model.onnx "
                                    "or model.pt)."),
) -> None:
    """Export a saved model and check it against the bundle on the run's test split."""
    from .export import TOLERANCE, export_bundle

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
    from .datasets import DATASETS

    table = Table(title="Built-in datasets (pip install 'grutune\\[datasets]')")
    for col in ("name", "task", "size", "classes / horizon", "source"):
        table.add_column(col)
    for d in DATASETS.values():
        table.add_row(d.name, d.task, d.size, d.classes, d.source)
    console = Console()
    console.width = max(console.width, 140)  # a pipe or narrow terminal: keep rows whole
    console.print(table)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
