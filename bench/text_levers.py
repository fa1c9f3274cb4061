"""Text levers on a fixed configuration: the text space's defaults, 3 seeds, run alone.

    python bench/text_levers.py DATASET W2V_EPOCHS MODES

MODES: comma-separated ``w2v`` (embedding from word2vec of the training split), ``rand``
(random embedding), ``frozen`` (word2vec, the embedding not trained further) or
``refit`` (word2vec, early-stopped on validation, then the same seed refitted on train +
validation for its best epoch; prints both and their ensembles) or ``snap`` (word2vec;
the best epoch against the average of epochs best-1..best+1, by predictions and by
weights); ``:key=value`` overrides a parameter (``:word_dropout=P`` replaces each
training token by <unk> with probability P, a probe outside the space; ``:first_seed=S``
uses seeds S..S+2) and
``@key=value`` a preparation option (``@min_count=1``, ``@len_percentile=100``,
``@stem=0``). Prints validation and test accuracy per seed, their means and the test
accuracy of the three seeds' ensemble.
Example: ``python bench/text_levers.py bbc-news 10 w2v,rand``.
"""
from __future__ import annotations

import copy
import sys
import time

import torch

import grutune.tasks.word_vectors as word_vectors
from grutune.config import DataConfig
from grutune.nn.model import Ensemble
from grutune.nn.trainer import fit, predict
from grutune.search_space import train_config
from grutune.tasks import get_task
from grutune.tuning.fitting import build_model, fit_trial
from grutune.tuning.refit import refit_models

MAX_EPOCHS = 20  # the text task's default
SNAPSHOT_ROWS = ("best epoch", "predictions of epochs b-1..b+1", "weights of epochs b-1..b+1")


def accuracy(model, prep, part: str = "test") -> float:  # noqa: ANN001 - model, Prepared
    data = getattr(prep, part)
    return (predict(model, data).argmax(1) == data.y).float().mean().item()


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


def snapshots_probe(task, prep, params: dict, first: int = 0) -> None:  # noqa: ANN001
    """Checkpoint averaging: each seed's weights after every epoch, then the best epoch
    alone against the epochs around it (best-1..best+1) averaged two ways: their
    predictions (a snapshot ensemble) and their weights (as stochastic weight averaging
    does). Validation and test accuracy of each, means over three seeds."""
    rows: dict[str, list[tuple[float, float]]] = {name: [] for name in SNAPSHOT_ROWS}
    for seed in range(first, first + 3):
        model = build_model(task, params, prep.state, seed, prep)
        cfg = train_config(params, MAX_EPOCHS, seed, task.epoch_rows)
        states: list[dict] = []

        def snap(log, model=model, states=states) -> bool:  # noqa: ANN001
            states.append(copy.deepcopy(model.state_dict()))
            return False

        best = fit(model, prep.train, prep.val, cfg, task.scoring(prep.state), snap).best_epoch
        window = states[max(best - 2, 0): best + 1]
        members = []
        for state in window:
            member = build_model(task, params, prep.state, seed)
            member.load_state_dict(state)
            members.append(member.eval())
        averaged = build_model(task, params, prep.state, seed)
        averaged.load_state_dict({k: sum(st[k].float() for st in window) / len(window)
                                  for k in window[0]})
        candidates = (model.eval(), Ensemble(members, task.combine), averaged.eval())
        for name, candidate in zip(SNAPSHOT_ROWS, candidates, strict=True):
            rows[name].append((accuracy(candidate, prep, "val"), accuracy(candidate, prep)))
        print("seed", seed, "best epoch", best, "of", len(states), {
            k: [round(a, 4) for a in v[-1]] for k, v in rows.items()}, flush=True)
    for name, pairs in rows.items():
        print(f"snapshots {name}: mean val {sum(p[0] for p in pairs) / 3:.4f} "
              f"test {sum(p[1] for p in pairs) / 3:.4f}", flush=True)


def word_dropout(probability: float):  # noqa: ANN201 - an initialize hook
    """A hook for Task.initialize that makes the model's embedding read <unk> (id 1) for
    each non-padding training token with ``probability``."""
    def hook(module, args):  # noqa: ANN001, ANN202 - a forward pre-hook
        (ids,) = args
        if not module.training:
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
        elif name == "snap":
            snapshots_probe(task, prep, params, first)
        else:
            seeds_probe(task, prep, params, mode, first)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3])
