"""Bootstrap intervals and the fast metric scalars they recompute."""

import numpy as np
import pytest
import torch

from grutune.data.cache import SequenceData
from grutune.metrics.intervals import intervals_of, mean_interval, resample_scalars
from grutune.metrics.scores import classification_metrics, classification_scalars


@pytest.mark.parametrize("classes", [2, 3, 5])
def test_fast_scalars_equal_scikit_learn(classes):
    rng = np.random.default_rng(classes)
    y = rng.integers(0, classes, 400)
    proba = np.round(rng.dirichlet(np.ones(classes), 400), 2)  # rounding makes ties
    proba /= proba.sum(1, keepdims=True)
    fast = classification_scalars(y, proba)
    full = classification_metrics(y, proba, [str(i) for i in range(classes)])
    assert set(fast) <= set(full)
    for key, value in fast.items():
        assert value == pytest.approx(full[key], abs=1e-9), key


def test_a_missing_class_is_a_value_error():
    with pytest.raises(ValueError):
        classification_scalars(np.array([0, 0]), np.array([[0.6, 0.4], [0.7, 0.3]]))


def bootstrap(scalars, outputs, data, seed):  # noqa: ANN001, ANN201
    """A model's intervals as ``tune`` makes them: its draws, then their percentiles."""
    return intervals_of(resample_scalars(scalars, outputs, data, seed=seed), len(data))


def _data(y: torch.Tensor) -> SequenceData:
    return SequenceData(torch.zeros(len(y), 1), torch.ones(len(y), dtype=torch.long), y)


def test_bootstrap_of_a_mean_matches_the_normal_interval():
    rng = np.random.default_rng(0)
    y = torch.tensor(rng.normal(3.0, 2.0, 2000))
    result = bootstrap(lambda out, d: {"mean": float(d.y.mean())}, y, _data(y), seed=1)
    low, high = result["intervals"]["mean"]
    half = 1.96 * float(y.std()) / np.sqrt(len(y))
    assert low == pytest.approx(float(y.mean()) - half, abs=0.02)
    assert high == pytest.approx(float(y.mean()) + half, abs=0.02)
    assert "2000 test rows, 1000 resamples" in result["interval_method"]


def test_bootstrap_is_seeded_and_brackets_the_estimate():
    rng = np.random.default_rng(2)
    y = torch.tensor(rng.integers(0, 3, 300))
    logits = torch.tensor(rng.normal(size=(300, 3))) + 2 * torch.nn.functional.one_hot(y, 3)

    def scalars(out, d):
        return classification_scalars(d.y.numpy(), torch.softmax(out, -1).numpy())

    a = bootstrap(scalars, logits, _data(y), seed=5)
    b = bootstrap(scalars, logits, _data(y), seed=5)
    assert a == b
    point = scalars(logits, _data(y))
    for key in ("accuracy", "f1_macro", "roc_auc", "pr_auc", "log_loss"):
        low, high = a["intervals"][key]
        assert low <= point[key] <= high, key
        assert high - low < 0.2, key


def test_mean_interval_of_seed_runs():
    mean, low, high = mean_interval([0.8, 0.9])
    assert mean == pytest.approx(0.85)
    assert low < 0.8 and high > 0.9  # t with 1 degree of freedom is wide
    assert mean_interval([0.7]) == (0.7, 0.7, 0.7)


def test_an_interval_of_a_few_runs_stays_within_what_the_metric_can_take():
    """Two seeds' accuracies 0.70 and 0.99: the t-interval reaches -1.0 and 2.7, which no
    accuracy can; compare and the seed repeats clip it to the metric's range."""
    from grutune.metrics.intervals import mean_interval, metric_bounds

    assert mean_interval([0.70, 0.99])[2] > 1
    mean, low, high = mean_interval([0.70, 0.99], bounds=metric_bounds("accuracy"))
    assert (mean, low, high) == (0.845, 0.0, 1.0)
    assert mean_interval([0.1, 0.9], bounds=metric_bounds("mase"))[1] == 0.0
    assert mean_interval([-0.5, 0.4], bounds=metric_bounds("skill"))[1] < -0.5  # unbounded
