"""One trial's fit, in one place: the search, the seed repeats and the final model use it.

A trial is a set of parameters and a seed. ``fit_trial`` builds its model (one per fold
under cross-validation, seeded ``seed + fold``), trains each with ``trainer.fit`` and
scores it the way the search scores trials: the best epoch on the holdout, or the
pooled out-of-fold metric under cross-validation. Missing here on purpose: Optuna. The
search passes callbacks (report and prune) and records what it needs from the result.

>>> checkpoint_path(Path("runs/x"), 7, fold=1).name
'trial-7-fold-1.safetensors'
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch

from grutune.bundle import load_weights
from grutune.nn.model import SequenceModel, make_model
from grutune.nn.trainer import EpochLog, FitResult, fit, predict, seed_everything
from grutune.search_space import train_config
from grutune.tasks import Prepared, Task
from grutune.tuning.workers import default_workers


def build_model(task: Task, params: dict, state: dict, seed: int,
                prepared: Prepared | None = None) -> SequenceModel:
    """The trial's model, initialized from its seed and, given ``prepared``, from what the
    task fitted for models to start from (``Task.initialize``: a text task's word vectors).
    A model whose weights are loaded next needs no ``prepared``."""
    seed_everything(seed)
    model = make_model(task.model_config(params, state))
    if prepared is not None:
        task.initialize(model, params, prepared)
    return model


def checkpoint_path(run_dir: Path, number: int, fold: int | None = None) -> Path:
    """Where a trial's weights go (one file per fold under cross-validation)."""
    suffix = "" if fold is None else f"-fold-{fold}"
    return run_dir / "checkpoints" / f"trial-{number}{suffix}.safetensors"


def checkpoint_paths(run_dir: Path, number: int, folds: int) -> list[Path]:
    """A trial's checkpoint files, one per fold (a single file without folds)."""
    if folds <= 1:
        return [checkpoint_path(run_dir, number)]
    return [checkpoint_path(run_dir, number, i) for i in range(folds)]


@dataclass
class TrialFit:
    """What ``fit_trial`` gives back.

    ``stopped``: "" when every fold ran to its end (early stopping or max epochs),
    otherwise why it stopped early: the last fit's reason ("callback", "interrupted",
    "budget") or "fold" (``after_fold`` asked to stop). ``value``/``val_loss`` are set
    only when it ran to its end.
    """

    models: list[SequenceModel] = field(default_factory=list)
    results: list[FitResult] = field(default_factory=list)
    stopped: str = ""
    value: float | None = None
    val_loss: float | None = None

    @property
    def fold_values(self) -> list[float]:
        return [r.best_metric for r in self.results]


def fit_trial(task: Task, prepared: Prepared, params: dict, seed: int, max_epochs: int, *,
              on_epoch: Callable[[EpochLog], bool] | None = None,
              after_fold: Callable[[int, float], bool] | None = None,
              should_stop: Callable[[], str | None] | None = None,
              ends: tuple[str, ...] = ("callback", "interrupted", "budget"),
              built: Callable[[SequenceModel], None] | None = None) -> TrialFit:
    """Train the trial's model(s) and score them as the search does.

    ``on_epoch`` goes to every ``fit`` (True stops it: a pruner's verdict).
    ``after_fold(fold, pooled metric so far)`` is called after each fold under
    cross-validation; True stops the trial there. ``should_stop`` returns a reason
    ("interrupted", "budget") to stop a fit after its current epoch; a fit stopped for
    one of ``ends`` ends the trial unscored (the search scores a trial its time budget
    cut short: it leaves "budget" out). ``built(model)`` sees each model before it
    trains (the search records its size).
    """
    pairs = prepared.fold_pairs()
    cfg = train_config(params, max_epochs, seed, task.epoch_rows)
    scoring = task.scoring(prepared.state)
    out = TrialFit()
    outputs: list[torch.Tensor] = []
    for fold, (train, val) in enumerate(pairs):
        model = build_model(task, params, prepared.state, seed + fold, prepared)
        if built is not None:
            built(model)
        result = fit(model, train, val, cfg, scoring, on_epoch=on_epoch,
                     should_stop=should_stop)
        out.models.append(model)
        out.results.append(result)
        if result.stopped in ends:
            out.stopped = result.stopped
            return out
        if len(pairs) > 1:
            outputs.append(predict(model, val))
            if after_fold is not None:
                seen = torch.cat([v.y for _, v in pairs[: fold + 1]])
                if after_fold(fold, scoring.val_metric(torch.cat(outputs), seen)):
                    out.stopped = "fold"
                    return out
    if len(pairs) == 1:
        out.value, out.val_loss = float(result.best_metric), result.best_val_loss
    else:
        pooled, truth = torch.cat(outputs), torch.cat([v.y for _, v in pairs])
        out.value = float(scoring.val_metric(pooled, truth))
        out.val_loss = float(scoring.loss(pooled, truth))
    return out


def restore_models(task: Task, prepared: Prepared, params: dict, seed: int,
                   paths: list[Path], max_epochs: int,
                   on_missing: Callable[[Path], None] | None = None,
                   threads: int | None = None) -> list[SequenceModel]:
    """A trial's models (one per fold) with their checkpointed weights, in eval mode; a
    fold whose checkpoint is missing is retrained from ``params`` and ``seed`` exactly as
    ``fit_trial`` trained it (``on_missing(path)`` is told first), with ``threads``
    intra-op threads (the trial's own count: products and the recurrence split their
    work by it, so only the same count gives the same weights bit for bit)."""
    cfg = train_config(params, max_epochs, seed, task.epoch_rows)
    scoring = task.scoring(prepared.state)
    models = []
    for fold, (path, (train, val)) in enumerate(zip(paths, prepared.fold_pairs(), strict=True)):
        if path.is_file():
            model = build_model(task, params, prepared.state, seed + fold)
            load_weights(model, path)
        else:
            if on_missing is not None:
                on_missing(path)
            # the initialization too (an orthogonal one is a QR decomposition)
            with torch_threads(threads):
                model = build_model(task, params, prepared.state, seed + fold, prepared)
                fit(model, train, val, cfg, scoring)
        models.append(model.eval())
    return models


@contextlib.contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """Run the block with ``count`` intra-op threads (None: as they are). A count above
    this machine's cores is kept as it is: oversubscribed threads would crawl, and a
    machine with other cores gives other weights in their last bits anyway."""
    now = torch.get_num_threads()
    if not count or count == now or count > default_workers():  # one worker per core
        yield
        return
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(now)

