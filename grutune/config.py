"""Frozen configuration dataclasses, validated on construction.

Every rule a value can break is checked here, once, with a message that states the rule
and the offending value, so the rest of the code can trust its inputs.

>>> TrainConfig(lr=1e-3, batch_size=32).batch_size
32
>>> parse_duration("1h30m")
5400.0
"""

from __future__ import annotations

import numbers
import re
import unicodedata
from dataclasses import asdict, dataclass, fields
from pathlib import PurePath
from typing import Any

from grutune.exceptions import ConfigError

OPTIMIZERS = ("adamw", "adam", "sgd", "rmsprop")
SCHEDULES = ("constant", "step", "exponential", "cosine")
CELLS = ("gru", "lstm")
POOLINGS = ("last", "mean", "max", "attention")
INITS = ("default", "xavier", "he", "orthogonal")
SCALINGS = ("standard", "minmax", "robust")
BASELINES = ("none", "naive", "seasonal", "smooth")
DEFAULT_DATASET = "bbc-news"  # what `grutune tune` with no data tunes
DEFAULT_TASK = "text"  # the task of a data file when none is named
# grutune compare: seeds per cell for the paired test (5 missed a 0.03 MASE gap on
# sunspots at p = 0.053 that 10 found at p = 0.0002)
COMPARE_SEEDS = 10


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


SEED_MAX = 2**32 - 1  # NumPy's and scikit-learn's seeds are 32-bit


def _check_seed(seed: int) -> None:
    _check(isinstance(seed, int) and 0 <= seed <= SEED_MAX,
           f"--seed: must be an integer from 0 to {SEED_MAX}; got {seed!r}")


# a field's annotation (text, under ``from __future__ import annotations``) -> what a
# value of it may be; bool is refused where a number is meant (True is an int in Python)
_KINDS = {"str": (str,), "int": (numbers.Integral,), "float": (numbers.Real,),
          "bool": (bool,)}
_KIND_WORDS = {"str": "text", "int": "an integer", "float": "a number", "bool": "True or False"}


def _check_types(config: object) -> None:
    """Every field of a config dataclass holds a value of its annotated type, so a
    wrong-typed keyword from Python (``trials="5"``) is one ConfigError naming it,
    not a TypeError deep in the run.

    >>> StudyConfig(trials="5")
    Traceback (most recent call last):
    grutune.exceptions.ConfigError: trials: must be an integer or None; got '5' (str)
    """
    for field in fields(config):  # type: ignore[arg-type]
        value = getattr(config, field.name)
        names = [n.strip() for n in str(field.type).split("|")]
        if value is None and "None" in names:
            continue
        kinds = [n for n in names if n in _KINDS]
        if not kinds:
            continue
        number = "bool" not in kinds and isinstance(value, bool)
        if number or not isinstance(value, tuple(t for n in kinds for t in _KINDS[n])):
            words = " or ".join([_KIND_WORDS[n] for n in kinds]
                                + (["None"] if "None" in names else []))
            raise ConfigError(f"{field.name}: must be {words}; got {value!r} "
                              f"({type(value).__name__})")


def _in(name: str, value: Any, allowed: tuple) -> None:
    options = ", ".join(map(str, allowed))
    _check(value in allowed, f"{name}: must be one of {options}; got {value!r}")


@dataclass(frozen=True)
class DataConfig:
    """How raw data becomes prepared tensors; fixed for the whole study (not tuned)."""

    dataset: str | None = None  # a built-in dataset; None with no path: DEFAULT_DATASET
    path: str | None = None  # the user's file (csv, parquet, jsonl)
    test_path: str | None = None  # the user's own held-out file; else a split is carved
    task: str | None = None  # a registered task's name; None: the dataset's, else DEFAULT_TASK
    text_column: str | None = None  # None: the built-in dataset's, or "text"
    target_column: str | None = None  # None: the built-in dataset's, or "label"
    id_column: str | None = None  # series: long-form tables, the series id column
    time_column: str | None = None  # orders the steps (series long form, forecast, recommend)
    covariates: str | None = None  # forecast: past-observed input columns, "a,b"
    user_column: str | None = None  # recommend: whose history an event belongs to
    item_column: str | None = None  # recommend: the item of an event
    session_column: str | None = None  # recommend: histories are sessions (of a user)
    horizon: int | None = None  # forecast: steps predicted at once; None: the season (or 10)
    season: int | None = None  # forecast: seasonal period; None: inferred from the frequency
    scaling: str = "standard"  # forecast: per-column scaling fitted on the training part
    sample: int | None = None  # stratified sample of N rows, for a quick look
    seed: int = 0  # split, sampling and trial seeds derive from this
    stop_words: bool | None = None  # None: the dataset's default (off for user files)
    stem: bool | None = None  # Snowball stems; None: the dataset's default (off for user files)
    min_count: int = 2  # a token must occur this often in the training split
    max_vocab: int = 20_000  # most frequent tokens kept, plus <pad> and <unk>
    max_len: int | None = None  # None: the `len_percentile` of training lengths
    len_percentile: float = 98.0  # percentile of training lengths used for the automatic max_len
    val_fraction: float = 0.15  # of all rows (of the training part with a given test)
    test_fraction: float = 0.15  # of all rows, when no test split is given

    def __post_init__(self) -> None:
        _check_types(self)
        _check(self.dataset is None or self.path is None, "give a FILE or --dataset, not both")
        _check_seed(self.seed)
        _in("--scaling", self.scaling, SCALINGS)
        _check(self.horizon is None or self.horizon >= 1,
               f"--horizon: must be >= 1; got {self.horizon}")
        _check(self.season is None or self.season >= 1,
               f"--season: must be >= 1; got {self.season}")
        _check(self.sample is None or self.sample >= 20,
               f"--sample: must be at least 20 rows; got {self.sample}")
        _check(self.min_count >= 1, f"min_count: must be >= 1; got {self.min_count}")
        _check(self.max_vocab >= 10, f"max_vocab: must be >= 10; got {self.max_vocab}")
        _check(self.max_len is None or self.max_len >= 1,
               f"--max-len: must be >= 1; got {self.max_len}")
        _check(0 < self.len_percentile <= 100,
               f"len_percentile: must be in (0, 100]; got {self.len_percentile}")
        for name in ("val_fraction", "test_fraction"):
            value = getattr(self, name)
            _check(0 < value < 0.5, f"{name}: must be in (0, 0.5); got {value}")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of a SequenceModel; see model.py for the data flow."""

    num_outputs: int  # classes (or forecast values) produced by the head
    kind: str = "sequence"  # the model family, a name in model.MODEL_KINDS (set by the task)
    vocab_size: int = 0  # > 0: token ids through an embedding; 0: numeric input
    input_dim: int = 1  # features per time step when vocab_size == 0
    embed_dim: int = 128  # embedding (or input projection) width
    cell: str = "gru"  # "gru", or "lstm" as the comparison cell
    hidden_size: int = 64  # per direction
    num_layers: int = 1
    bidirectional: bool = False
    layer_dropout: float = 0.0  # between stacked recurrent layers
    pooling: str = "mean"  # how the sequence of states becomes one vector
    dropout: float = 0.0  # on embeddings and on the pooled vector
    init: str = "default"  # weight initialization scheme
    series_norm: bool = False  # numeric input: z-normalize each series over its valid steps
    # forecasting (kind "forecast"): the head emits [horizon, targets] values
    horizon: int = 0  # 0: a classifier
    targets: int = 1  # forecast targets: the first `targets` input channels
    lookback: int = 0  # the GRU reads the last `lookback` steps of a window (0: all)
    season: int = 1  # for the seasonal-naive baseline
    baseline: str = "none"  # predict the residual over this baseline forecast
    window_norm: bool = False  # standardize each window's targets by its own mean/std

    def __post_init__(self) -> None:
        _check(self.num_outputs >= 1, f"num_outputs: must be >= 1; got {self.num_outputs}")
        _check(self.vocab_size >= 0, f"vocab_size: must be >= 0; got {self.vocab_size}")
        _check(self.embed_dim >= 1, f"embed_dim: must be >= 1; got {self.embed_dim}")
        _check(self.hidden_size >= 1, f"hidden_size: must be >= 1; got {self.hidden_size}")
        _check(self.num_layers >= 1, f"num_layers: must be >= 1; got {self.num_layers}")
        _in("cell", self.cell, CELLS)
        _in("pooling", self.pooling, POOLINGS)
        _in("init", self.init, INITS)
        _in("baseline", self.baseline, BASELINES)
        _check(self.horizon >= 0 and self.lookback >= 0 and self.season >= 1,
               "horizon, lookback: must be >= 0, season >= 1")
        _check(self.horizon == 0 or self.num_outputs == self.horizon * self.targets,
               f"num_outputs: must be horizon x targets for a forecaster; got "
               f"{self.num_outputs}")
        for name in ("layer_dropout", "dropout"):
            value = getattr(self, name)
            _check(0 <= value < 1, f"{name}: must be in [0, 1); got {value}")


@dataclass(frozen=True)
class TrainConfig:
    """How one model is trained; trainer.py reads nothing else."""

    optimizer: str = "adamw"
    lr: float = 1e-3  # peak learning rate (after warm-up)
    momentum: float = 0.9  # sgd only
    nesterov: bool = False  # sgd only
    weight_decay: float = 0.0  # decoupled: weights shrink by lr * wd each step
    l2_penalty: float = 0.0  # explicit 0.5 * l2 * ||W||^2 added to the loss
    schedule: str = "constant"
    warmup_epochs: float = 0.0  # linear warm-up from lr/10, in epochs
    step_size: int = 5  # "step": decay every step_size epochs
    gamma: float = 0.5  # decay factor for "step" (per step) and "exponential" (per epoch)
    batch_size: int = 64
    max_epochs: int = 20
    patience: int = 4  # epochs without validation improvement before stopping
    grad_clip: float = 0.0  # max global gradient norm; 0 = no clipping
    seed: int = 0
    epoch_rows: int = 0  # training rows drawn at random per epoch; 0 = every row once
    average: int = 1  # each epoch's model: its weights averaged with the N - 1 epochs before

    def __post_init__(self) -> None:
        _in("optimizer", self.optimizer, OPTIMIZERS)
        _in("schedule", self.schedule, SCHEDULES)
        _check(self.lr > 0, f"lr: must be > 0; got {self.lr}")
        _check(0 <= self.momentum < 1, f"momentum: must be in [0, 1); got {self.momentum}")
        _check(self.weight_decay >= 0, f"weight_decay: must be >= 0; got {self.weight_decay}")
        _check(self.l2_penalty >= 0, f"l2_penalty: must be >= 0; got {self.l2_penalty}")
        _check(self.warmup_epochs >= 0, f"warmup_epochs: must be >= 0; got {self.warmup_epochs}")
        _check(self.step_size >= 1, f"step_size: must be >= 1; got {self.step_size}")
        _check(0 < self.gamma <= 1, f"gamma: must be in (0, 1]; got {self.gamma}")
        _check(self.batch_size >= 1, f"batch_size: must be >= 1; got {self.batch_size}")
        _check(self.max_epochs >= 1, f"max_epochs: must be >= 1; got {self.max_epochs}")
        _check(self.patience >= 1, f"patience: must be >= 1; got {self.patience}")
        _check(self.grad_clip >= 0, f"grad_clip: must be >= 0; got {self.grad_clip}")
        _check(self.epoch_rows >= 0, f"epoch_rows: must be >= 0; got {self.epoch_rows}")
        _check(self.average >= 1, f"average: must be >= 1; got {self.average}")


SAMPLERS = ("tpe", "random", "grid", "cmaes", "qmc", "gp")
PRUNERS = ("median", "percentile", "asha", "hyperband", "none")
DEVICES = ("auto", "cpu", "cuda", "cuda:N", "mps")  # nn.device resolves them
PRECISIONS = ("fp32", "bf16", "fp16")
DEVICE_SPEC = re.compile(r"auto|cpu|mps|cuda(:\d+)?")  # a --device value (nn.device resolves it)


@dataclass(frozen=True)
class StudyConfig:
    """The search: its budget, engine parts and where it lives."""

    study_name: str | None = None  # None: from the data's name (default_study_name)
    run_dir: str | None = None  # None: runs/<study_name>
    storage: str | None = None  # None: sqlite file study.db in the run directory
    sampler: str = "tpe"
    pruner: str = "median"
    trials: int | None = 60  # finished (complete or pruned) trials the study aims for
    budget_s: float | None = 600.0  # wall time of this invocation's search
    max_epochs: int | None = None  # None: the task's default_max_epochs
    space_path: str | None = None
    seed: int = 0
    ensemble: int = 3  # the final model averages the K best trials (1 = best trial alone)
    folds: int | None = None  # cross-validation folds; None: 5 below 500 rows, else 1
    workers: int | None = None  # trial worker processes, one thread each; None or 0: one
    # per core (workers.default_workers), on CUDA one per visible GPU (device.gpu_workers)
    device: str = "auto"  # auto (a CUDA GPU, else Apple's mps, else cpu), cpu, cuda,
    # cuda:N, mps; resolved and checked against the machine by workflows.tune.resolve
    precision: str = "fp32"  # bf16 / fp16: autocast on CUDA (fp16 with a loss scaler)
    population: int = 1  # trials trained together as one stacked model (1: one at a time)
    mlflow: str | None = None  # tracking URI: log every trial and the bundle when done
    repeats: int = 3  # seeds per configuration in the seed repeats (1: off)
    repeat_top: int = 3  # configurations the seed repeats re-train
    baseline: bool = True  # also fit the task's baseline on the same split (seconds)
    refit: bool = True  # train the final models again on train + validation (refit.py)
    heartbeat_s: int = 30  # RDB storages: a running trial's heartbeat interval
    grace_s: int = 120  # RDB storages: a trial silent this long is failed and retried
    search: bool = True  # run trials (False: ``grutune finalize``, the study's trials only)
    finalize: bool = True  # after the search, build the final model (False: search only)
    report: bool = True  # write report.html (False: a run nobody reads, such as the
    # temporary run directory of an estimator's fit)

    def __post_init__(self) -> None:
        _check_types(self)
        _in("--sampler", self.sampler, SAMPLERS)
        _in("--pruner", self.pruner, PRUNERS)
        _check_seed(self.seed)
        _check(self.trials is None or self.trials >= 1,
               f"--trials: must be >= 1; got {self.trials}")
        _check(self.budget_s is None or 0 < self.budget_s < float("inf"),
               f"--budget: must be a finite duration > 0; got {self.budget_s}")
        _check(self.trials is not None or self.budget_s is not None,
               "give --trials or --budget (or both): the search needs an end")
        _check(self.max_epochs is None or self.max_epochs >= 1,
               f"--max-epochs: must be >= 1; got {self.max_epochs}")
        _check(self.ensemble >= 1, f"--ensemble: must be >= 1; got {self.ensemble}")
        _check(self.workers is None or self.workers >= 0,
               f"--workers: must be >= 0 (0: one per core); got {self.workers}")
        _check(self.population >= 1, f"--population: must be >= 1; got {self.population}")
        _check(isinstance(self.device, str)
               and bool(DEVICE_SPEC.fullmatch(self.device)),
               f"--device: must be auto, cpu, cuda, cuda:N or mps; got {self.device!r}")
        _in("--precision", self.precision, PRECISIONS)
        _check(self.repeats >= 1, f"--repeats: must be >= 1; got {self.repeats}")
        _check(self.repeat_top >= 1, f"--repeat-top: must be >= 1; got {self.repeat_top}")
        _check(self.heartbeat_s >= 1, f"--heartbeat: must be >= 1 s; got {self.heartbeat_s}")
        _check(self.grace_s > self.heartbeat_s, f"--grace: must be longer than --heartbeat "
               f"({self.heartbeat_s} s); got {self.grace_s}")
        _check(self.search or self.finalize, "a run that neither searches nor finalizes "
               "does nothing: keep the search or the finalization")
        _check(self.folds is None or self.folds >= 1,
               f"--folds: must be >= 1 (1 = a single validation split); got {self.folds}")
        _check(self.study_name is None
               or bool(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", self.study_name)),
               f"--study: letters, digits, '.', '_' and '-' only; got {self.study_name!r}")

    def public_dict(self) -> dict:
        """The config as files record it (``config.json``, ``compare.json``): the storage
        URL and the MLflow URI with their passwords hidden."""
        from grutune.urls import hide_password

        return {**asdict(self), "storage": hide_password(self.storage),
                "mlflow": hide_password(self.mlflow)}

    def __repr__(self) -> str:  # a logged config never shows a password
        shown = ", ".join(f"{k}={v!r}" for k, v in self.public_dict().items())
        return f"StudyConfig({shown})"


def default_study_name(path: str | None, dataset: str | None, sample: int | None) -> str:
    """A study name from the data's name: letters outside ASCII lose their accents, any
    other character outside ``[A-Za-z0-9._-]`` becomes ``-`` (``my data.csv`` ->
    ``my-data``), so a file name never breaks the ``--study`` rule.

    >>> default_study_name("Données été 2024.csv", None, None)
    'Donnees-ete-2024'
    >>> default_study_name(None, "bbc-news", 300)
    'bbc-news-sample300'
    """
    base = PurePath(path).stem if path is not None else (dataset or "data")
    ascii_base = unicodedata.normalize("NFKD", base).encode("ascii", "ignore").decode()
    base = re.sub(r"[^A-Za-z0-9._-]+", "-", ascii_base).strip("-._") or "data"
    return f"{base}-sample{sample}" if sample else base


_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?")


def parse_duration(text: str) -> float:
    """Seconds in a duration like ``90s``, ``20m``, ``1h30m`` or a bare number of seconds.

    >>> parse_duration("20m")
    1200.0
    """
    text = text.strip().lower()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:  # "inf" and "nan" parse as floats but are no durations
        if not 0 < seconds < float("inf"):
            raise ConfigError(f"--budget: must be a finite duration > 0; got {text!r}")
        return seconds
    match = _DURATION.fullmatch(text)
    if not text or not match or not any(match.groups()):
        raise ConfigError(f"--budget: expected a duration like 90s, 20m or 1h30m; got {text!r}")
    hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def to_dict(config: Any) -> dict:
    """A config as a plain JSON-able dict."""
    return asdict(config)


def from_dict(cls: type, data: dict) -> Any:
    """Build ``cls`` from a dict, ignoring keys it does not know (older/newer files)."""
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})
