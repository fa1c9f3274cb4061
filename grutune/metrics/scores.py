"""Metrics as plain functions on arrays, built on scikit-learn's metric functions.

``SCORES`` is the one table of validation metrics a study can optimize: name ->
(function of (y_true, probabilities), direction).

>>> import numpy as np
>>> y = np.array([0, 1, 1, 0]); p = np.array([[.9, .1], [.2, .8], [.6, .4], [.3, .7]])
>>> SCORES["accuracy"][0](y, p)
0.5
>>> classification_metrics(y, p, ["a", "b"])["confusion_matrix"]
[[1, 1], [1, 1]]
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def _sklearn_metrics():  # noqa: ANN202 - the sklearn.metrics module
    """scikit-learn's metrics, imported when first needed: ``grutune predict`` scores
    nothing, and scikit-learn's import is 1.5 s of its start."""
    from sklearn import metrics

    return metrics


def accuracy(y: np.ndarray, proba: np.ndarray) -> float:
    return float((np.asarray(y) == proba.argmax(1)).mean())


def f1_macro(y: np.ndarray, proba: np.ndarray) -> float:
    skm = _sklearn_metrics()
    labels = list(range(proba.shape[1]))
    return float(skm.f1_score(y, proba.argmax(1), labels=labels, average="macro",
                              zero_division=0))


def log_loss(y: np.ndarray, proba: np.ndarray) -> float:
    skm = _sklearn_metrics()
    return float(skm.log_loss(y, proba, labels=list(range(proba.shape[1]))))


SCORES: dict[str, tuple[Callable[[np.ndarray, np.ndarray], float], str]] = {
    "accuracy": (accuracy, "maximize"),
    "f1_macro": (f1_macro, "maximize"),
    "log_loss": (log_loss, "minimize"),
}


def _rounded(values: np.ndarray, digits: int = 6) -> list[float]:
    return [round(float(v), digits) for v in values]


def _roc(y: np.ndarray, scores: np.ndarray) -> dict | None:
    """ROC points and AUC of one binary problem; None when a class is absent."""
    if y.min() == y.max():
        return None
    skm = _sklearn_metrics()
    fpr, tpr, _ = skm.roc_curve(y, scores)
    return {"fpr": _rounded(fpr), "tpr": _rounded(tpr),
            "auc": float(skm.roc_auc_score(y, scores))}


def classification_metrics(y: np.ndarray, proba: np.ndarray, labels: list[str]) -> dict:
    """Test-set metrics of a classifier.

    ``y``: [N] class ids; ``proba``: [N, C] probabilities; ``labels``: C class names.
    Binary problems also report precision/recall/F1 of the positive class (the second
    label) and use its probability for ROC and PR curves; several classes use
    one-vs-rest curves and macro-averaged AUCs.
    """
    skm = _sklearn_metrics()
    n_classes = len(labels)
    ids = list(range(n_classes))
    pred = proba.argmax(1)
    prec, rec, f1, support = skm.precision_recall_fscore_support(
        y, pred, labels=ids, zero_division=0)
    out: dict = {
        "n": int(len(y)),
        "accuracy": float(skm.accuracy_score(y, pred)),
        "per_class": {
            name: {"precision": float(prec[i]), "recall": float(rec[i]), "f1": float(f1[i]),
                   "support": int(support[i])}
            for i, name in enumerate(labels)
        },
    }
    for average in ("macro", "micro", "weighted"):
        p, r, f, _ = skm.precision_recall_fscore_support(y, pred, labels=ids, average=average,
                                                         zero_division=0)
        out[f"precision_{average}"], out[f"recall_{average}"], out[f"f1_{average}"] = (
            float(p), float(r), float(f))
    onehot = np.eye(n_classes)[y]
    curves = {name: _roc(onehot[:, i], proba[:, i]) for i, name in enumerate(labels)}
    if n_classes == 2:
        out["positive_class"] = labels[1]
        out["precision"], out["recall"], out["f1"] = (float(prec[1]), float(rec[1]),
                                                      float(f1[1]))
        roc = curves[labels[1]]
        out["roc_auc"] = roc["auc"] if roc else None
        out["pr_auc"] = (float(skm.average_precision_score(y, proba[:, 1]))
                         if roc else None)
        out["roc_curve"] = {labels[1]: roc}
    else:
        present = [i for i, name in enumerate(labels) if curves[name] is not None]
        if len(present) == n_classes:
            out["roc_auc"] = float(skm.roc_auc_score(y, proba, multi_class="ovr",
                                                     average="macro", labels=ids))
        else:  # a class absent from y: average the one-vs-rest AUCs that exist
            out["roc_auc"] = (float(np.mean([curves[labels[i]]["auc"] for i in present]))
                              if present else None)
        out["pr_auc"] = (float(skm.average_precision_score(onehot[:, present],
                                                           proba[:, present],
                                                           average="macro"))
                         if present else None)
        out["roc_curve"] = curves
    out["log_loss"] = float(skm.log_loss(y, np.clip(proba, 1e-12, 1), labels=ids))
    out["confusion_matrix"] = skm.confusion_matrix(y, pred, labels=ids).tolist()
    with np.errstate(invalid="ignore", divide="ignore"):
        cm = np.asarray(out["confusion_matrix"], dtype=float)
        normalized = np.nan_to_num(cm / cm.sum(1, keepdims=True))
    out["confusion_matrix_normalized"] = [_rounded(row, 4) for row in normalized]
    out["labels"] = list(labels)
    return out


# --- forecasts -------------------------------------------------------------------------

MAPE_MIN_ABS = 1e-3  # MAPE is skipped when a target is this close to 0 (relative to its scale)


def mase_scale(train: np.ndarray, season: int) -> np.ndarray:
    """MASE denominators: the in-sample seasonal-naive MAE of each target on ``train``.

    ``train``: [N, T] values of the training part -> [T].

    >>> mase_scale(np.array([[1.0], [2.0], [4.0]]), season=1)
    array([1.5])
    """
    m = season if len(train) > season else 1
    scale = np.abs(train[m:] - train[:-m]).mean(0)
    return np.where(scale > 0, scale, 1.0)


def forecast_errors(y: np.ndarray, pred: np.ndarray, scale: np.ndarray) -> dict:
    """MAE, RMSE, MAPE, sMAPE and MASE of forecasts, averaged over targets.

    ``y``, ``pred``: [W, H, T] (windows, horizon steps, targets) in original units;
    ``scale``: [T] MASE denominators. MAPE is None (with a note) where any target value
    is near zero, since it would divide by ~0. sMAPE is in percent (0-200).

    >>> y = np.ones((2, 3, 1)); errors = forecast_errors(y, y + 0.5, np.array([0.5]))
    >>> errors["mae"], errors["mase"], round(errors["smape"], 3)
    (0.5, 1.0, 40.0)
    """
    err = pred - y
    mae_t = np.abs(err).mean((0, 1))  # [T]
    out: dict = {
        "mae": float(mae_t.mean()),
        "rmse": float(np.sqrt((err**2).mean((0, 1))).mean()),
        "mase": float((mae_t / scale).mean()),
    }
    denom = np.abs(y) + np.abs(pred)
    ratio = np.divide(2 * np.abs(err), denom, out=np.zeros_like(err, dtype=float),
                      where=denom > 0)
    out["smape"] = float(100 * ratio.mean())
    if (np.abs(y) < MAPE_MIN_ABS * np.maximum(np.abs(y).mean((0, 1)), 1e-12)).any() or \
            (y == 0).any():
        out["mape"] = None
        out["mape_note"] = "skipped: some target values are (near) zero"
    else:
        out["mape"] = float(100 * np.abs(err / y).mean())
    out["mae_by_step"] = [round(float(v), 6) for v in np.abs(err).mean((0, 2))]
    return out


def forecast_metrics(y: np.ndarray, pred: np.ndarray, baselines: dict[str, np.ndarray],
                     scale: np.ndarray, targets: list[str]) -> dict:
    """The model's errors, each baseline's on the same windows, and the skill score.

    skill = 1 - model MASE / best baseline MASE (> 0: the model beats both baselines).
    """
    out = {"n_windows": int(y.shape[0]), "horizon": int(y.shape[1]), "targets": targets,
           **forecast_errors(y, pred, scale)}
    out["baselines"] = {name: forecast_errors(y, b, scale) for name, b in baselines.items()}
    best_name = min(out["baselines"], key=lambda n: out["baselines"][n]["mase"])
    best = out["baselines"][best_name]["mase"]
    out["best_baseline"] = best_name
    out["skill"] = float(1 - out["mase"] / best) if best > 0 else None
    if len(targets) > 1:
        out["per_target"] = {
            name: forecast_errors(y[..., i:i + 1], pred[..., i:i + 1], scale[i:i + 1])
            for i, name in enumerate(targets)}
    return out


# --- fast scalars for the bootstrap -----------------------------------------------------

def _tie_runs(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """[n, k] -> (order, start, end), each [n, k]: every column's ascending order (as
    ``argsort``), and for each sorted position the first and last position of its run of
    equal scores. The bootstrap ranks thousands of small columns; these are all columns at
    once in NumPy, where scipy's ``rankdata`` per column spent most of its time in call
    overhead (all scalars of a 5-class resample of 45-319 rows: 1.0-1.2 ms with it,
    0.3-0.5 ms with this, measured side by side)."""
    n = scores.shape[0]
    order = np.argsort(scores, axis=0, kind="stable")
    ordered = np.take_along_axis(scores, order, 0)
    position = np.arange(n)[:, None]
    first = np.ones(ordered.shape, dtype=bool)  # the first of a run of equal scores
    first[1:] = ordered[1:] != ordered[:-1]
    last = np.ones(ordered.shape, dtype=bool)
    last[:-1] = first[1:]
    start = np.maximum.accumulate(np.where(first, position, 0), axis=0)
    end = np.minimum.accumulate(np.where(last, position, n - 1)[::-1], axis=0)[::-1]
    return order, start, end


def _auc(positive: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """[n, k] one-vs-rest labels and scores -> [k] ROC-AUCs as the Mann-Whitney statistic
    (average ranks for ties) = scikit-learn's.

    >>> _auc(np.array([[0], [1], [1], [0]], bool), np.array([[.2], [.7], [.4], [.6]]))
    array([0.75])
    """
    order, start, end = _tie_runs(scores)
    ranks = (start + end) / 2 + 1  # [n, k] in sorted order: average 1-based ranks
    n_pos = positive.sum(0)
    n_neg = len(positive) - n_pos
    rank_sum = (ranks * np.take_along_axis(positive, order, 0)).sum(0)
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def _average_precision(positive: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """[n, k] -> [k] scikit-learn's average precision: over distinct thresholds, the
    recall step times the precision; so each positive adds 1/P times the precision at
    the end of its run of tied scores (scores descending).

    >>> _average_precision(np.array([[1], [0], [1]], bool), np.array([[.9], [.8], [.7]]))
    array([0.83333333])
    """
    order, _, end = _tie_runs(-scores)
    hits = np.take_along_axis(positive, order, 0)
    found = np.cumsum(hits, axis=0)  # positives at or above each sorted position
    precision = np.take_along_axis(found, end, 0) / (end + 1)
    return (hits * precision).sum(0) / hits.sum(0)


def classification_scalars(y: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """The scalar metrics of ``classification_metrics`` in plain NumPy (the bootstrap
    recomputes them a thousand times; scikit-learn's checks would take most of that time).
    Raises ValueError when a class is missing (its AUC is undefined).

    >>> y = np.array([0, 1, 1, 0]); p = np.array([[.8, .2], [.3, .7], [.6, .4], [.4, .6]])
    >>> round(classification_scalars(y, p)["roc_auc"], 4)
    0.75
    """
    n, k = proba.shape
    pred = proba.argmax(1)
    cm = np.bincount(y * k + pred, minlength=k * k).reshape(k, k).astype(float)
    if (cm.sum(1) == 0).any():
        raise ValueError("a class is missing from the sample")
    tp, support, predicted = np.diag(cm), cm.sum(1), cm.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        prec = np.nan_to_num(tp / predicted)
        rec = tp / support
        f1 = np.nan_to_num(2 * prec * rec / (prec + rec))
    out = {"accuracy": float(tp.sum() / n),
           "precision_macro": float(prec.mean()), "recall_macro": float(rec.mean()),
           "f1_macro": float(f1.mean()),
           "precision_weighted": float((prec * support).sum() / n),
           "recall_weighted": float((rec * support).sum() / n),
           "f1_weighted": float((f1 * support).sum() / n),
           "log_loss": float(-np.log(np.clip(proba[np.arange(n), y], 1e-12, 1)).mean())}
    out["precision_micro"] = out["recall_micro"] = out["f1_micro"] = out["accuracy"]
    onehot = np.eye(k, dtype=bool)[y]
    if k == 2:
        out["precision"], out["recall"], out["f1"] = float(prec[1]), float(rec[1]), float(f1[1])
        out["roc_auc"] = float(_auc(onehot[:, 1:], proba[:, 1:])[0])
        out["pr_auc"] = float(_average_precision(onehot[:, 1:], proba[:, 1:])[0])
    else:
        out["roc_auc"] = float(_auc(onehot, proba).mean())
        out["pr_auc"] = float(_average_precision(onehot, proba).mean())
    return out
