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
from sklearn import metrics as skm


def accuracy(y: np.ndarray, proba: np.ndarray) -> float:
    return float(skm.accuracy_score(y, proba.argmax(1)))


def f1_macro(y: np.ndarray, proba: np.ndarray) -> float:
    labels = list(range(proba.shape[1]))
    return float(skm.f1_score(y, proba.argmax(1), labels=labels, average="macro",
                              zero_division=0))


def log_loss(y: np.ndarray, proba: np.ndarray) -> float:
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
