"""The private Optuna and torch calls of ``grutune.compat`` still do what grutune needs.

When an Optuna or torch release moves one of them, these tests name it.
"""

from __future__ import annotations

import time

import optuna
import pytest
import torch

from grutune import compat


def test_fail_trial_fails_a_running_trial_this_process_did_not_tell():
    study = optuna.create_study()
    trial = study.ask()
    frozen = study.get_trials(deepcopy=False)[0]
    failed = compat.fail_trial(study, frozen, "left running")
    assert failed.state == optuna.trial.TrialState.FAIL
    assert failed.user_attrs["fail_reason"] == "left running"
    assert study.get_trials()[0].state == optuna.trial.TrialState.FAIL
    assert failed.number == trial.number


def test_heartbeat_enabled_only_where_the_storage_keeps_them(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    beating = optuna.create_study(storage=optuna.storages.RDBStorage(
        url, heartbeat_interval=60, grace_period=120))
    assert compat.heartbeat_enabled(beating)
    assert not compat.heartbeat_enabled(optuna.create_study())


def test_heartbeat_is_recorded_and_a_silent_trial_goes_stale(tmp_path):
    """A trial whose heartbeat stopped longer than the grace period ago is failed by
    ``fail_stale_trials``: proof that ``compat.heartbeat`` wrote its beats."""
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'study.db'}",
                                         heartbeat_interval=1, grace_period=1)
    study = optuna.create_study(storage=storage)
    trial = study.ask()
    with compat.heartbeat(study, trial):
        time.sleep(0.2)
    time.sleep(2.2)
    optuna.storages.fail_stale_trials(study)
    assert study.get_trials()[0].state == optuna.trial.TrialState.FAIL


@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_fused_adamw_on_views_matches_torch_adamw(weight_decay):
    """One step on a view of a stacked weight equals ``torch.optim.AdamW`` on a copy."""
    torch.manual_seed(0)
    stacked = torch.randn(2, 4, 3)
    before = stacked.clone()
    grad = torch.randn(2, 4, 3)
    reference = stacked[1].clone().requires_grad_()
    reference.grad = grad[1].clone()
    torch.optim.AdamW([reference], lr=0.01, betas=(0.9, 0.999), eps=1e-8,
                      weight_decay=weight_decay).step()
    exp_avg, exp_avg_sq = torch.zeros(2, 4, 3), torch.zeros(2, 4, 3)
    compat.fused_adamw_([stacked[1]], [grad[1]], [exp_avg[1]], [exp_avg_sq[1]], [torch.ones(())],
                        lr=0.01, beta1=0.9, beta2=0.999, weight_decay=weight_decay, eps=1e-8)
    assert torch.allclose(stacked[1], reference.detach(), atol=1e-6)
    assert not torch.equal(stacked[1], before[1])  # it moved
    assert torch.equal(stacked[0], before[0])  # the other member did not
    assert torch.count_nonzero(exp_avg[0]) == 0  # the other member's state is untouched


def test_scale_multiplies_in_place():
    tensors = [torch.full((2,), 3.0), torch.full((1, 2), -2.0)]
    compat.scale_(tensors, 0.5)
    assert tensors[0].tolist() == [1.5, 1.5] and tensors[1].tolist() == [[-1.0, -1.0]]


def test_extension_build_directory_is_where_torch_builds(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    folder = compat.extension_build_directory("some_extension")
    assert folder == tmp_path / "some_extension" and folder.is_dir()
