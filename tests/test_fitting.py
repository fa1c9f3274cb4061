"""One trial fit for the search, the seed repeats and the final model (``fitting``)."""

from __future__ import annotations

import torch

from grutune.bundle import save_weights
from grutune.config import DataConfig
from grutune.data.folds import make_folds
from grutune.nn.trainer import predict
from grutune.tasks import get_task
from grutune.tuning.fitting import checkpoint_paths, fit_trial, restore_models

PARAMS = {"embed_dim": 8, "hidden_size": 8, "lr": 0.01, "batch_size": 16, "patience": 5}


def _prepared(texts_csv, folds: int = 1):
    task = get_task("text")
    space = task.default_space({})
    prepared = task.prepare(DataConfig(path=str(texts_csv), seed=0))
    if folds > 1:
        prepared.folds = make_folds(prepared.train, prepared.val, folds, 0)
    return task, prepared, {**{p.name: p.default for p in space.params.values()}, **PARAMS}


def test_holdout_value_is_the_best_epoch_and_weights_restore_it(texts_csv):
    task, prepared, params = _prepared(texts_csv)
    done = fit_trial(task, prepared, params, seed=3, max_epochs=3)
    result = done.results[0]
    assert done.stopped == "" and len(done.models) == 1
    assert done.value == result.best_metric
    assert done.val_loss == result.history[result.best_epoch - 1].val_loss
    # the returned model holds the best epoch: scoring it again gives the value
    out = predict(done.models[0], prepared.val)
    assert task.val_metric(out, prepared.val.y) == done.value


def test_cross_validation_value_is_pooled_out_of_fold(texts_csv):
    task, prepared, params = _prepared(texts_csv, folds=3)
    reported = []
    done = fit_trial(task, prepared, params, seed=3, max_epochs=2,
                     after_fold=lambda fold, value: reported.append((fold, value)) is not None)
    pairs = prepared.fold_pairs()
    pooled = torch.cat([predict(m, v) for m, (_, v) in zip(done.models, pairs, strict=True)])
    truth = torch.cat([v.y for _, v in pairs])
    assert len(done.models) == 3 and done.value == task.val_metric(pooled, truth)
    assert [f for f, _ in reported] == [0, 1, 2] and reported[-1][1] == done.value


def test_after_fold_can_stop_the_trial(texts_csv):
    task, prepared, params = _prepared(texts_csv, folds=3)
    done = fit_trial(task, prepared, params, seed=3, max_epochs=1,
                     after_fold=lambda fold, value: True)
    assert done.stopped == "fold" and len(done.results) == 1 and done.value is None


def test_a_budget_stop_ends_the_trial_unscored_unless_the_search_keeps_it(texts_csv):
    task, prepared, params = _prepared(texts_csv)
    cut = fit_trial(task, prepared, params, seed=3, max_epochs=4, should_stop=lambda: "budget")
    assert cut.stopped == "budget" and cut.value is None and len(cut.results[0].history) == 1
    kept = fit_trial(task, prepared, params, seed=3, max_epochs=4, should_stop=lambda: "budget",
                     ends=("callback", "interrupted"))
    assert kept.stopped == "" and kept.value == kept.results[0].best_metric


def test_restore_loads_checkpoints_and_retrains_a_missing_one_identically(texts_csv, tmp_path):
    """A checkpointed fold is loaded; a missing one is retrained from the parameters and
    seed into exactly the model the search trained (the final model of a study filled by
    workers elsewhere)."""
    task, prepared, params = _prepared(texts_csv, folds=2)
    done = fit_trial(task, prepared, params, seed=5, max_epochs=2)
    paths = checkpoint_paths(tmp_path, 0, 2)
    save_weights(done.models[0], paths[0])  # fold 1 has no checkpoint
    missing = []
    models = restore_models(task, prepared, params, 5, paths, 2, missing.append)
    assert missing == [paths[1]]
    for restored, trained in zip(models, done.models, strict=True):
        assert not restored.training
        for a, b in zip(restored.state_dict().values(), trained.state_dict().values(),
                        strict=True):
            assert torch.equal(a, b)
