"""Population training: each member computes exactly what its single-trial twin does."""

import copy

import pytest
import torch

from grutune.config import ModelConfig, TrainConfig
from grutune.data.cache import SequenceData
from grutune.exceptions import TrialFailure
from grutune.nn.model import SequenceModel
from grutune.nn.population import Population, fit_population, population_key
from grutune.nn.trainer import fit, seed_everything
from grutune.tasks.text_classification import TextClassification


def _models(cfg: ModelConfig, inits: list[str], dropouts: list[float] | None = None):
    models = []
    for i, init in enumerate(inits):
        seed_everything(i)
        p = (dropouts or [0.0] * len(inits))[i]
        models.append(SequenceModel(ModelConfig(**{**cfg.__dict__, "init": init, "dropout": p})))
    return models


def _tokens(rows: int = 9, steps: int = 11, vocab: int = 30, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, steps + 1, (rows,), generator=g)
    lengths[0] = steps
    x = torch.randint(1, vocab, (rows, steps), generator=g)
    x[torch.arange(steps).unsqueeze(0) >= lengths.unsqueeze(1)] = 0
    return x, lengths


ARCHS = [
    dict(pooling="mean"),
    dict(pooling="max", bidirectional=True),
    dict(pooling="attention", num_layers=2),
    dict(pooling="last", bidirectional=True, num_layers=2),
]


@pytest.mark.parametrize("arch", ARCHS, ids=[a["pooling"] for a in ARCHS])
def test_members_match_their_models_forward_and_gradients(arch):
    cfg = ModelConfig(num_outputs=4, vocab_size=30, embed_dim=6, hidden_size=5, **arch)
    models = _models(cfg, ["default", "xavier", "orthogonal"])
    pop = Population(models)
    x, lengths = _tokens()
    out = pop(x, lengths)  # [K, B, C]
    target = torch.randn(out.shape, generator=torch.Generator().manual_seed(3))
    (out * target).sum().backward()
    for k, model in enumerate(models):
        mine = model(x, lengths)
        assert torch.allclose(out[k], mine, atol=1e-5)
        (mine * target[k]).sum().backward()
        for name, param in model.named_parameters():
            assert torch.allclose(pop.p(name).grad[k], param.grad, atol=1e-5), name


def test_series_inputs_with_normalization():
    cfg = ModelConfig(num_outputs=2, input_dim=3, embed_dim=4, hidden_size=5,
                      series_norm=True, pooling="mean")
    models = _models(cfg, ["default", "he"])
    x = torch.randn(5, 8, 3)
    lengths = torch.tensor([8, 8, 5, 3, 8])
    out = Population(models).eval()(x, lengths)
    for k, model in enumerate(models):
        assert torch.allclose(out[k], model.eval()(x, lengths), atol=1e-5)


def _data(rows: int, seed: int) -> SequenceData:
    x, lengths = _tokens(rows, 12, 30, seed)
    y = (x[:, 0] % 3).long()  # learnable from the first token
    return SequenceData(x, lengths, y)


def _task() -> TextClassification:
    return TextClassification("accuracy")


@pytest.mark.parametrize("average", [1, 3])
def test_training_together_equals_training_alone(average):
    """Same seeds, no dropout: K members trained as one population follow the same
    trajectory as each trained alone by the single-trial trainer (own lr, schedule,
    weight decay, L2, clipping, init), and with a trailing average score and keep the
    same averaged weights."""
    torch.manual_seed(0)
    train, val = _data(120, 1), _data(40, 2)
    cfg = ModelConfig(num_outputs=3, vocab_size=30, embed_dim=8, hidden_size=6)
    common = dict(batch_size=16, max_epochs=4, patience=10, seed=5, average=average)
    cfgs = [TrainConfig(optimizer="adamw", lr=5e-3, schedule="cosine", **common),
            TrainConfig(optimizer="adam", lr=2e-3, weight_decay=0.05, l2_penalty=1e-3,
                        grad_clip=0.3, schedule="step", step_size=1, warmup_epochs=1,
                        **common),
            TrainConfig(optimizer="adamw", lr=1e-2, schedule="exponential", gamma=0.7,
                        **common)]
    alone = _models(cfg, ["default", "xavier", "orthogonal"])
    together = copy.deepcopy(alone)
    task = _task()
    solo = [fit(m, train, val, c, task) for m, c in zip(alone, cfgs, strict=True)]
    joint = fit_population(together, cfgs, train, val, task)
    for a, b, m1, m2 in zip(solo, joint, alone, together, strict=True):
        assert len(a.history) == len(b.history) == 4
        for ea, eb in zip(a.history, b.history, strict=True):
            assert ea.val_loss == pytest.approx(eb.val_loss, abs=1e-4)
            assert ea.train_loss == pytest.approx(eb.train_loss, abs=1e-4)
            assert ea.lr == pytest.approx(eb.lr, rel=1e-9)
        assert a.best_epoch == b.best_epoch
        for p, q in zip(m1.parameters(), m2.parameters(), strict=True):
            assert torch.allclose(p, q, atol=1e-4)


@pytest.mark.parametrize("average", [1, 3])
def test_members_leave_on_their_own(average):
    """A member pruned after epoch 2 leaves; the others train on to their end (their
    weight window, two epochs deep by then, shrinks with the stack)."""
    train, val = _data(60, 1), _data(20, 2)
    cfg = ModelConfig(num_outputs=3, vocab_size=30, embed_dim=8, hidden_size=6)
    cfgs = [TrainConfig(lr=3e-3, batch_size=16, max_epochs=3, patience=10, seed=1,
                        average=average)] * 3
    models = _models(cfg, ["default"] * 3)
    seen: list[list[int]] = [[], [], []]

    def watcher(k):
        def on_epoch(log):
            seen[k].append(log.epoch)
            return k == 1 and log.epoch == 2  # prune member 1 at its second report
        return on_epoch

    results = fit_population(models, cfgs, train, val, _task(),
                             on_epoch=[watcher(k) for k in range(3)])
    assert seen == [[1, 2, 3], [1, 2], [1, 2, 3]]
    assert [r.stopped for r in results] == ["max_epochs", "callback", "max_epochs"]


def test_a_diverging_member_fails_alone():
    train, val = _data(60, 1), _data(20, 2)
    cfg = ModelConfig(num_outputs=3, vocab_size=30, embed_dim=8, hidden_size=6)
    good = TrainConfig(lr=3e-3, batch_size=16, max_epochs=2, patience=10, seed=1)
    models = _models(cfg, ["default", "default"])
    with torch.no_grad():
        models[1].head.weight[0, 0] = float("nan")  # member 1's outputs are NaN at once
    results = fit_population(models, [good, good], train, val, _task())
    assert not isinstance(results[0], TrialFailure) and len(results[0].history) == 2
    assert isinstance(results[1], TrialFailure)
    assert "loss became" in str(results[1])


def test_key_separates_what_cannot_share_a_stack():
    m = ModelConfig(num_outputs=2, vocab_size=10)
    t = TrainConfig()
    assert population_key(m, t) == population_key(ModelConfig(num_outputs=2, vocab_size=10,
                                                              dropout=0.3),
                                                  TrainConfig(lr=0.1))
    assert population_key(m, t) != population_key(ModelConfig(num_outputs=2, vocab_size=10,
                                                              hidden_size=32), t)
    assert population_key(ModelConfig(num_outputs=2, vocab_size=10, cell="lstm"), t) is None
    assert population_key(m, TrainConfig(optimizer="sgd")) is None
    # members average the same trailing window of epochs (one window for the stack)
    assert population_key(m, TrainConfig(average=3)) not in (None, population_key(m, t))
