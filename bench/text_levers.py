"""Text levers on a fixed configuration: the text space's defaults, 3 seeds, run alone.

    python bench/text_levers.py DATASET W2V_EPOCHS MODES

MODES: comma-separated ``w2v`` (embedding from word2vec of the training split), ``rand``
(random embedding), ``frozen`` (word2vec, the embedding not trained further) or
``refit`` (word2vec, early-stopped on validation, then the same seed refitted on train +
validation for its best epoch; prints both and their ensembles); ``:key=value``
overrides a parameter. Prints validation and test accuracy per seed and their means.
Example: ``python bench/text_levers.py bbc-news 10 w2v,rand``.
"""
from __future__ import annotations

import sys
import time

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


def seeds_probe(task, prep, params: dict, mode: str) -> None:  # noqa: ANN001
    """Seeds 0-2 early-stopped on validation: validation and test accuracy."""
    vals, accs = [], []
    for seed in (0, 1, 2):
        done = fit_trial(task, prep, params, seed, MAX_EPOCHS)
        vals.append(done.value)
        accs.append(accuracy(done.models[0].eval(), prep))
    print(mode, "val", [round(v, 4) for v in vals], "test", [round(a, 4) for a in accs],
          f"mean val {sum(vals) / 3:.4f} test {sum(accs) / 3:.4f}", flush=True)


def main(dataset: str, w2v_epochs: int, modes: str) -> None:
    word_vectors.EPOCHS = w2v_epochs
    task = get_task("text")
    prep = task.prepare(DataConfig(dataset=dataset, seed=0))
    space = task.default_space({})
    start = time.time()
    task.pretrain(prep, space, 0)
    print("pretrain s", round(time.time() - start, 1), flush=True)
    base = {p.name: p.default for p in space.params.values()}
    initialize = task.initialize

    def frozen(model, params: dict, prepared) -> None:  # noqa: ANN001 - as Task.initialize
        initialize(model, params, prepared)
        model.embed.weight.requires_grad_(False)  # the trainer optimizes what needs grads

    for mode in modes.split(","):
        name, *overrides = mode.split(":")
        task.initialize = frozen if name == "frozen" else initialize
        params = {**base, "embedding": "random" if name == "rand" else "word2vec"}
        for item in overrides:
            key, value = item.split("=")
            params[key] = type(base[key])(value)
        if name == "refit":
            refit_probe(task, prep, params)
        else:
            seeds_probe(task, prep, params, mode)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3])
