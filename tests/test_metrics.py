"""Metric values against small cases checked by hand."""

from __future__ import annotations

import numpy as np
import pytest

from grutune.metrics.scores import SCORES, classification_metrics


def test_binary_by_hand():
    # truth:      0    0    1    1    1
    # p(class 1): .1   .6   .8   .4   .9   -> predicted 0 1 1 0 1
    y = np.array([0, 0, 1, 1, 1])
    p1 = np.array([0.1, 0.6, 0.8, 0.4, 0.9])
    m = classification_metrics(y, np.stack([1 - p1, p1], 1), ["neg", "pos"])
    assert m["accuracy"] == pytest.approx(3 / 5)
    # positive class: TP=2 (rows 3,5), FP=1 (row 2), FN=1 (row 4)
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3)
    assert m["confusion_matrix"] == [[1, 1], [1, 2]]
    assert m["confusion_matrix_normalized"] == [[0.5, 0.5], [0.3333, 0.6667]]
    # AUC: positive/negative pairs ranked right: (.8>.1,.6) (.4>.1) (.9>.1,.6) = 5 of 6
    assert m["roc_auc"] == pytest.approx(5 / 6)
    assert m["positive_class"] == "pos"
    # negative class: precision 1/2, recall 1/2; macro F1 = (0.5 + 2/3) / 2
    assert m["f1_macro"] == pytest.approx((0.5 + 2 / 3) / 2)
    assert m["log_loss"] == pytest.approx(-np.mean(np.log([0.9, 0.4, 0.8, 0.4, 0.9])))
    roc = m["roc_curve"]["pos"]
    assert roc["fpr"][0] == 0 and roc["tpr"][-1] == 1


def test_multiclass_by_hand():
    y = np.array([0, 1, 2, 2])
    proba = np.array([[.7, .2, .1], [.1, .8, .1], [.2, .2, .6], [.5, .3, .2]])
    m = classification_metrics(y, proba, ["a", "b", "c"])
    assert m["accuracy"] == pytest.approx(0.75)
    assert m["confusion_matrix"] == [[1, 0, 0], [0, 1, 0], [1, 0, 1]]
    assert m["per_class"]["a"]["precision"] == pytest.approx(0.5)
    assert m["per_class"]["c"]["recall"] == pytest.approx(0.5)
    assert m["precision_micro"] == pytest.approx(0.75)
    # one-vs-rest AUCs: a: 1.0 (.7 > .1,.2 ; .5 > .1,.2 ... a's only positive .7 beats all)
    # b: 1.0; c: positives .6,.2 vs negatives .1,.1 -> 1.0  -> macro 1.0
    assert m["roc_auc"] == pytest.approx(1.0)
    assert set(m["roc_curve"]) == {"a", "b", "c"}


def test_missing_class_in_truth_still_reports():
    y = np.array([0, 0, 1, 1])
    proba = np.array([[.6, .3, .1], [.5, .4, .1], [.2, .7, .1], [.3, .6, .1]])
    m = classification_metrics(y, proba, ["a", "b", "c"])
    assert m["roc_curve"]["c"] is None
    assert m["roc_auc"] == pytest.approx(1.0)


def test_score_table_directions():
    assert SCORES["accuracy"][1] == "maximize"
    assert SCORES["log_loss"][1] == "minimize"
    y = np.array([0, 1])
    assert SCORES["f1_macro"][0](y, np.array([[.9, .1], [.2, .8]])) == 1.0
