"""Confidence intervals for test metrics: a percentile bootstrap over test rows (over
test windows for a forecast).

Each resample draws the test rows with replacement and recomputes the task's own metrics
(``Task.evaluate``) on the same model outputs; the interval of a metric is the 2.5th and
97.5th percentile over resamples. Metrics a resample cannot define (ROC-AUC when a class
is missing from it) skip that resample; the number used is recorded.

>>> mean_interval([0.90, 0.92, 0.91])
(0.91, 0.8852, 0.9348)
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch import Tensor

from grutune.data.cache import SequenceData

RESAMPLES = 1000
LEVEL = 0.95


def scalar_metrics(metrics: dict, prefix: str = "") -> dict[str, float]:
    """The finite numbers of a metrics dict, nested ones as ``parent.key`` (baselines)."""
    out: dict[str, float] = {}
    for key, value in metrics.items():
        if isinstance(value, bool):
            continue
        if isinstance(value, (int, float)) and math.isfinite(value):
            out[prefix + key] = float(value)
        elif isinstance(value, dict) and key == "baselines":
            for name, inner in value.items():
                out.update(scalar_metrics(inner, f"{key}.{name}."))
    return out


Draws = list[dict | None]  # a resample's scalar metrics each; None: a degenerate one


def resample_scalars(scalars: Callable[[Tensor, SequenceData], dict], outputs: Tensor,
                     data: SequenceData, resamples: int = RESAMPLES,
                     seed: int = 0) -> Draws:
    """``scalars(outputs, data)`` on each of the seed's resamples, in order: a dict of
    scalar metrics, or None for a degenerate resample (e.g. one class only). The same
    seed draws the same rows, so two models' draws pair up (``paired_interval``)."""
    draws: Draws = []
    with _one_thread():
        for index, sample in _resamples(data, resamples, seed):
            try:
                draws.append(scalars(outputs[index], sample))
            except ValueError:
                draws.append(None)
    return draws


def intervals_of(draws: Draws, n: int, unit: str = "rows",
                 skip: tuple[str, ...] = ("n", "n_windows", "horizon", "season")) -> dict:
    """{"intervals": {metric: [low, high]} at LEVEL, "interval_method": how}, from a
    model's ``resample_scalars`` over ``n`` test units (``unit``, in words). A metric
    defined in fewer than half the resamples gets no interval."""
    values: dict[str, list[float]] = {}
    for draw in draws:
        for key, value in (draw or {}).items():
            if key not in skip:
                values.setdefault(key, []).append(value)
    least = len(draws) // 2
    return {"intervals": {key: _percentiles(v) for key, v in values.items()
                          if len(v) >= least},
            "interval_method": f"{LEVEL:.0%} percentile bootstrap over {n} test "
                               f"{unit}, {len(draws)} resamples"}


def _resamples(data: SequenceData, resamples: int, seed: int):  # -> Iterator[(index, sample)]
    """The bootstrap's resamples of ``data``: the same ones for the same seed, so a model's
    intervals and its paired difference with a baseline see the same test rows."""
    rng = np.random.default_rng(seed)
    n = len(data)
    for _ in range(resamples):
        index = rng.integers(0, n, n)
        yield index, SequenceData(data.x[index], data.lengths[index], data.y[index])


def paired_interval(ours: Draws, theirs: Draws, metric: str) -> list[float]:
    """The 95% percentile interval of ``metric``'s difference, ours minus theirs, over
    draws of the same resamples (``resample_scalars`` with one seed): a paired interval,
    both models scored on each resample's rows.

    >>> ours = [{"acc": 0.9}, None, {"acc": 0.8}]
    >>> [round(v, 3) for v in paired_interval(ours, [{"acc": 0.7}, None, {"acc": 0.8}], "acc")]
    [0.005, 0.195]
    """
    return _percentiles([a[metric] - b[metric] for a, b in zip(ours, theirs, strict=True)
                         if a is not None and b is not None])


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Torch on one thread for the block. A resample's tensors are small: a thread pool
    only adds its wake-up to every op, which on a busy 2-core machine measured 2-7 ms an
    op against microseconds on one thread (a thousand resamples: 8-26 s against under 1)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _percentiles(values: list[float]) -> list[float]:
    """[low, high]: the central LEVEL of ``values`` (a percentile interval)."""
    tail = 100 * (1 - LEVEL) / 2
    return [float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail))]


# metrics that are proportions (an interval of their mean stays within [0, 1]) and
# errors (within [0, inf)); any other (a skill score) is unbounded
PROPORTIONS = ("accuracy", "balanced_accuracy", "f1", "precision", "recall", "roc_auc",
               "auc", "pr_auc", "hr_", "ndcg_", "mrr_", "coverage")
ERRORS = ("log_loss", "mae", "rmse", "mse", "mase", "mape", "smape")


def metric_bounds(name: str) -> tuple[float, float]:
    """The values a metric can take, for clipping an interval.

    >>> metric_bounds("accuracy"), metric_bounds("ndcg_10"), metric_bounds("mase")
    ((0.0, 1.0), (0.0, 1.0), (0.0, inf))
    """
    if name.startswith(PROPORTIONS):
        return 0.0, 1.0
    return (0.0, math.inf) if name in ERRORS else (-math.inf, math.inf)


def mean_interval(values: list[float], level: float = LEVEL,
                  bounds: tuple[float, float] = (-math.inf, math.inf),
                  ) -> tuple[float, float, float]:
    """(mean, low, high): Student-t interval of the mean of a few runs (rounded to 4),
    clipped to ``bounds`` (``metric_bounds``: a t-interval of two accuracies can reach
    past 1, which no accuracy can).

    One value has no spread: its interval is the value itself.

    >>> mean_interval([0.99, 0.70], bounds=(0.0, 1.0))
    (0.845, 0.0, 1.0)
    """
    arr = np.asarray(values, dtype=float)
    mean = float(arr.mean())
    if len(arr) < 2:
        return round(mean, 4), round(mean, 4), round(mean, 4)
    from scipy import stats

    half = float(stats.t.ppf(0.5 + level / 2, len(arr) - 1) * arr.std(ddof=1) / math.sqrt(len(arr)))
    low, high = max(mean - half, bounds[0]), min(mean + half, bounds[1])
    return round(mean, 4), round(low, 4), round(high, 4)
