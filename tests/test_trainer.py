"""Trainer: schedules, the two kinds of L2, early stopping, numeric failures."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from grutune.config import ModelConfig, TrainConfig
from grutune.data.cache import SequenceData
from grutune.exceptions import TrialFailure
from grutune.nn.model import SequenceModel
from grutune.nn.trainer import fit, l2_term, lr_factor, make_optimizer, predict
from grutune.tasks import get_task


@pytest.mark.parametrize(("schedule", "epoch", "expected"), [
    ("constant", 7.0, 1.0),
    ("step", 3.9, 1.0),
    ("step", 4.0, 0.5),
    ("step", 8.5, 0.25),
    ("exponential", 2.0, 0.25),
    ("cosine", 0.0, 1.0),
    ("cosine", 10.0, 0.01),
    ("cosine", 5.0, 0.01 + 0.99 * 0.5),
])
def test_schedules(schedule, epoch, expected):
    cfg = TrainConfig(schedule=schedule, step_size=4, gamma=0.5, max_epochs=10)
    assert lr_factor(cfg, epoch) == pytest.approx(expected)


def test_warmup_then_schedule_clock_starts_after_warmup():
    cfg = TrainConfig(schedule="exponential", gamma=0.5, warmup_epochs=2, max_epochs=10)
    assert lr_factor(cfg, 0.0) == pytest.approx(0.1)
    assert lr_factor(cfg, 1.0) == pytest.approx(0.55)
    assert lr_factor(cfg, 2.0) == pytest.approx(1.0)
    assert lr_factor(cfg, 3.0) == pytest.approx(0.5)


def _toy(n=64, seed=0):
    """Sequences whose class is whether token 2 occurs: learnable in a few epochs."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(2, 9, (n,), generator=g)
    x = torch.randint(3, 20, (n, 8), generator=g)
    y = torch.randint(0, 2, (n,), generator=g)
    for i in range(n):
        if y[i] == 1:
            x[i, int(torch.randint(0, int(lengths[i]), (1,), generator=g))] = 2
        x[i, lengths[i]:] = 0
    return SequenceData(x, lengths, y)


def _model(seed=0):
    torch.manual_seed(seed)
    return SequenceModel(ModelConfig(num_outputs=2, vocab_size=20, embed_dim=8,
                                     hidden_size=8, pooling="max"))


def test_fit_learns_and_restores_best_epoch():
    task = get_task("text")
    train, val = _toy(128, 0), _toy(64, 1)
    model = _model()
    result = fit(model, train, val, TrainConfig(lr=0.02, max_epochs=15, patience=3,
                                                batch_size=16), task)
    assert result.best_metric >= 0.9
    # the weights on return are those of the best epoch
    assert task.val_metric(predict(model, val), val.y) == pytest.approx(result.best_metric)
    # early stopping: patience epochs after the best one, unless max_epochs came first
    epochs = len(result.history)
    assert (result.stopped, epochs) in (("early_stopping", result.best_epoch + 3),
                                        ("max_epochs", 15))


def test_on_epoch_can_stop_and_should_stop_reason_is_kept():
    task = get_task("text")
    train, val = _toy(32), _toy(16, 1)
    r = fit(_model(), train, val, TrainConfig(max_epochs=5), task, on_epoch=lambda e: True)
    assert (r.stopped, len(r.history)) == ("callback", 1)
    r = fit(_model(), train, val, TrainConfig(max_epochs=5, patience=5), task,
            should_stop=lambda: "interrupted")
    assert (r.stopped, len(r.history)) == ("interrupted", 1)


def test_divergence_is_a_trial_failure():
    task = get_task("text")
    model = _model()
    with torch.no_grad():
        model.embed.weight[5] = float("inf")  # any batch holding token 5 turns NaN
    with pytest.raises(TrialFailure, match="loss became nan in epoch 1"):
        fit(model, _toy(64), _toy(16, 1), TrainConfig(max_epochs=3), task)


def test_l2_penalty_and_decoupled_decay_are_different():
    """One SGD step from the same weights: the penalty's gradient flows through momentum-free
    SGD as lr*l2*W, decoupled decay multiplies by (1 - lr*wd); with Adam they differ."""
    task = get_task("text")
    data = _toy(16)
    results = {}
    for name, kw in {"penalty": dict(l2_penalty=0.1), "decay": dict(weight_decay=0.1),
                     "none": {}}.items():
        model = _model()
        fit(model, data, data, TrainConfig(optimizer="adamw", lr=0.01, max_epochs=1,
                                           batch_size=16, **kw), task)
        results[name] = model.head.weight.detach().clone()
    assert not torch.allclose(results["penalty"], results["decay"])
    assert not torch.allclose(results["decay"], results["none"])


def test_l2_term_counts_matrices_only():
    model = _model()
    matrices = [p.detach() for p in model.parameters() if p.dim() >= 2]
    expected = 0.5 * 0.3 * sum(float((p * p).sum()) for p in matrices)
    with torch.no_grad():
        assert float(l2_term(model, 0.3)) == pytest.approx(float(expected))


def test_decoupled_decay_for_sgd_shrinks_weights():
    from grutune.nn.trainer import decoupled_decay

    model = _model()
    cfg = TrainConfig(optimizer="sgd", lr=0.1, weight_decay=0.5, momentum=0.0)
    opt = make_optimizer(model, cfg)
    before = model.head.weight.detach().clone()
    bias = model.head.bias.detach().clone()
    decoupled_decay(opt, cfg)
    torch.testing.assert_close(model.head.weight.detach(), before * (1 - 0.05))
    assert torch.equal(model.head.bias.detach(), bias)  # biases are not decayed


def test_train_batches_cover_every_row_once_and_group_lengths():
    data = _toy(100)
    rng = np.random.default_rng(0)
    seen = []
    widths = []
    for batch in data.train_batches(10, rng):
        seen.extend(batch.y.tolist())
        widths.append(batch.x.shape[1] == int(batch.lengths.max()))
    assert len(seen) == 100 and all(widths)
    assert math.isclose(sum(seen), int(data.y.sum()))


def test_epoch_rows_draws_a_fresh_subset_each_epoch():
    data = SequenceData(torch.arange(40).view(20, 2), torch.full((20,), 2), torch.arange(20))
    rng = np.random.default_rng(0)
    epochs = [torch.cat([b.y for b in data.train_batches(3, rng, rows=7)]) for _ in range(2)]
    for rows in epochs:
        assert len(rows) == 7 and len(set(rows.tolist())) == 7  # without replacement
    assert set(epochs[0].tolist()) != set(epochs[1].tolist())
    everything = torch.cat([b.y for b in data.train_batches(3, rng, rows=0)])
    assert sorted(everything.tolist()) == list(range(20))
