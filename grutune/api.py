"""grutune from Python: tune a DataFrame, a file or a built-in dataset, then call the model.

``tune`` takes what a notebook has in hand and every command-line option as a keyword
of the same name (``max_epochs=3`` is ``--max-epochs 3``); options left out take the
library's defaults, which are the command line's too. It returns a ``Run``: the test
metrics with their intervals, the best parameters, a leaderboard of the trials, the
final model and the report, one attribute away. ``load`` reads a saved model; its
``predict`` runs the very code path of ``grutune predict``.

A DataFrame is saved into the run directory (``input/data.parquet``, types kept) before
the run, so a run directory always holds what it was tuned on and resumes from it; a call
that fails before its run starts (the data refused) removes what it saved.

Example (a quick look: two short trials on 300 BBC News articles)::

    import grutune

    run = grutune.tune("bbc-news", sample=300, trials=2, max_epochs=1, folds=1,
                       repeats=1, workers=1, run_dir="runs/api-demo")
    print(run.metrics["accuracy"], run.best_params["lr"])
    print(run.leaderboard().head())
    print(run.predict(["the striker scored twice in the cup final"]))
    model = grutune.load(run.run_dir / "model")
    print(model.predict_proba(["shares fell as the bank cut its forecast"]))
"""

from __future__ import annotations

import html
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from functools import cached_property
from pathlib import Path
from typing import TypeVar

import pandas as pd
import pyarrow as pa
from rich.console import Console

from grutune.bundle import Bundle, load_bundle
from grutune.config import COMPARE_SEEDS, DataConfig, StudyConfig, parse_duration
from grutune.data.datasets import DATASETS
from grutune.data.readers import SUPPORTED
from grutune.exceptions import ConfigError, DataError, GrutuneError
from grutune.reporting.page import build_compare_report, build_report
from grutune.tasks import get_task
from grutune.workflows.compare import CELLS, CompareResult
from grutune.workflows.compare import compare as compare_configs
from grutune.workflows.predict import predict_with
from grutune.workflows.tune import (
    INPUT,
    RUN_MARKERS,
    TuneResult,
    check_run_dir,
    require_run_dir,
)
from grutune.workflows.tune import tune as tune_configs

# keywords named as on the command line -> config fields
ALIASES = {"text": "text_column", "target": "target_column", "time": "time_column",
           "budget": "budget_s", "study": "study_name", "space": "space_path",
           "heartbeat": "heartbeat_s", "grace": "grace_s"}
DATA_FIELDS = {f.name for f in fields(DataConfig)} - {"dataset", "path", "test_path"}
STUDY_FIELDS = {f.name for f in fields(StudyConfig)}
Data = str | Path | pd.DataFrame
T = TypeVar("T")
# a run has started once it wrote a config.json (tune's, or a compare cell's): from then
# on its run directory, the saved DataFrame included, is kept for the run to resume
STARTED = ("config.json", *(f"{cell}/config.json" for cell in CELLS))


def tune(data: Data | tuple[Data, Data] | None = None, *, task: str | None = None,
         text: str | None = None, target: str | None = None, time: str | None = None,
         horizon: int | None = None, budget: str | float | None = None,
         trials: int | None = None, run_dir: str | Path | None = None,
         metric: str | None = None, quiet: bool = False, **options: object) -> Run:
    """Tune, evaluate on the untouched test split and save the model; the ``Run``.

    ``data``: a file path, a pandas DataFrame, a built-in dataset's name
    (``grutune.datasets()``), or a ``(train, test)`` pair of paths or DataFrames whose
    second part is the held-out test set; None tunes the default dataset. ``budget``:
    seconds or a duration such as "90s", "5m", "1h". Every other option of
    ``grutune tune`` is a keyword of the same name (``max_epochs``, ``folds``,
    ``repeats``, ``workers``, ``sampler``, ``seed``, ...), and ``report=False`` skips
    report.html; an unknown one is a ConfigError that lists them. ``quiet``: no plan,
    progress or result lines (warnings still go to the ``grutune`` logger).
    """
    return _run_or_undo(data, {
        "task": task, "text": text, "target": target, "time": time, "horizon": horizon,
        "budget": budget, "trials": trials, "run_dir": run_dir, **options}, None,
        lambda data_cfg, study_cfg: Run(tune_configs(
            data_cfg, study_cfg, metric=metric, console=Console(stderr=True, quiet=quiet))))


def compare(data: Data | tuple[Data, Data] | None = None, *, task: str | None = None,
            text: str | None = None, target: str | None = None, time: str | None = None,
            horizon: int | None = None, budget: str | float | None = None,
            trials: int | None = None, seeds: int = COMPARE_SEEDS,
            run_dir: str | Path | None = None, metric: str | None = None,
            quiet: bool = False, **options: object) -> CompareResult:
    """GRU against LSTM on one split at one size, each winner over the same ``seeds``,
    a paired test: ``grutune compare`` from Python. ``data`` and the options as ``tune``'s
    (``budget`` and ``trials`` per cell); the result's ``record`` is compare.json
    (``record["verdict"]["text"]`` says who won, if anyone)."""
    return _run_or_undo(data, {
        "task": task, "text": text, "target": target, "time": time, "horizon": horizon,
        "budget": budget, "trials": trials, "run_dir": run_dir, **options},
        ("compare.json", *CELLS),
        lambda data_cfg, study_cfg: compare_configs(
            data_cfg, study_cfg, seeds=seeds, metric=metric,
            console=Console(stderr=True, quiet=quiet)))


def report(run_dir: str | Path, storage: str | None = None) -> Path:
    """(Re)build ``report.html`` of a ``tune`` or ``compare`` run directory (also while
    its study still runs); the page's path. ``storage``: the study's URL, needed where
    the run directory records it without its password (a database URL with one)."""
    folder = Path(run_dir)
    if (folder / "compare.json").is_file():
        return build_compare_report(folder, storage)
    require_run_dir(folder)
    return build_report(folder, storage)


def _run_or_undo(data: Data | tuple[Data, Data] | None, given: dict,
                 markers: tuple[str, ...] | None,
                 call: Callable[[DataConfig, StudyConfig], T]) -> T:
    """``call`` on the configs of ``data`` and the keywords. If it fails before the run
    started (``STARTED``), what this call saved (a DataFrame's copy, the folders made for
    it) is removed: refused data leaves nothing written, and the retry with corrected
    data in the same run directory is not taken for another DataFrame."""
    made: list[Path] = []
    run_dir = None
    try:
        data_cfg, study_cfg = _configs(data, given, markers, made)
        run_dir = Path(study_cfg.run_dir)
        return call(data_cfg, study_cfg)
    except BaseException as err:
        if run_dir is None or not any((run_dir / name).is_file() for name in STARTED):
            for path in made:  # only what this call created, outermost first
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
            if made and run_dir is not None and isinstance(err, GrutuneError):
                # the message named the copy just removed: name what the caller gave
                saved = {run_dir / INPUT / "data.parquet": "DataFrame",
                         run_dir / INPUT / "test.parquet": "test DataFrame"}
                raise _renamed(err, saved) from None
        raise


def _renamed(err: GrutuneError, names: dict[Path, str]) -> GrutuneError:
    """``err`` with each path of ``names`` in its message replaced by its name (a
    temporary copy's path means nothing to the caller, who gave a DataFrame)."""
    message = str(err)
    for path, name in names.items():
        message = message.replace(str(path), name)
    return type(err)(message)


def _configs(data: Data | tuple[Data, Data] | None, given: dict,
             markers: tuple[str, ...] | None, made: list[Path]) -> tuple[DataConfig, StudyConfig]:
    """``data`` and the keywords -> the configs; DataFrames saved under the run directory
    (``INPUT``) first, what that created listed in ``made``."""
    data_kw, study_kw = _split_options({k: v for k, v in given.items() if v is not None})
    train, test = data if isinstance(data, tuple) else (data, None)
    folder = None
    if isinstance(train, pd.DataFrame) or isinstance(test, pd.DataFrame):
        study_kw.setdefault("study_name", "dataframe")
        study_kw.setdefault("run_dir", f"runs/{study_kw['study_name']}")
        check_run_dir(Path(study_kw["run_dir"]), (*markers, INPUT) if markers else RUN_MARKERS)
        folder = Path(study_kw["run_dir"]) / INPUT
    source = _source(train, test, folder, made)
    try:
        return DataConfig(**data_kw, **source), StudyConfig(**study_kw)
    except ConfigError as err:  # a field's rule, told by the keyword that was given
        field, _, rest = str(err).partition(":")
        keyword = {v: k for k, v in ALIASES.items()}.get(field)
        if keyword is None:
            raise
        raise ConfigError(f"{keyword}:{rest}") from None


def _split_options(options: dict) -> tuple[dict, dict]:
    """Keywords -> (DataConfig fields, StudyConfig fields); ``seed`` goes to both."""
    data, study = {}, {}
    for key, value in options.items():
        name = ALIASES.get(key, key)
        if name == "budget_s" and isinstance(value, str):
            value = parse_duration(value)
        if name in ("run_dir", "space_path") and value is not None:
            value = str(value)
        if name not in DATA_FIELDS and name not in STUDY_FIELDS:
            known = sorted({*DATA_FIELDS, *STUDY_FIELDS, *ALIASES} - set(ALIASES.values()))
            raise ConfigError(f"tune(): unknown option {key!r}; the options are "
                              f"{', '.join(known)}")
        if name in DATA_FIELDS:
            data[name] = value
        if name in STUDY_FIELDS:
            study[name] = value
    return data, study


def _source(train: Data | None, test: Data | None, folder: Path | None,
            made: list[Path]) -> dict:
    """The DataConfig fields naming the data: dataset, or path (+ test_path); DataFrames
    are saved under ``folder`` first."""
    if test is None and isinstance(train, str) and not Path(train).exists() \
            and train in DATASETS:
        return {"dataset": train}
    out = {"path": _as_file(train, folder, "data", made) if train is not None else None}
    if test is not None:
        out["test_path"] = _as_file(test, folder, "test", made)
    return out


def _as_file(data: Data, folder: Path | None, name: str, made: list[Path]) -> str:
    """A path as given, or a DataFrame saved as ``folder/name.parquet`` (its types kept);
    the outermost path that saving creates is appended to ``made``.

    A run directory tuned on one DataFrame refuses another (its split is of those rows).
    """
    if not isinstance(data, pd.DataFrame):
        if not isinstance(data, (str, Path)):
            raise ConfigError(f"tune(): data must be a path, a pandas DataFrame or a "
                              f"built-in dataset's name; got {type(data).__name__}")
        return str(data)
    path = folder / f"{name}.parquet"
    frame = data.reset_index(drop=True)
    if path.is_file():
        if not pd.read_parquet(path).equals(frame):
            raise ConfigError(f"{folder.parent}: tuned on another DataFrame ({path}); give a "
                              "new run_dir (or study) for new data")
        return str(path)
    # the missing ones among the file and its folders are a prefix, innermost first
    made.append([p for p in (path, folder, *folder.parents) if not p.exists()][-1])
    folder.mkdir(parents=True, exist_ok=True)
    _write_parquet(frame, path)
    return str(path)


def _write_parquet(frame: pd.DataFrame, path: Path) -> None:
    """``frame`` saved at ``path``; what parquet cannot store is a DataError that names the
    column and the rule, never pyarrow's error."""
    names = list(frame.columns)
    if not all(isinstance(c, str) for c in names):
        raise DataError(f"DataFrame: column names must be text; got {names[:5]}")
    duplicate = next((c for i, c in enumerate(names) if c in names[:i]), None)
    if duplicate is not None:
        raise DataError(f"DataFrame: duplicate column name {duplicate!r}; give each column "
                        "its own name")
    try:
        frame.to_parquet(path, index=False)  # converts the whole table before it writes
    except pa.ArrowException as err:
        raise DataError(_unstorable(frame, err)) from None


def _unstorable(frame: pd.DataFrame, err: Exception) -> str:
    """Why pyarrow refused ``frame``: its first column that does not convert alone."""
    for name in frame.columns:
        try:
            pa.Array.from_pandas(frame[name])
        except pa.ArrowException as column_err:
            kinds = list(dict.fromkeys(type(v).__name__ for v in frame[name]
                                       if not (pd.api.types.is_scalar(v) and pd.isna(v))))
            if len(kinds) > 1:
                return (f"DataFrame: column {name!r} mixes types ({' and '.join(kinds)}); "
                        "give one type per column")
            return f"DataFrame: column {name!r} cannot be stored ({column_err}); give flat values"
    return f"DataFrame: cannot be stored as parquet ({err})"


@dataclass
class Model:
    """A saved model, ready to predict (``load``)."""

    bundle: Bundle
    path: Path

    @property
    def task(self) -> str:
        return str(self.bundle.state.get("task"))

    def predict(self, data: Data | Sequence[str]) -> pd.DataFrame:
        """One prediction row per input row (for a forecaster: per future step), exactly
        as ``grutune predict`` writes them. ``data``: a DataFrame or a file path; for a
        model of texts also one text or a list of texts.

        A single str is a file path when it names an existing file, ends in an extension
        grutune reads (``.csv``, ``.tsv``, ``.parquet``, ``.jsonl``, ...) or holds a path
        separator and no whitespace; such a path that names no file is a DataError ("no
        such file"), never a text. Any other str is one text for a model of texts and a
        path for any other model. A text that looks like a path goes in a list:
        ``predict(["see notes.txt"])``."""
        if isinstance(data, Path) or (isinstance(data, str) and (
                not self._takes_texts or _names_a_file(data))):
            return predict_with(self.bundle, data, where=str(self.path))
        frame = self._frame(data)
        with tempfile.TemporaryDirectory(prefix="grutune-predict-") as folder:
            path = Path(folder) / "rows.parquet"
            try:
                _write_parquet(frame, path)
                return predict_with(self.bundle, path, where=str(self.path))
            except GrutuneError as err:
                raise _renamed(err, {path: "DataFrame"}) from None

    @property
    def _takes_texts(self) -> bool:  # the state names the column texts are read from
        return isinstance(self.bundle.state.get("text_column"), str)

    def predict_proba(self, data: Data | Sequence[str]) -> pd.DataFrame:
        """The class probabilities (``prob_<class>`` columns) of a classifier."""
        table = self.predict(data)
        columns = [c for c in table.columns if c.startswith("prob_")]
        if not columns:
            raise ConfigError(f"{self.path}: a {self.task} model gives no class "
                              "probabilities; use predict")
        return table[columns]

    def forecast(self, history: Data) -> pd.DataFrame:
        """A forecaster's next steps after ``history`` (a DataFrame or a file)."""
        if not get_task(self.task).forecasts:
            raise ConfigError(f"{self.path}: a {self.task} model does not forecast; use "
                              "predict")
        return self.predict(history)

    def _frame(self, data: object) -> pd.DataFrame:
        if isinstance(data, pd.DataFrame):
            return data.reset_index(drop=True)
        if self._takes_texts and isinstance(data, (str, Sequence)):
            texts = [data] if isinstance(data, str) else list(data)
            if all(isinstance(t, str) for t in texts):
                return pd.DataFrame({self.bundle.state["text_column"]: texts})
        raise ConfigError(f"predict(): give a DataFrame or a file path (a text model also "
                          f"takes a list of texts); got {type(data).__name__}")


def _names_a_file(text: str) -> bool:
    """Whether ``Model.predict`` reads a single str as a file path (its docstring)."""
    path = Path(text)
    try:
        if path.is_file():
            return True
    except OSError:  # a long text is too long a file name (ENAMETOOLONG): not a file
        pass
    return path.suffix.lower() in SUPPORTED or (
        not any(c.isspace() for c in text) and ("/" in text or os.sep in text))


def load(path: str | Path) -> Model:
    """The model saved in a run's ``model/`` folder (or any bundle directory)."""
    return Model(load_bundle(path), Path(path))


@dataclass
class Run:
    """A finished (or interrupted) tuning run and what it left in ``run_dir``."""

    result: TuneResult

    @property
    def run_dir(self) -> Path:
        return Path(self.result.run_dir)

    @property
    def metrics(self) -> dict:
        """The test metrics (metrics.json), intervals under ``"intervals"``."""
        return self.result.metrics

    @property
    def best_params(self) -> dict:
        return self.result.best_params

    @property
    def report_path(self) -> Path:
        return self.run_dir / "report.html"

    @cached_property
    def model(self) -> Model:
        return load(self.run_dir / "model")

    def predict(self, data: Data | Sequence[str]) -> pd.DataFrame:
        return self.model.predict(data)

    def predict_proba(self, data: Data | Sequence[str]) -> pd.DataFrame:
        return self.model.predict_proba(data)

    def leaderboard(self) -> pd.DataFrame:
        """The trials (trials.csv), complete ones first, best first."""
        table = pd.read_csv(self.run_dir / "trials.csv")
        ascending = _direction(self.run_dir) == "minimize"
        complete = table["state"] == "COMPLETE"
        return pd.concat([table[complete].sort_values("value", ascending=ascending),
                          table[~complete]]).reset_index(drop=True)

    def _repr_html_(self) -> str:
        rows = [("run directory", str(self.run_dir)), ("task", self.metrics.get("task")),
                *((k, f"{v:.4g}") for k, v in self.metrics.items()
                  if isinstance(v, float)),
                ("best parameters", ", ".join(f"{k}={v}" for k, v in self.best_params.items()))]
        body = "".join(f"<tr><th style='text-align:left'>{html.escape(str(k))}</th>"
                       f"<td>{html.escape(str(v))}</td></tr>" for k, v in rows)
        return f"<table>{body}</table><p>report: {html.escape(str(self.report_path))}</p>"


def _direction(run_dir: Path) -> str:
    """The direction of the run's validation metric (its task and ``metric``, as
    config.json recorded them)."""
    config = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    return get_task(config["data"]["task"], config.get("metric")).direction


def datasets() -> pd.DataFrame:
    """The built-in datasets: name, task, size and description."""
    return pd.DataFrame([{"name": d.name, "task": d.task, "size": d.size,
                          "description": d.description} for d in DATASETS.values()])
