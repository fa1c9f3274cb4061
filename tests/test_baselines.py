"""The baselines a tuned model is shown beside: fitted on train, chosen on validation,
scored on the test rows as the model is; ``--no-baseline`` skips them."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn.neighbors import KNeighborsClassifier

from grutune.cli import app
from grutune.data.cache import SequenceData
from grutune.tasks.baselines import (
    dtw_distances,
    dtw_neighbour,
    nearest_label,
    nearest_neighbour,
    tfidf_logistic,
)

from .conftest import make_texts


def _accuracy(outputs: torch.Tensor, y: torch.Tensor) -> float:
    return float((outputs.argmax(1) == y).float().mean())


class _Scorer:
    """A task's scoring (``baselines.Scorer``) from a metric and its direction."""

    def __init__(self, metric, direction: str):
        self.val_metric, self.direction = metric, direction


ACCURACY = _Scorer(_accuracy, "maximize")


def test_nearest_label_is_the_euclidean_nearest_neighbour():
    """Against scikit-learn's 1-NN on random equal-length series (an independent
    implementation of the same rule)."""
    rng = np.random.default_rng(0)
    train, query = rng.normal(size=(40, 15, 2)), rng.normal(size=(25, 15, 2))
    hit = nearest_label(torch.tensor(train), torch.full((40,), 15), torch.tensor(query),
                        torch.full((25,), 15), znorm=False)
    knn = KNeighborsClassifier(n_neighbors=1).fit(train.reshape(40, -1), np.arange(40))
    assert hit.tolist() == knn.predict(query.reshape(25, -1)).tolist()


def test_znorm_ignores_level_and_scale_but_not_shape():
    t = torch.linspace(0, 6, 30)
    shapes = torch.stack([torch.sin(t), torch.cos(t)])[..., None]  # [2, 30, 1]
    query = (5 + 10 * torch.sin(t))[None, :, None]  # sin, shifted and stretched
    lengths = torch.full((2,), 30)
    assert nearest_label(shapes, lengths, query, torch.tensor([30]), znorm=True).item() == 0


def _series(n: int, seed: int) -> SequenceData:
    """Two classes told apart by shape (sine vs square wave), at random levels."""
    g = torch.Generator().manual_seed(seed)
    t = torch.linspace(0, 6, 24)
    y = torch.arange(n) % 2
    x = torch.where(y[:, None] == 0, torch.sin(t), torch.sign(torch.sin(t)))
    x = x + 20 * torch.rand(n, 1, generator=g)  # a level no class owns
    return SequenceData(x[..., None].float(), torch.full((n,), 24), y)


def test_nearest_neighbour_chooses_on_validation_only():
    parts = {"train": _series(30, 0), "val": _series(12, 1), "test": _series(12, 2)}
    base = nearest_neighbour(parts, 2, ACCURACY)
    assert base.chosen == {"znorm": True}  # the level misleads raw distances
    assert _accuracy(base.test_outputs, parts["test"].y) == 1.0
    scrambled = dict(parts, test=SequenceData(parts["test"].x, parts["test"].lengths,
                                              parts["test"].y.flip(0)))
    again = nearest_neighbour(scrambled, 2, ACCURACY)
    assert again.chosen == base.chosen and again.tried == base.tried
    probs = base.test_outputs.exp()
    assert torch.allclose(probs.sum(1), torch.ones(12)) and probs.min() > 0  # finite log loss


def _brute_dtw(a: np.ndarray, b: np.ndarray, radius: int) -> float:
    """DTW by its textbook recurrence: squared step differences summed along the cheapest
    path, j - i within ``radius`` of the band between the two diagonals, square-rooted."""
    a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)
    low, high = -radius + min(0, len(b) - len(a)), radius + max(0, len(b) - len(a))
    cost = np.full((len(a) + 1, len(b) + 1), np.inf)
    cost[0, 0] = 0.0
    for i in range(1, len(a) + 1):
        for j in range(max(1, i + low), min(len(b), i + high) + 1):
            step = float(((a[i - 1] - b[j - 1]) ** 2).sum())
            cost[i, j] = step + min(cost[i - 1, j - 1], cost[i - 1, j], cost[i, j - 1])
    return float(np.sqrt(cost[-1, -1]))


@pytest.mark.parametrize("channels", [1, 3])
def test_dtw_distances_match_the_textbook_recurrence(channels):
    """dtaidistance's C code (as called here) against the recurrence written out, on
    series of unequal lengths, one or several channels, a narrow and a full window."""
    rng = np.random.default_rng(channels)
    shape = (lambda n: (n,)) if channels == 1 else (lambda n: (n, channels))
    train = [rng.normal(size=shape(n)) for n in (12, 15, 14)]
    query = [rng.normal(size=shape(n)) for n in (13, 15)]
    for radius in (0, 2, 15):
        got = dtw_distances(train, query, radius)
        want = [[_brute_dtw(q, t, radius) for t in train] for q in query]
        assert got.shape == (2, 3)
        assert np.allclose(got, want)


def _shifted(n: int, seed: int) -> SequenceData:
    """A narrow bump then dip (class 0) or dip then bump (class 1) at a random place in
    100 steps: with few training series the Euclidean distance mostly compares places
    (series that do not overlap are all equally far); DTW warps the places together."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(100.0)
    y = torch.arange(n) % 2
    centre = 10 + 80 * torch.rand(n, 1, generator=g)
    x = (1 - 2 * y[:, None]) * (t - centre) / 2 * torch.exp(-0.5 * ((t - centre) / 2) ** 2)
    return SequenceData(x[..., None].float(), torch.full((n,), 100), y)


def test_dtw_neighbour_warps_when_validation_says_so_and_not_otherwise():
    shifted = {"train": _shifted(8, 0), "val": _shifted(20, 1), "test": _shifted(40, 2)}
    base = dtw_neighbour(shifted, 2, ACCURACY)
    euclid = nearest_neighbour(shifted, 2, ACCURACY)
    assert base.chosen["window"] > 0 and base.name.startswith("1-NN DTW")
    assert _accuracy(base.test_outputs, shifted["test"].y) > _accuracy(
        euclid.test_outputs, shifted["test"].y)
    assert len(base.tried) == 10  # raw / z-normalized x 5 windows, window 0 = Euclidean
    aligned = {"train": _series(30, 0), "val": _series(12, 1), "test": _series(12, 2)}
    plain = dtw_neighbour(aligned, 2, ACCURACY)
    assert plain.chosen == {"znorm": True, "window": 0.0}  # ties go to the simpler distance
    assert plain.name.startswith("1-NN Euclidean")


def test_dtw_windows_too_costly_for_the_test_matrix_are_skipped():
    parts = {"train": _shifted(8, 0), "val": _shifted(20, 1), "test": _shifted(40, 2)}
    base = dtw_neighbour(parts, 2, ACCURACY, max_cells=40 * 100 * 28 * 12)
    skipped = [t for t in base.tried if t.get("skipped") == "cost"]
    # 40 test series of 100 steps x 28 neighbours x (2r + 1): r = 10 and 20 cost more
    assert {t["window"] for t in skipped} == {0.1, 0.2}
    assert base.chosen["window"] in (0.0, 0.02, 0.05)


def text_parts() -> tuple[dict, dict, list[str], list[str], torch.Tensor]:
    """Topic texts cut 50/25/25: (texts per split, labels per split, class names, every
    text, every label)."""
    frame = make_texts(30, seed=3)
    labels = sorted(frame["label"].unique())
    y = torch.tensor([labels.index(v) for v in frame["label"]])
    texts, n = frame["text"].tolist(), len(frame)
    cut = {"train": slice(0, n // 2), "val": slice(n // 2, 3 * n // 4),
           "test": slice(3 * n // 4, n)}
    return ({k: texts[s] for k, s in cut.items()}, {k: y[s] for k, s in cut.items()},
            labels, texts, y)


def test_tfidf_logistic_learns_words_and_reports_what_it_tried():
    split_texts, split_y, labels, texts, y = text_parts()
    n = len(texts)
    base = tfidf_logistic(split_texts, split_y, len(labels), ACCURACY)
    assert len(base.tried) == 4 and base.chosen in [
        {"features": t["features"], "C": t["C"]} for t in base.tried]
    assert _accuracy(base.test_outputs, split_y["test"]) > 0.8
    assert base.test_outputs.shape == (n - 3 * n // 4, len(labels))


@pytest.mark.parametrize("flag", [[], ["--no-baseline"]])
def test_a_run_shows_the_baseline_unless_told_not_to(flag, tmp_path, runner):
    data = tmp_path / "texts.csv"
    make_texts(25, seed=4).to_csv(data, index=False)
    run_dir = tmp_path / "run"
    result = runner.invoke(app, ["tune", str(data), "--run-dir", str(run_dir), "--trials", "1",
                                 "--max-epochs", "1", "--folds", "1", "--repeats", "1",
                                 "--workers", "1", *flag])
    assert result.exit_code == 0, result.output
    metrics = json.loads((run_dir / "metrics.json").read_text())
    report = (run_dir / "report.html").read_text()
    if flag:
        assert "baseline" not in metrics and "Model vs baseline" not in result.stdout
        assert "Beside the baseline" not in report
    else:
        assert metrics["baseline"]["name"] == "TF-IDF + logistic regression"
        assert "Model vs baseline" in result.stdout and "Beside the baseline" in report


def test_theta_forecasts_each_test_origin_from_its_own_past():
    """A positive trending series with a 12-step season: Theta (deseasonalized, chosen on
    validation) forecasts it far better than carrying the last value, and a forecast
    never reads the values after its origin."""
    from grutune.tasks.baselines import theta

    steps = np.arange(240)
    series = (50 + 0.5 * steps + 10 * np.sin(2 * np.pi * steps / 12))[:, None]
    center, scale = series.mean(0), series.std(0)
    horizon = 12
    origins = {"val": np.arange(168, 204 - horizon + 1), "test": np.arange(204, 240, horizon)}
    val_y = torch.tensor(np.stack([(series[o:o + horizon] - center) / scale
                                   for o in origins["val"]]), dtype=torch.float32)

    def mae(outputs, y):
        return float((outputs - y).abs().mean())

    base = theta(series, center, scale, origins, horizon, 12, val_y, _Scorer(mae, "minimize"))
    assert base.chosen["deseasonalize"] is True and len(base.tried) == 2
    assert base.test_outputs.shape == (3, horizon, 1)
    forecast = base.test_outputs.double().numpy() * scale + center
    actual = np.stack([series[o:o + horizon] for o in origins["test"]])
    last = np.stack([np.repeat(series[o - 1:o], horizon, axis=0) for o in origins["test"]])
    assert np.abs(forecast - actual).mean() < 0.8 * np.abs(last - actual).mean()
    future = series.copy()
    future[205:] = -1e6  # values after the first test origin cannot change its forecast
    again = theta(future, center, scale, {"val": origins["val"], "test": origins["test"][:1]},
                  horizon, 12, val_y, _Scorer(mae, "minimize"))
    assert torch.equal(again.test_outputs[0], base.test_outputs[0])


@pytest.mark.realdata
@pytest.mark.parametrize(("dataset", "published"), [
    ("gunpoint", 1 - 0.0867),  # the UCR archive's published 1-NN Euclidean error rates
    ("italy-power-demand", 1 - 0.0447),
])
def test_nearest_neighbour_reproduces_the_archives_published_accuracy(dataset, published):
    """On the archive's own train/test split the 1-NN baseline scores what the UCR
    archive publishes for 1-NN Euclidean (raw series, as validation chooses here)."""
    from grutune.config import DataConfig
    from grutune.tasks import get_task

    task = get_task("series")
    prepared = task.prepare(DataConfig(dataset=dataset))
    base = task.baseline(prepared, 0)
    accuracy = _accuracy(base.test_outputs, prepared.test.y)
    assert accuracy == pytest.approx(published, abs=0.001)


@pytest.mark.realdata
@pytest.mark.parametrize(("dataset", "published"), [
    ("gunpoint", 1 - 0.0933),  # the UCR archive's published 1-NN DTW (full window) errors
    ("italy-power-demand", 1 - 0.0496),
])
def test_dtw_reproduces_the_archives_published_full_window_accuracy(dataset, published):
    """On the archive's train (our train + validation) and test, 1-NN DTW with an
    unconstrained window scores what the UCR archive publishes for it."""
    from grutune.config import DataConfig
    from grutune.data.cache import concat
    from grutune.tasks import get_task
    from grutune.tasks.baselines import _valid_series

    prepared = get_task("series").prepare(DataConfig(dataset=dataset))
    train = concat([prepared.train, prepared.val])
    longest = int(train.lengths.max())
    hit = dtw_distances(_valid_series(train, False), _valid_series(prepared.test, False),
                        longest).argmin(axis=1)
    accuracy = float((train.y[torch.from_numpy(hit)] == prepared.test.y).float().mean())
    assert accuracy == pytest.approx(published, abs=0.001)
