"""The cheap strong models a tuned GRU must beat, on the same split and test rows.

Each is fitted on the training part and chooses its few settings on the validation part
only (by the task's validation metric), then gives its test outputs in the GRU's output
space (log class probabilities), so the task scores it exactly as it scores the model:
same metrics, same bootstrap, and a paired interval of the difference.

- Text: TF-IDF (word 1-2 grams, optionally with character 2-5 grams) + logistic
  regression (scikit-learn), the five-second model users compare against.
- Series: 1-nearest-neighbour with Euclidean distance (on the series as scaled, or each
  z-normalized), the reference every UCR/UEA archive paper reports, and with dynamic
  time warping (DTW) in a Sakoe-Chiba window chosen on validation, window 0 being the
  Euclidean distance: the archive's "DTW, learned window" classic.
- Forecasts: the Theta method (statsmodels) refitted at every test window's origin on
  the history before it; the naive and seasonal-naive forecasts stay inside the
  forecaster's own metrics (``baselines``).

>>> import torch
>>> x = torch.tensor([[[0.0], [1.0]], [[5.0], [6.0]], [[0.2], [1.1]]])
>>> nearest_label(x[:2], torch.tensor([2, 2]), x[2:], torch.tensor([2]), znorm=False)
tensor([0])
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch
from torch import Tensor

from grutune.data.cache import concat
from grutune.nn.model import znormalize

# a 1-NN vote is certain; its probabilities keep this much for the other classes, so the
# log loss of a wrong vote is large but finite
NN_SMOOTHING = 1e-3
TEXT_C = (1.0, 10.0)  # logistic regression's inverse regularization, chosen on validation
# DTW windows tried, as fractions of the longest series (0 = Euclidean); the archive's
# learned windows are mostly under a tenth of the length
DTW_WINDOWS = (0.0, 0.02, 0.05, 0.1, 0.2)
# a window whose test distance matrix would cost more DTW cells than this (about 20 s on
# one core of the 2-core machine) is not tried, so the baseline stays seconds, not minutes
DTW_MAX_CELLS = 4e9


@dataclass
class Baseline:
    """A fitted baseline: what it is, what validation chose, its test outputs."""

    name: str
    chosen: dict  # the settings validation chose
    validation: float  # its validation metric (the task's)
    test_outputs: Tensor  # [n_test, n_classes] log probabilities (the model's space)
    seconds: float = 0.0
    tried: list[dict] = field(default_factory=list)  # every setting with its validation


class Scorer(Protocol):
    """The task's validation metric and its direction (``Task.scoring(state)``)."""

    direction: str

    def val_metric(self, outputs: Tensor, y: Tensor) -> float: ...


def _best(tried: list[dict], scorer: Scorer) -> dict:
    """The first of the best (ties go to the simpler setting, listed first)."""
    values = [t["validation"] for t in tried]
    target = max(values) if scorer.direction == "maximize" else min(values)
    return tried[values.index(target)]


def tfidf_logistic(texts: dict[str, Sequence[str]], y: dict[str, Tensor], n_classes: int,
                   scorer: Scorer, seed: int = 0, refit: bool = False) -> Baseline:
    """TF-IDF + logistic regression, features and C chosen on validation. The word
    features are fitted once and reused in the word + character set (as
    ``FeatureUnion`` would stack them). ``refit``: the chosen setting is fitted again on
    train + validation (features included) before it predicts test, as the model was."""
    from scipy.sparse import hstack
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    start = time.perf_counter()
    word = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2)
    char = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2)
    fitted = {v: (v.fit_transform(texts["train"]), v.transform(texts["val"]))
              for v in (word, char)}
    features = {"word 1-2 grams": (word,), "word 1-2 + char 2-5 grams": (word, char)}
    tried, models = [], {}
    for name, parts in features.items():
        train, val = (hstack([fitted[v][i] for v in parts]).tocsr() for i in (0, 1))
        for c in TEXT_C:
            model = LogisticRegression(C=c, max_iter=2000, random_state=seed)
            model.fit(train, y["train"].numpy())
            value = scorer.val_metric(_log_proba(model, val, n_classes), y["val"])
            tried.append({"features": name, "C": c, "validation": value})
            models[name, c] = model
    best = _best(tried, scorer)
    parts = features[best["features"]]
    model = models[best["features"], best["C"]]
    if refit:
        both = list(texts["train"]) + list(texts["val"])
        model = LogisticRegression(C=best["C"], max_iter=2000, random_state=seed)
        model.fit(hstack([v.fit_transform(both) for v in parts]).tocsr(),
                  torch.cat([y["train"], y["val"]]).numpy())
    test = hstack([v.transform(texts["test"]) for v in parts]).tocsr()
    test = _log_proba(model, test, n_classes)
    return Baseline("TF-IDF + logistic regression", {k: best[k] for k in ("features", "C")},
                    best["validation"], test, time.perf_counter() - start, tried)


def _log_proba(model, x, n_classes: int) -> Tensor:  # noqa: ANN001 - a fitted sklearn model
    """[n, n_classes] log probabilities with a column for every class of the task (a
    class absent from the training part gets none of the probability)."""
    proba = np.full((x.shape[0], n_classes), 1e-12)
    proba[:, model.classes_] = np.maximum(model.predict_proba(x), 1e-12)
    return torch.from_numpy(np.log(proba / proba.sum(axis=1, keepdims=True))).float()


def nearest_label(train_x: Tensor, train_lengths: Tensor, query_x: Tensor,
                  query_lengths: Tensor, znorm: bool) -> Tensor:
    """The index (into train) of each query series' Euclidean nearest neighbour.

    Series are compared over the common padded length (padding is zero, as stored).
    """
    a, b = _flat(train_x, train_lengths, znorm), _flat(query_x, query_lengths, znorm)
    width = max(a.shape[1], b.shape[1])
    a = torch.nn.functional.pad(a, (0, width - a.shape[1]))
    b = torch.nn.functional.pad(b, (0, width - b.shape[1]))
    return torch.cdist(b.double(), a.double()).argmin(dim=1)


def _flat(x: Tensor, lengths: Tensor, znorm: bool) -> Tensor:
    """[n, T, C] -> [n, T*C]; with ``znorm`` each series' channels standardized over its
    valid steps (the UCR convention)."""
    x = _normalized(x, lengths, znorm)
    return x.reshape(len(x), -1)


def _normalized(x: Tensor, lengths: Tensor, znorm: bool) -> Tensor:
    """[n, T, C] in float64, z-normalized per series and channel if asked (padding 0)."""
    x = x.double()
    if not znorm:
        return x
    return znormalize(x, torch.arange(x.shape[1])[None, :] < lengths[:, None])


def nearest_neighbour(parts: dict, n_classes: int, scorer: Scorer,
                      refit: bool = False) -> Baseline:
    """1-NN Euclidean; raw or z-normalized series, chosen on validation. ``parts``:
    train / val / test ``SequenceData``. ``refit``: test series look for their neighbour
    among train + validation, as the refitted model learned from both."""
    start = time.perf_counter()
    train = parts["train"]
    tried = []
    for znorm in (False, True):
        hit = nearest_label(train.x, train.lengths, parts["val"].x, parts["val"].lengths, znorm)
        value = scorer.val_metric(_one_hot(train.y[hit], n_classes), parts["val"].y)
        tried.append({"znorm": znorm, "validation": value})
    best = _best(tried, scorer)
    if refit:
        train = concat([train, parts["val"]])
    hit = nearest_label(train.x, train.lengths, parts["test"].x, parts["test"].lengths,
                        best["znorm"])
    return Baseline("1-NN Euclidean", {"znorm": best["znorm"]}, best["validation"],
                    _one_hot(train.y[hit], n_classes), time.perf_counter() - start, tried)


def dtw_distances(train: list[np.ndarray], query: list[np.ndarray], radius: int) -> np.ndarray:
    """[n_query, n_train] DTW distances (square root of the summed squared differences
    along the best warping path); step i of one series meets step j of the other only
    if j - i is at most ``radius`` outside the band between the start-aligned and the
    end-aligned diagonals (a Sakoe-Chiba window; the band is one diagonal when lengths are
    equal). Each series is [T] or [T, C] over its valid steps. dtaidistance's C code,
    parallel; its ``window`` excludes its bound, hence ``radius + 1``."""
    import logging

    logging.getLogger("be.kuleuven.dtai.distance").setLevel(logging.ERROR)  # no matplotlib
    from dtaidistance import dtw, dtw_ndim

    n = len(train)
    series = [np.ascontiguousarray(s, dtype=np.float64) for s in (*train, *query)]
    block = ((0, n), (n, len(series)))
    if series[0].ndim == 1:
        full = dtw.distance_matrix_fast(series, window=radius + 1, block=block,
                                        compact=False)
    else:
        full = dtw_ndim.distance_matrix_fast(series, window=radius + 1, block=block,
                                             compact=False)
    return np.asarray(full)[:n, n:].T


def _valid_series(data, znorm: bool) -> list[np.ndarray]:  # noqa: ANN001 - SequenceData
    """Each series over its valid steps, [T] (one channel) or [T, C], z-normalized per
    series and channel if asked."""
    x = _normalized(data.x, data.lengths, znorm).numpy()
    return [s[:n, 0] if s.shape[1] == 1 else s[:n]
            for s, n in zip(x, data.lengths.tolist(), strict=True)]


def _neighbour_index(train, query, znorm: bool, radius: int) -> Tensor:  # noqa: ANN001
    """The index (into ``train``) of each ``query`` series' nearest neighbour: Euclidean
    for ``radius`` 0, else DTW within it (``SequenceData`` both)."""
    if radius == 0:
        return nearest_label(train.x, train.lengths, query.x, query.lengths, znorm)
    distances = dtw_distances(_valid_series(train, znorm), _valid_series(query, znorm), radius)
    return torch.from_numpy(distances.argmin(axis=1))


def dtw_neighbour(parts: dict, n_classes: int, scorer: Scorer, refit: bool = False,
                  max_cells: float = DTW_MAX_CELLS) -> Baseline:
    """1-NN with the distance chosen on validation: raw or z-normalized series, Euclidean
    (window 0) or DTW in a window of 2-20% of the longest series. Windows whose test
    matrix would exceed ``max_cells`` are left out (listed in ``tried`` as skipped).
    ``parts``: train / val / test ``SequenceData``; ``refit`` as ``nearest_neighbour``."""
    start = time.perf_counter()
    train, val = parts["train"], parts["val"]
    longest = int(max(p.lengths.max() for p in parts.values()))
    test_cells = sum(parts["test"].lengths.tolist()) * (len(train) + len(val))

    def radius(fraction: float) -> int:
        return 0 if fraction == 0.0 else max(1, round(fraction * longest))

    tried = []
    for znorm in (False, True):
        for fraction in DTW_WINDOWS:
            if fraction and test_cells * min(2 * radius(fraction) + 1, longest) > max_cells:
                tried.append({"znorm": znorm, "window": fraction, "skipped": "cost"})
                continue
            hit = _neighbour_index(train, val, znorm, radius(fraction))
            value = scorer.val_metric(_one_hot(train.y[hit], n_classes), val.y)
            tried.append({"znorm": znorm, "window": fraction, "validation": value})
    best = _best([t for t in tried if "validation" in t], scorer)
    if refit:
        train = concat([train, val])
    hit = _neighbour_index(train, parts["test"], best["znorm"], radius(best["window"]))
    name = "1-NN Euclidean" if best["window"] == 0.0 else "1-NN DTW"
    return Baseline(name, {"znorm": best["znorm"], "window": best["window"]}, best["validation"],
                    _one_hot(train.y[hit], n_classes), time.perf_counter() - start, tried)


def _one_hot(labels: Tensor, n_classes: int) -> Tensor:
    """A vote as log probabilities: 1 - NN_SMOOTHING on the class, the rest shared."""
    proba = torch.full((len(labels), n_classes), NN_SMOOTHING / max(n_classes - 1, 1),
                       dtype=torch.float64)
    proba[torch.arange(len(labels)), labels] = 1 - NN_SMOOTHING
    return proba.log().float()


THETA_HISTORY = 2000  # steps of history each Theta fit reads (older ones add nothing)


def theta(series: np.ndarray, center: np.ndarray, scale: np.ndarray,
          origins: dict[str, np.ndarray], horizon: int, season: int, val_y: Tensor,
          scorer: Scorer) -> Baseline | None:
    """The Theta method (statsmodels; the M3 competition's winner among simple methods)
    fitted on each test window's whole history in original units (so a positive series
    is deseasonalized multiplicatively), deseasonalizing on or off as validation chooses
    (on every ``horizon``-th validation window, as test windows are spaced). ``series``:
    [N, T] targets in original units; outputs [W, H, T] scaled by ``center`` and
    ``scale``, as the model's are. None when the history is too short for any setting."""
    start = time.perf_counter()
    every = slice(None, None, horizon)
    options = [True, False] if season > 1 else [False]
    tried = []
    for deseasonalize in options:
        forecasts = _theta_windows(series, origins["val"][every], horizon, season,
                                   deseasonalize)
        if forecasts is not None:
            value = scorer.val_metric(_scaled(forecasts, center, scale), val_y[every])
            tried.append({"deseasonalize": deseasonalize, "validation": value})
    if not tried:
        return None
    best = _best(tried, scorer)
    test = _theta_windows(series, origins["test"], horizon, season, best["deseasonalize"])
    if test is None:
        return None
    test = _scaled(test, center, scale)
    return Baseline("Theta (statsmodels)", {"deseasonalize": best["deseasonalize"],
                                            "period": season},
                    best["validation"], test, time.perf_counter() - start, tried)


def _theta_windows(series: np.ndarray, origins: np.ndarray, horizon: int, season: int,
                   deseasonalize: bool) -> Tensor | None:
    """[W, H, T] Theta forecasts from each origin; None if a fit fails (too short)."""
    import warnings

    from statsmodels.tsa.forecasting.theta import ThetaModel

    out = np.zeros((len(origins), horizon, series.shape[1]), dtype=np.float64)
    for w, origin in enumerate(origins):
        for t in range(series.shape[1]):
            history = series[max(0, origin - THETA_HISTORY):origin, t]
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # convergence chatter on short series
                    model = ThetaModel(history, period=max(season, 1),
                                       deseasonalize=deseasonalize, method="auto")
                    out[w, :, t] = np.asarray(model.fit().forecast(horizon))
            except (ValueError, np.linalg.LinAlgError):
                return None
    if not np.isfinite(out).all():
        return None
    return torch.from_numpy(out)


def _scaled(forecasts: Tensor, center: np.ndarray, scale: np.ndarray) -> Tensor:
    """[W, H, T] original units -> the model's scaled float32 outputs."""
    t = forecasts.shape[-1]
    return ((forecasts - torch.as_tensor(center[:t])) / torch.as_tensor(scale[:t])).float()
