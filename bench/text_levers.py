"""Text levers on a fixed configuration: the text space's defaults, 3 seeds, run alone.

    python bench/text_levers.py DATASET W2V_EPOCHS MODES

MODES: comma-separated ``w2v`` (embedding from word2vec of the training split), ``rand``
(random embedding), ``frozen`` (word2vec, the embedding not trained further) or
``refit`` (word2vec, early-stopped on validation, then the same seed refitted on train +
validation for its best epoch; prints both and their ensembles); ``:key=value``
overrides a parameter (``:word_dropout=P`` replaces each training token by <unk> with
probability P, a probe outside the space; ``:first_seed=S`` uses seeds S..S+2) and
``@key=value`` a preparation option (``@min_count=1``, ``@len_percentile=100``,
``@stem=0``). Prints validation and test accuracy per seed, their means and the test
accuracy of the three seeds' ensemble.
Example: ``python bench/text_levers.py bbc-news 10 w2v,rand``.
"""
from __future__ import annotations

import sys
import time

import torch

import grutune.tasks.word_vectors as word_vectors
from grutune.config import DataConfig
from grutune.nn.model import Ensemble
from grutune.nn.trainer import predict
from grutune.tasks import get_task
from grutune.tuning.fitting import fit_trial
from grutune.tuning.refit import refit_models

MAX_EPOCHS = 20  # the text task's default


def accuracy(model, prep) -> float:  # noqa: ANN001 - a model and a Prepared
    return (predict(model, prep.test).argmax(1) == prep.test.y).float().mean().item()


def refit_probe(task, prep, params: dict, seeds: int = 5) -> None:  # noqa: ANN001
    """Each seed early-stopped on validation, then refitted on train + validation."""
    early, refit = [], []
    for seed in range(seeds):
        done = fit_trial(task, prep, params, seed, MAX_EPOCHS)
        best = done.results[0].best_epoch
        early.append(done.models[0].eval())
        refit += refit_models(task, prep, [(params, seed, best)], MAX_EPOCHS)
        first, again = accuracy(early[-1], prep), accuracy(refit[-1], prep)
        print(seed, "best epoch", best, f"val {done.value:.4f}",
              f"test early {first:.4f} refit {again:.4f}", flush=True)
    means = [sum(accuracy(m, prep) for m in ms) / seeds for ms in (early, refit)]
    ensembles = [accuracy(Ensemble(ms, task.combine), prep) for ms in (early, refit)]
    print(f"refit: mean test early {means[0]:.4f} refit {means[1]:.4f}; "
          f"ensembles early {ensembles[0]:.4f} refit {ensembles[1]:.4f}", flush=True)


def seeds_probe(task, prep, params: dict, mode: str, first: int = 0) -> None:  # noqa: ANN001
    """Seeds first..first+2 early-stopped on validation: validation and test accuracy, and the
    test accuracy of their ensemble."""
    vals, accs, models = [], [], []
    for seed in range(first, first + 3):
        done = fit_trial(task, prep, params, seed, MAX_EPOCHS)
        vals.append(done.value)
        models.append(done.models[0].eval())
        accs.append(accuracy(models[-1], prep))
    together = accuracy(Ensemble(models, task.combine), prep)
    print(mode, "val", [round(v, 4) for v in vals], "test", [round(a, 4) for a in accs],
          f"mean val {sum(vals) / 3:.4f} test {sum(accs) / 3:.4f} ensemble {together:.4f}",
          flush=True)


def word_dropout(probability: float):  # noqa: ANN201 - an initialize hook
    """A hook for Task.initialize that makes the model's embedding read <unk> (id 1) for
    each non-padding training token with ``probability``."""
    def hook(module, args):  # noqa: ANN001, ANN202 - a forward pre-hook
        (ids,) = args
        if not module.training or probability == 0:
            return None
        drop = (torch.rand(ids.shape, device=ids.device) < probability) & (ids > 0)
        return (ids.masked_fill(drop, 1),)
    return hook


def prepared(task, dataset: str, options: tuple[str, ...], space):  # noqa: ANN001, ANN201
    """The dataset prepared with ``key=value`` preparation options, word2vec pretrained."""
    changes = {}
    for item in options:
        key, value = item.split("=")
        if key in ("stem", "stop_words"):
            changes[key] = bool(int(value))
        else:
            changes[key] = float(value) if "." in value or key == "len_percentile" else int(value)
    prep = task.prepare(DataConfig(dataset=dataset, seed=0, **changes))
    start = time.time()
    task.pretrain(prep, space, 0)
    print("prepared", changes or "defaults", prep.summary.get("vocab_size"),
          "words, max length", prep.summary.get("max_len"), "pretrain s",
          round(time.time() - start, 1), flush=True)
    return prep


def main(dataset: str, w2v_epochs: int, modes: str) -> None:
    word_vectors.EPOCHS = w2v_epochs
    task = get_task("text")
    space = task.default_space({})
    preps = {(): prepared(task, dataset, (), space)}
    base = {p.name: p.default for p in space.params.values()}
    initialize = task.initialize

    def frozen(model, params: dict, prepared) -> None:  # noqa: ANN001 - as Task.initialize
        initialize(model, params, prepared)
        model.embed.weight.requires_grad_(False)  # the trainer optimizes what needs grads

    for mode in modes.split(","):
        head, *overrides = mode.split(":")
        name, *options = head.split("@")
        if tuple(options) not in preps:
            preps[tuple(options)] = prepared(task, dataset, tuple(options), space)
        prep = preps[tuple(options)]
        params = {**base, "embedding": "random" if name == "rand" else "word2vec"}
        dropping, first = 0.0, 0
        for item in overrides:
            key, value = item.split("=")
            if key == "word_dropout":
                dropping = float(value)
            elif key == "first_seed":
                first = int(value)
            else:
                params[key] = type(base[key])(value)

        def start(model, params: dict, prepared, dropping=dropping, name=name) -> None:  # noqa: ANN001
            (frozen if name == "frozen" else initialize)(model, params, prepared)
            if dropping:
                model.embed.register_forward_pre_hook(word_dropout(dropping))

        task.initialize = start
        if name == "refit":
            refit_probe(task, prep, params)
        else:
            seeds_probe(task, prep, params, mode, first)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3])
