"""Every private Optuna and torch call grutune makes, in one place.

Each fills a gap in the public API; a new Optuna or torch release that moves one breaks
this module alone, and ``tests/test_compat.py`` shows which. The dependency ranges in
``pyproject.toml`` stop at the next major version for the same reason.

- Optuna: a study's storage and a trial's storage id (to fail a trial that a killed run
  left RUNNING, which ``study.tell`` refuses for a trial this process did not ask), and
  the heartbeat thread ``study.optimize`` keeps per trial (grutune's population rounds
  ask and tell trials themselves, so they run the heartbeats themselves).
- torch: the fused AdamW kernel for one population member's slice of stacked weights
  (``torch.optim.AdamW`` wants whole leaf tensors), the in-place multi-tensor scale
  of decoupled weight decay (one kernel instead of a Python loop), and the folder torch
  builds a C++ extension in (where its build lock lives).

>>> import torch
>>> weights = [torch.ones(2), torch.ones(3)]
>>> scale_(weights, 0.5)
>>> [w.tolist() for w in weights]
[[0.5, 0.5], [0.5, 0.5, 0.5]]
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import optuna
import torch
from optuna.storages import BaseStorage
from optuna.storages._heartbeat import get_heartbeat_thread, is_heartbeat_enabled
from torch import Tensor


def storage(study: optuna.Study) -> BaseStorage:
    """The study's storage object."""
    return study._storage


def fail_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial,
               reason: str) -> optuna.trial.FrozenTrial:
    """Mark a trial FAIL with ``fail_reason`` (any trial of the study, even one another
    process asked); the failed trial as stored now."""
    store, trial_id = storage(study), trial._trial_id
    store.set_trial_user_attr(trial_id, "fail_reason", reason)
    store.set_trial_state_values(trial_id, optuna.trial.TrialState.FAIL)
    return store.get_trial(trial_id)


def heartbeat_enabled(study: optuna.Study) -> bool:
    """Does the study's storage keep heartbeats (``heartbeat_interval`` set)?"""
    return is_heartbeat_enabled(storage(study))


@contextlib.contextmanager
def heartbeat(study: optuna.Study, trial: optuna.Trial) -> Iterator[None]:
    """Beat the trial's heartbeat while the block runs, as ``study.optimize`` does."""
    with get_heartbeat_thread(trial._trial_id, storage(study)):
        yield


def fused_adamw_(params: list[Tensor], grads: list[Tensor], exp_avgs: list[Tensor],
                 exp_avg_sqs: list[Tensor], steps: list[Tensor], *, lr: float, beta1: float,
                 beta2: float, weight_decay: float, eps: float) -> None:
    """One AdamW step (decoupled weight decay) in place, on any tensors (views included);
    ``steps``: each tensor's step count after this step, as 0-d tensors."""
    torch._fused_adamw_(params, grads, exp_avgs, exp_avg_sqs, [], steps, lr=lr, beta1=beta1,
                        beta2=beta2, weight_decay=weight_decay, eps=eps, amsgrad=False,
                        maximize=False)


def scale_(tensors: list[Tensor], factor: float) -> None:
    """Multiply every tensor by ``factor`` in place."""
    torch._foreach_mul_(tensors, factor)


def extension_build_directory(name: str) -> Path:
    """The folder torch's ``cpp_extension.load`` builds the extension ``name`` in
    (created if need be): TORCH_EXTENSIONS_DIR, or its default root per Python version
    and accelerator."""
    from torch.utils.cpp_extension import _get_build_directory

    return Path(_get_build_directory(name, verbose=False))
