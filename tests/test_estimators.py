"""The scikit-learn estimators against scikit-learn's own estimator checks.

``GRUSeriesClassifier`` takes 2-d numeric input, so every check of
``sklearn.utils.estimator_checks`` applies and runs here (one pytest case each), with
two documented exceptions of one cause (``EXPECTED_FAILURES``). The estimator is tuned with a small
budget (2 trials of at most 10 epochs): ``check_classifiers_train``'s bar (training
accuracy > 0.83 on three blobs, rows of 2 features read as series of 2 steps) is met at
every seed tried, 0.91-0.94 at seeds 0-3, as such short series start unnormalized
(``series_classification.NORM_FROM``; z-normalized, they scored 0.64 at seeds 1 and 2).

``GRUTextClassifier`` takes texts; scikit-learn's data checks feed numbers and skip an
estimator whose input is text (``input_tags.string``), so the checks that need no data
run as they are and the data checks are written again here with real texts (BBC News):
fit returns self, unfitted use refused, clone, pickle, label types kept, probabilities
consistent with predictions, y as a column, y None refused, it learns.
"""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils import estimator_checks as ec
from sklearn.utils.estimator_checks import parametrize_with_checks

from grutune.data.datasets import get_dataset
from grutune.estimators import GRUSeriesClassifier, GRUTextClassifier
from grutune.exceptions import DataError

pytestmark = pytest.mark.filterwarnings("ignore")  # sklearn's checks warn on purpose

# scikit-learn's checks fit dozens of times: no baseline or refit (not what they check)
QUICK = dict(trials=2, max_epochs=10, folds=1, repeats=1, ensemble=1, verbose=0,
             baseline=False, refit=False)

# predict_proba of a row differs by up to ~4e-7 with the batch it is computed in (float32
# matrix products block by batch size and order), above these checks' 1e-7; predict is
# invariant. Which of the two trips depends on the configuration the search picks, so
# both are declared (non-strict: a pass is reported as XPASS, not as a failure).
BATCH_FLOAT32 = ("predict_proba differs by ~1e-7 with batch composition (float32); "
                 "predict is invariant")
EXPECTED_FAILURES = {
    "check_methods_subset_invariance": BATCH_FLOAT32,
    "check_methods_sample_order_invariance": BATCH_FLOAT32,
}


@parametrize_with_checks([GRUSeriesClassifier(**QUICK)],
                         expected_failed_checks=lambda est: EXPECTED_FAILURES)
def test_series_classifier_passes_sklearn_checks(estimator, check):
    check(estimator)


@pytest.mark.parametrize("seed", [1, 2])
def test_series_classifier_learns_short_series_at_other_seeds(seed):
    """scikit-learn's blobs (rows of 2 features: series of 2 steps) learned well past
    ``check_classifiers_train``'s 0.83 at seeds other than the default, where the first
    trial once z-normalized each 2-step series down to its sign (0.64)."""
    from sklearn.datasets import make_blobs

    X, y = make_blobs(n_samples=300, random_state=0)  # noqa: N806 - sklearn's names
    clf = GRUSeriesClassifier(**{**QUICK, "random_state": seed}).fit(X, y)
    assert (clf.predict(X) == y).mean() > 0.85


# --- the text classifier -------------------------------------------------------------

# the checks of scikit-learn that read no data: they run on the text estimator as is
NO_DATA_CHECKS = [ec.check_estimator_cloneable, ec.check_estimator_repr,
                  ec.check_no_attributes_set_in_init, ec.check_get_params_invariance,
                  ec.check_set_params, ec.check_parameters_default_constructible,
                  ec.check_mixin_order, ec.check_valid_tag_types,
                  ec.check_estimator_tags_renamed,
                  ec.check_do_not_raise_errors_in_init_or_set_params]


@pytest.mark.parametrize("check", NO_DATA_CHECKS, ids=lambda c: c.__name__)
def test_text_classifier_passes_the_checks_that_need_no_data(check):
    check("GRUTextClassifier", GRUTextClassifier(**QUICK))


def test_sklearn_skips_its_data_checks_for_text_input_and_says_so():
    """What scikit-learn does with a text estimator: it yields no data check at all
    (hence the text versions below)."""
    with pytest.warns(ec.SkipTestWarning, match="requires input"):
        checks = list(ec._yield_all_checks(GRUTextClassifier(), legacy=True))
    assert checks == []


@pytest.fixture(scope="module")
def bbc() -> tuple[pd.Series, np.ndarray]:
    frame = get_dataset("bbc-news").loader()[0].sample(300, random_state=0)
    codes = {name: i for i, name in enumerate(sorted(frame["topic"].unique()))}
    return frame["text"].reset_index(drop=True), frame["topic"].map(codes).to_numpy()


@pytest.fixture(scope="module")
def fitted(bbc) -> GRUTextClassifier:
    texts, labels = bbc
    clf = GRUTextClassifier(trials=2, max_epochs=3, folds=1, repeats=1, random_state=1,
                            verbose=0)
    assert clf.fit(texts, labels) is clf  # fit returns self
    return clf


@pytest.mark.realdata
def test_text_classifier_learns_and_keeps_label_types(bbc, fitted):
    texts, labels = bbc
    assert fitted.classes_.tolist() == [0, 1, 2, 3, 4]
    predicted = fitted.predict(texts[:40])
    assert predicted.dtype == labels.dtype and set(predicted) <= set(fitted.classes_)
    # held-out accuracy (the 15% of fit's data no choice saw) well above chance (0.2)
    assert fitted.holdout_metrics_["accuracy"] > 0.45
    assert {"lr", "hidden_size"} <= fitted.best_params_.keys()


@pytest.mark.realdata
def test_text_probabilities_agree_with_predictions(bbc, fitted):
    texts, _ = bbc
    proba = fitted.predict_proba(texts[:40])
    assert proba.shape == (40, 5)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(fitted.classes_[proba.argmax(axis=1)],
                                  fitted.predict(texts[:40]))


@pytest.mark.realdata
def test_text_classifier_pickles_and_clones(bbc, fitted):
    texts, _ = bbc
    again = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(again.predict_proba(texts[:20]),
                                  fitted.predict_proba(texts[:20]))
    fresh = clone(fitted)
    assert fresh.get_params() == fitted.get_params()
    with pytest.raises(NotFittedError):
        fresh.predict(["an unfitted estimator refuses"])


@pytest.mark.realdata
def test_text_classifier_same_seed_same_model(bbc, fitted):
    """Fitting twice with one random_state gives the same predictions (fit idempotent);
    y given as a column works, with scikit-learn's warning."""
    texts, labels = bbc
    again = clone(fitted)
    with pytest.warns(Warning, match="column-vector y"):
        again.fit(texts, labels.reshape(-1, 1))
    np.testing.assert_array_equal(again.predict_proba(texts[:30]),
                                  fitted.predict_proba(texts[:30]))


@pytest.mark.parametrize(("X", "y", "message"), [
    (["a b c", "d e f"], None, "requires y to be passed"),
    ([1.0, 2.0], [0, 1], "row 0 is float"),
    ("one string", [0], "a sequence of texts"),
    (["a b", "c d", "e f"], [0, 0, 0], "got 1 class"),
    (["a b", "c d"], [0, 1, 1], "one label per row"),
])
def test_text_classifier_refuses_bad_input_clearly(X, y, message):  # noqa: N803
    with pytest.raises(ValueError, match=message):
        GRUTextClassifier(**QUICK).fit(X, y)


@pytest.mark.parametrize("y", [
    ["a", None, "b", "a"], [0.0, float("nan"), 1.0, 0.0], pd.Series([0, np.nan, 1, 0]),
    np.array([[0], [np.nan], [1], [0]]),
], ids=["list-none", "list-nan", "series-nan", "column-nan"])
def test_a_missing_label_is_refused_with_its_position(y, monkeypatch):
    """A missing label used to become a class 'nan' (a list) or sklearn's "Unknown label
    type" (a Series); it is refused before anything runs."""
    import grutune.estimators as estimators

    monkeypatch.setattr(estimators, "tune", lambda *a, **k: pytest.fail("tuned"))
    with pytest.raises(DataError, match="^y has no label at position 1; every training "
                                        "row needs one$"):
        GRUTextClassifier(**QUICK).fit(["a b", "c d", "e f", "g h"], y)


def test_a_kept_fit_has_its_report_and_a_temporary_one_builds_none(tmp_path, monkeypatch):
    """``run_dir`` keeps the whole run, report included; without it the run directory is
    temporary and deleted after the fit, so the report (a third of a small fit's time)
    is not built."""
    from grutune.workflows import tune as workflow

    built = []
    original = workflow._write_report
    monkeypatch.setattr(workflow, "_write_report", lambda *a: built.append(a) or original(*a))
    rng = np.random.RandomState(0)
    X = rng.randn(40, 4)  # noqa: N806
    y = (X[:, 0] > 0).astype(int)
    options = {**QUICK, "trials": 1, "max_epochs": 2}
    GRUSeriesClassifier(**options).fit(X, y)
    assert built == []
    kept = GRUSeriesClassifier(**options, run_dir=tmp_path / "kept").fit(X, y)
    assert len(built) == 1 and (kept.run_dir_ / "report.html").is_file()
    assert kept.run_dir_.parent == tmp_path / "kept"


def test_clones_with_one_run_dir_keep_their_runs_side_by_side_in_a_cross_validation(tmp_path):
    """scikit-learn clones an estimator per fold, run_dir included: each fold's fit gets
    its own run (different data), where one shared run directory refused the second
    fold's DataFrame and the fold scored NaN."""
    from sklearn.model_selection import cross_val_score

    rng = np.random.RandomState(0)
    X = rng.randn(90, 6)  # noqa: N806
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    options = {**QUICK, "trials": 1, "max_epochs": 2, "run_dir": tmp_path / "cv"}
    clf = GRUSeriesClassifier(**options)
    scores = cross_val_score(clf, X, y, cv=2, error_score="raise")
    assert np.isfinite(scores).all() and len(scores) == 2
    fits = sorted(p.name for p in (tmp_path / "cv").iterdir())
    assert len(fits) == 2 and all(name.startswith("fit-") for name in fits)
    again = GRUSeriesClassifier(**options).fit(X[:60], y[:60])
    assert again.run_dir_.name not in fits  # other rows: a run of its own
