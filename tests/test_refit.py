"""Refit: the final models trained again on train + validation, the baseline alike; the
validation figures still come from the early-stopped models."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from grutune.cli import app
from grutune.config import DataConfig
from grutune.data.cache import SequenceData
from grutune.nn.trainer import fit, fit_epochs, predict
from grutune.search_space import train_config
from grutune.tasks import get_task
from grutune.tasks.baselines import nearest_neighbour, tfidf_logistic
from grutune.tuning.fitting import build_model
from grutune.tuning.refit import refit_models, refit_skip_reason

from .conftest import make_texts
from .test_baselines import ACCURACY, _series, text_parts

SMALL = {"embed_dim": 16, "hidden_size": 16, "embedding": "random"}


@pytest.fixture(scope="module")
def text_setup(tmp_path_factory):
    path = tmp_path_factory.mktemp("refit") / "texts.csv"
    make_texts(20).to_csv(path, index=False)
    task = get_task("text")
    prepared = task.prepare(DataConfig(path=str(path)))
    space = task.default_space({})
    params = {**{p.name: p.default for p in space.params.values()}, **SMALL}
    return task, prepared, params


class _Rising:
    """A scorer whose validation metric rises every epoch, so ``fit`` keeps its last."""

    direction = "maximize"

    def __init__(self, scoring):
        self.scoring, self.calls = scoring, 0

    def loss(self, outputs, y):
        return self.scoring.loss(outputs, y)

    def val_metric(self, outputs, y):
        self.calls += 1
        return float(self.calls)


def test_fit_epochs_trains_as_fit_does_up_to_that_epoch(text_setup):
    """Same seed, schedule and batches as ``fit``: after k epochs the weights are those
    ``fit`` holds after its epoch k (here made its best), to the bit."""
    task, prepared, params = text_setup
    cfg = train_config(params, 6, seed=3)
    a = build_model(task, params, prepared.state, 3)
    fit(a, prepared.train, prepared.val, cfg, _Rising(task.scoring(prepared.state)),
        on_epoch=lambda log: log.epoch >= 2)
    b = build_model(task, params, prepared.state, 3)
    assert fit_epochs(b, prepared.train, cfg, task.scoring(prepared.state), 2) == ""
    for (name, wa), wb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(wa, wb), name


def test_trailing_average_is_what_fit_scores_and_keeps_and_fit_epochs_rebuilds(text_setup):
    """``average`` 3: epoch 4's model is epochs 2-4's weights averaged; validation scores
    that average; training goes on from the epoch's own weights (so the trajectory is the
    plain one); a refit for 4 epochs ends on the same average, to the bit."""
    task, prepared, params = text_setup
    scoring = task.scoring(prepared.state)
    averaged = train_config({**params, "average": 3}, 6, seed=3)
    a = build_model(task, params, prepared.state, 3)
    result = fit(a, prepared.train, prepared.val, averaged, _Rising(scoring),
                 on_epoch=lambda log: log.epoch >= 4)
    assert result.best_epoch == 4
    plain = []  # the plain trajectory's weights after epochs 2, 3, 4
    for epochs in (2, 3, 4):
        m = build_model(task, params, prepared.state, 3)
        fit_epochs(m, prepared.train, train_config({**params, "average": 1}, 6, seed=3),
                   scoring, epochs)
        plain.append(m.state_dict())
    for name, weight in a.state_dict().items():
        mean = torch.stack([s[name] for s in plain]).mean(0)
        assert torch.allclose(weight, mean, atol=1e-6), name
        assert not torch.equal(weight, plain[-1][name]) or weight.dim() == 0, name
    val_loss = float(scoring.loss(predict(a, prepared.val), prepared.val.y))
    assert result.history[3].val_loss == pytest.approx(val_loss, rel=1e-5)
    b = build_model(task, params, prepared.state, 3)
    assert fit_epochs(b, prepared.train, averaged, scoring, 4) == ""
    for (name, wa), wb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(wa, wb), name


def test_refit_trains_each_member_on_train_and_validation_for_its_epochs(text_setup,
                                                                         monkeypatch):
    task, prepared, params = text_setup
    seen = []

    def spy(model, train, cfg, scoring, epochs, should_stop=None):
        seen.append((len(train), epochs, cfg.seed))
        return fit_epochs(model, train, cfg, scoring, epochs, should_stop)

    monkeypatch.setattr("grutune.tuning.refit.fit_epochs", spy)
    models = refit_models(task, prepared, [(params, 5, 2), (params, 9, 1)], 6)
    rows = len(prepared.train) + len(prepared.val)
    assert seen == [(rows, 2, 5), (rows, 1, 9)]
    assert len(models) == 2 and not any(m.training for m in models)
    again = refit_models(task, prepared, [(params, 5, 2)], 6)[0]
    assert all(torch.equal(x, y) for x, y in zip(models[0].state_dict().values(),
                                                 again.state_dict().values(), strict=True))


def test_refit_past_its_deadline_keeps_nothing(text_setup):
    task, prepared, params = text_setup
    assert refit_models(task, prepared, [(params, 0, 3)], 6, lambda: "budget") is None


def test_refit_is_skipped_where_validation_cannot_join_training():
    assert refit_skip_reason(get_task("text"), 1, True) is None
    assert refit_skip_reason(get_task("text"), 1, False) == "--no-refit"
    assert "cross-validation" in refit_skip_reason(get_task("series"), 5, True)
    assert refit_skip_reason(get_task("forecast"), 1, True) is None  # up to the test
    assert "validates on data" in refit_skip_reason(get_task("recommend"), 1, True)


def test_refitted_baselines_learn_from_train_and_validation():
    split_texts, split_y, labels, texts, y = text_parts()
    n = len(texts)
    parts = (split_texts, split_y)
    plain = tfidf_logistic(*parts, len(labels), ACCURACY)
    refit = tfidf_logistic(*parts, len(labels), ACCURACY, refit=True)
    assert refit.chosen == plain.chosen and refit.tried == plain.tried  # chosen as before
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    if refit.chosen["features"] == "word 1-2 grams":  # the same model, fitted by hand
        vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2)
        both = texts[: 3 * n // 4]
        lr = LogisticRegression(C=refit.chosen["C"], max_iter=2000, random_state=0).fit(
            vec.fit_transform(both), y[: 3 * n // 4].numpy())
        expected = lr.predict_proba(vec.transform(texts[3 * n // 4:]))
        assert np.allclose(refit.test_outputs.exp().numpy(), expected, atol=1e-5)
    # 1-NN: a validation series labelled against its class; its copy in test takes that
    # label only when validation joins the neighbours (the refit)
    train, val = _series(30, 0), _series(12, 1)
    odd = val.y.clone()
    odd[0] = 1 - odd[0]
    series = {"train": train, "val": SequenceData(val.x, val.lengths, odd),
              "test": SequenceData(val.x[:1], val.lengths[:1], val.y[:1])}
    label = {r: int(nearest_neighbour(series, 2, ACCURACY, refit=r).test_outputs.argmax())
             for r in (False, True)}
    assert label == {False: int(val.y[0]), True: int(odd[0])}


def test_a_text_run_refits_and_reports_validation_from_the_early_models(runner, tmp_path,
                                                                         texts_csv):
    """With and without refit, the same seeded search gives the same validation figure
    (it comes from the early-stopped models); only the refit run trains on the
    validation rows, and its baseline does too."""
    metrics = {}
    for flag in ("--refit", "--no-refit"):
        run = tmp_path / flag
        result = runner.invoke(app, ["tune", str(texts_csv), "--run-dir", str(run),
                                     "--trials", "2", "--max-epochs", "3", "--folds", "1",
                                     "--workers", "1", "--repeats", "2", flag])
        assert result.exit_code == 0, result.stderr
        metrics[flag] = json.loads((run / "metrics.json").read_text())
    done, off = metrics["--refit"], metrics["--no-refit"]
    rows = json.loads((tmp_path / "--refit" / "split.json").read_text())["split"]
    assert done["refit"]["done"] and done["refit"]["rows"] == len(rows["train"]) + len(
        rows["val"])
    assert len(done["refit"]["epochs"]) == 2  # the chosen configuration's two seeds
    assert off["refit"] == {"done": False, "reason": "--no-refit"}
    assert done["validation"] == off["validation"]
    assert done["baseline"]["refit"] is True and off["baseline"]["refit"] is False


@pytest.mark.parametrize("fails_at,kept", [(2, 1), (3, 2), (None, 3), (1, 0)])
def test_configurations_whose_refit_misses_the_time_limit_are_left_out(monkeypatch, fails_at,
                                                                      kept):
    """The refit goes group by group (the --ensemble trials, best first): when the time
    limit passes during one's refit, it and those after it leave the final model; when it
    passes during the first one's, the early-stopped models are kept."""
    from rich.console import Console

    import grutune.workflows.tune as tune

    calls = []

    def refit(task, prepared, group, max_epochs, should_stop):  # noqa: ANN001, ANN202
        calls.append(len(group))
        return None if len(calls) == fails_at else [torch.nn.Linear(1, 1) for _ in group]

    monkeypatch.setattr(tune, "refit_models", refit)
    groups = [[({}, 0, 3), ({}, 1, 4)], [({}, 2, 2)], [({}, 3, 5), ({}, 4, 6)]]
    prepared = SimpleNamespace(train=[0] * 5, val=[0] * 2)
    refitted, record = tune._refit(None, prepared, SimpleNamespace(refit=True, max_epochs=9),
                                   groups, None, None, Console(quiet=True))
    assert calls == [len(g) for g in groups][:fails_at or 3]  # none tried after a miss
    if kept == 0:
        assert refitted is None and not record["done"]
        assert "the early-stopped models are kept" in record["reason"]
        return
    assert [len(g) for g in refitted] == [len(g) for g in groups][:kept]
    assert record["done"] and record["rows"] == 7
    assert record["epochs"] == [e for g in groups[:kept] for _, _, e in g]
    assert (record["note"] == "") == (kept == 3)
    if kept < 3:
        assert f"the refit of {3 - kept} of 3 configurations did not fit" in record["note"]


@pytest.mark.parametrize(("folds", "enabled"), [(1, True), (1, False), (3, True)])
def test_the_plan_promises_a_refit_exactly_when_there_is_one(text_setup, tmp_path, folds,
                                                             enabled):
    """The printed plan and the refit ask the same question (``refit_skip_reason``)."""
    from grutune.config import StudyConfig
    from grutune.reporting.tables import plan_text

    task, prepared, _ = text_setup
    summary = {**prepared.summary, "folds": folds}
    text = plan_text(task, summary, StudyConfig(refit=enabled), 10, 0, tmp_path)
    promised = "refitted on train + validation" in text
    assert promised == (refit_skip_reason(task, folds, enabled) is None) == (
        folds == 1 and enabled)

