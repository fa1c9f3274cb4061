"""scikit-learn estimators: ``fit`` tunes a GRU, ``predict`` calls the tuned model.

As ``LogisticRegressionCV`` cross-validates inside ``fit``, these tune inside ``fit``:
the data given to ``fit`` is split 70/15/15 as ``grutune.tune`` splits it, the search
picks a configuration on the validation part, and the chosen model is scored once on
the held-out part (``holdout_metrics_``). They are thin: every fit is one
``grutune.tune`` run, and ``predict`` is the code path of ``grutune predict``.

- ``GRUTextClassifier``: ``X`` is a sequence of texts (a list, a 1-d array, a Series).
- ``GRUSeriesClassifier``: ``X`` is a 2-d array, one equal-length series per row
  (univariate; for several channels or unequal lengths use ``grutune.tune`` with a
  long table).

Example (a quick look: BBC News, two short trials)::

    from grutune.data.datasets import get_dataset
    from grutune.estimators import GRUTextClassifier

    frame = get_dataset("bbc-news").loader()[0].sample(300, random_state=0)
    clf = GRUTextClassifier(trials=2, max_epochs=1, folds=1, repeats=1, verbose=0)
    clf.fit(frame["text"], frame["topic"])
    print(clf.classes_, clf.holdout_metrics_["accuracy"])
    print(clf.predict(["the striker scored twice in the cup final"]))

With ``run_dir=None`` a fit runs in a temporary directory, removed once the model is in
memory; give ``run_dir`` to keep the runs (report.html, trials.csv, the bundle): each fit
goes in its own ``run_dir/fit-<key>`` (``run_dir_``), the key a hash of the data and the
options, so the clones a cross-validation or grid search fits (also in parallel) keep
their runs side by side, and fitting the same data with the same options resumes its run.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from grutune.api import Model, tune
from grutune.exceptions import DataError

TEXT, TARGET = "text", "label"  # column names of the frame a fit hands to grutune.tune


def _check_labels(y: object) -> None:
    """DataError at the first missing label (None, NaN, NA) of ``y``: as text it would
    become a class "nan" (a list), or fail in scikit-learn as an unknown label type (a
    Series)."""
    missing = np.flatnonzero(pd.isna(np.asarray(y, dtype=object).reshape(-1)))
    if missing.size:
        raise DataError(f"y has no label at position {missing[0]}; every training row needs "
                        "one")


class _GRUClassifier(ClassifierMixin, BaseEstimator):
    """What both classifiers share: the tuning options, fit -> tune -> model, predict.

    Options are ``grutune.tune``'s, each None for the library's default, except
    ``workers``: one process by default, since an estimator is often fitted inside
    scikit-learn's own parallel loops (cross-validation, grid search), which should not
    each fork a worker per core. ``random_state`` is the run's ``seed`` (split, sampling
    and trial seeds derive from it); ``verbose=0`` prints no plan, progress or result
    (warnings still go to the ``grutune`` logger, as a library's do); ``baseline=False`` and
    ``refit=False`` skip the baseline and the refit on train + validation (``--no-baseline``,
    ``--no-refit``), e.g. inside a grid search that only reads the model.
    """

    _task: ClassVar[str]
    _columns: ClassVar[dict[str, str]] = {}  # grutune.tune's column keywords for the frame

    def __init__(self, budget: str | float | None = None, trials: int | None = None,
                 max_epochs: int | None = None, folds: int | None = None,
                 repeats: int | None = None, ensemble: int | None = None,
                 workers: int | None = 1, random_state: int | None = None,
                 run_dir: str | Path | None = None, verbose: int = 1,
                 baseline: bool | None = None, refit: bool | None = None):
        self.budget = budget
        self.trials = trials
        self.max_epochs = max_epochs
        self.folds = folds
        self.repeats = repeats
        self.ensemble = ensemble
        self.workers = workers
        self.random_state = random_state
        self.run_dir = run_dir
        self.verbose = verbose
        self.baseline = baseline
        self.refit = refit

    def _frame(self, X: object, fitting: bool) -> pd.DataFrame:  # noqa: N803 - sklearn's name
        raise NotImplementedError

    def _tune_options(self) -> dict:
        options = {"budget": self.budget, "trials": self.trials, "max_epochs": self.max_epochs,
                   "folds": self.folds, "repeats": self.repeats, "ensemble": self.ensemble,
                   "workers": self.workers, "seed": self.random_state,
                   "baseline": self.baseline, "refit": self.refit}
        return {k: v for k, v in options.items() if v is not None}

    def fit(self, X: object, y: Sequence) -> _GRUClassifier:  # noqa: N803
        """Tune on ``X``, ``y`` (split 70/15/15 inside); the fitted estimator."""
        if y is None:  # scikit-learn's wording, which its checks look for
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target "
                             "y is None")
        _check_labels(y)
        frame = self._frame(X, fitting=True)
        y = column_or_1d(y, warn=True)
        if len(y) != len(frame):
            raise ValueError(f"y: one label per row of X ({len(frame)}); got {len(y)}")
        check_classification_targets(y)
        self.classes_ = np.unique(y)
        if len(self.classes_) < 2:
            raise ValueError(f"y: a classifier needs at least 2 classes; got 1 class "
                             f"({self.classes_.tolist()})")
        frame[TARGET] = [str(v) for v in y]  # labels as text; predict maps them back
        folder = self._fit_dir(frame) if self.run_dir is not None else Path(
            tempfile.mkdtemp(prefix="grutune-fit-")) / "run"
        try:
            # a temporary run directory is deleted below: no report, as nobody could read it
            run = tune(frame, task=self._task, target=TARGET, run_dir=folder,
                       quiet=not self.verbose, report=self.run_dir is not None,
                       **self._columns, **self._tune_options())
            model = run.model
            self.holdout_metrics_ = run.metrics
            self.best_params_ = run.best_params
        finally:
            if self.run_dir is None:
                shutil.rmtree(folder.parent, ignore_errors=True)
        self.model_: Model = model
        self.run_dir_ = folder if self.run_dir is not None else None
        return self

    def _fit_dir(self, frame: pd.DataFrame) -> Path:
        """``run_dir/fit-<key>``: the key hashes the rows (labels included) and the
        options that shape the run, so different data or options never share a run."""
        digest = hashlib.sha256(pd.util.hash_pandas_object(frame, index=False).to_numpy()
                                .tobytes())
        options = {k: v for k, v in self.get_params().items() if k not in ("run_dir", "verbose")}
        digest.update(json.dumps(options, sort_keys=True, default=str).encode())
        return Path(self.run_dir) / f"fit-{digest.hexdigest()[:12]}"

    def predict_proba(self, X: object) -> np.ndarray:  # noqa: N803
        """Class probabilities, one row per row of ``X``, columns in ``classes_`` order."""
        check_is_fitted(self, "model_")
        table = self.model_.predict(self._frame(X, fitting=False))
        return table[[f"prob_{c}" for c in self.classes_]].to_numpy(dtype=np.float64)

    def predict(self, X: object) -> np.ndarray:  # noqa: N803
        """The most probable class of each row of ``X`` (values of ``classes_``)."""
        check_is_fitted(self, "model_")
        table = self.model_.predict(self._frame(X, fitting=False))
        by_text = {str(c): c for c in self.classes_}
        return np.array([by_text[str(v)] for v in table["prediction"]],
                        dtype=self.classes_.dtype)


class GRUTextClassifier(_GRUClassifier):
    """A GRU text classifier tuned inside ``fit``; ``X``: a sequence of texts.

    >>> GRUTextClassifier(trials=5).get_params()["trials"]
    5
    """

    _task = "text"
    _columns = {"text": TEXT}

    def _frame(self, X: object, fitting: bool) -> pd.DataFrame:  # noqa: N803
        if isinstance(X, str) or not isinstance(X, (Sequence, np.ndarray, pd.Series)):
            raise ValueError(f"X: a sequence of texts (a list, a 1-d array or a Series); "
                             f"got {type(X).__name__}")
        texts = list(X)
        bad = next((i for i, t in enumerate(texts) if not isinstance(t, str)), None)
        if bad is not None:
            raise ValueError(f"X: every row must be a text; row {bad} is "
                             f"{type(texts[bad]).__name__} ({str(texts[bad])[:40]!r})")
        if not texts:
            raise ValueError("X: no texts (0 rows)")
        return pd.DataFrame({TEXT: texts})

    def __sklearn_tags__(self):  # noqa: ANN204 - sklearn's Tags
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        tags.non_deterministic = True  # thread timing changes floating-point sums
        return tags


class GRUSeriesClassifier(_GRUClassifier):
    """A GRU classifier of equal-length univariate series tuned inside ``fit``; ``X``: a
    2-d array, one series per row (finite numbers).

    >>> GRUSeriesClassifier(max_epochs=3).get_params()["max_epochs"]
    3
    """

    _task = "series"

    def _frame(self, X: object, fitting: bool) -> pd.DataFrame:  # noqa: N803
        values = validate_data(self, X, reset=fitting, dtype=np.float64)
        if values.shape[1] < 2:
            raise ValueError("X: a series needs at least 2 steps (columns); got 1 feature(s)")
        return pd.DataFrame(values.astype(np.float32),
                            columns=[f"t{i}" for i in range(values.shape[1])])


__all__ = ["GRUSeriesClassifier", "GRUTextClassifier"]
