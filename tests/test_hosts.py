"""Several hosts on one study (``tuning/hosts.py``): one problem per study, checked
before anything trains; exactly one finalizer; searching without finalizing; a
retrained trial equal to its checkpoint. Hosts here are run directories sharing one
SQLite or journal file (fast); tests/test_storages.py runs real processes on
PostgreSQL."""

from __future__ import annotations

import datetime
import json
import shutil
import threading
import time

import optuna
import pytest
import torch
from rich.console import Console

from grutune import compat
from grutune.cli import app
from grutune.config import DataConfig
from grutune.search_space import load_space
from grutune.tasks import get_task
from grutune.tuning.fitting import checkpoint_paths, fit_trial, restore_models
from grutune.tuning.hosts import (
    HOST,
    IDENTITY,
    claim_finalization,
    differences,
    finished,
    origin_of,
    wait_for_hosts,
)
from grutune.tuning.search import room_left
from grutune.tuning.study import make_storage, retry_failed

from .conftest import make_texts

QUICK = ["--trials", "2", "--max-epochs", "1", "--folds", "1", "--repeats", "1",
         "--no-baseline", "--workers", "1", "--study", "s"]


@pytest.fixture
def shared(tmp_path):
    """A data file, the same rows at another path (another host's copy), other rows,
    and a storage file the "hosts" share."""
    data = tmp_path / "data.csv"
    make_texts(20).to_csv(data, index=False)
    copy = tmp_path / "elsewhere" / "data.csv"
    copy.parent.mkdir()
    shutil.copy(data, copy)
    other = tmp_path / "other.csv"
    make_texts(20, seed=1).to_csv(other, index=False)
    return data, copy, other, f"sqlite:///{tmp_path}/shared.db"


def _host(runner, data, run_dir, url, *extra):
    return runner.invoke(app, ["tune", str(data), *QUICK, "--storage", url,
                               "--run-dir", str(run_dir), *extra])


def _study(url):
    return optuna.load_study(study_name="s", storage=make_storage(url))


def test_hosts_of_one_problem_share_a_study_and_one_finalizes(runner, shared, tmp_path):
    data, copy, other, url = shared
    first = _host(runner, data, tmp_path / "a", url)
    assert first.exit_code == 0, first.stderr
    assert (tmp_path / "a" / "model" / "bundle.json").is_file()
    identity = _study(url).user_attrs[IDENTITY]
    assert identity["seed"] == 0 and identity["task"] == "text"
    assert identity["data"]["rows"] == {"train": 42, "val": 9, "test": 9}
    # the same rows from another path: it joins; the study is finalized, so it does not
    joined = _host(runner, copy, tmp_path / "b", url)
    assert joined.exit_code == 0, joined.stderr
    assert "was finalized by" in joined.stdout and str((tmp_path / "a").resolve()) in \
        joined.stdout
    assert not (tmp_path / "b" / "model").exists()
    assert (tmp_path / "b" / "trials.csv").is_file()
    # the finalizer's own run directory resumes (same identity, and the claim is its own)
    again = _host(runner, data, tmp_path / "a", url)
    assert again.exit_code == 0, again.stderr
    assert "test rows" in again.stdout or "accuracy" in again.stdout
    assert len(_study(url).trials) == 2


@pytest.mark.parametrize("change, says", [
    (["--seed", "1"], "--seed 0 vs 1"),
    ("other", "the prepared data differs (another data file"),
    (["--sample", "45"], "--sample (default) vs 45"),
    (["--metric", "f1_macro"], "--metric accuracy vs f1_macro"),
], ids=["seed", "data-file", "sample", "metric"])
def test_a_host_with_another_problem_is_refused_before_training(runner, shared, tmp_path,
                                                                 change, says):
    data, _, other, url = shared
    assert _host(runner, data, tmp_path / "a", url, "--no-finalize").exit_code == 0
    before = [(t.number, t.state) for t in _study(url).trials]
    args = [] if change == "other" else change
    refused = _host(runner, other if change == "other" else data, tmp_path / "b", url, *args)
    assert refused.exit_code == 2
    line = refused.stderr.strip()
    assert line.count("\n") == 0 and line.startswith("error: --study s: the study in sqlite")
    assert "tunes another problem than this command" in line and says in line, line
    # before training: no trial was added, the new run directory was removed
    assert [(t.number, t.state) for t in _study(url).trials] == before
    assert not (tmp_path / "b").exists()


def test_a_resumed_run_directory_checks_its_own_study_too(runner, shared, tmp_path):
    """The run directory's own storage keeps an identity as well: a resume that would
    score trials another way (another metric) is refused, the same command resumes."""
    data, *_ = shared
    cmd = ["tune", str(data), *QUICK, "--run-dir", str(tmp_path / "r")]
    assert runner.invoke(app, cmd).exit_code == 0
    refused = runner.invoke(app, [*cmd, "--metric", "f1_macro"])
    assert refused.exit_code == 2 and "--metric accuracy vs f1_macro" in refused.stderr
    again = runner.invoke(app, cmd)
    assert again.exit_code == 0, again.stderr


def test_a_search_only_host_leaves_the_model_to_grutune_finalize(runner, shared, tmp_path):
    data, copy, _, url = shared
    worker = _host(runner, data, tmp_path / "w", url, "--no-finalize", "--json")
    assert worker.exit_code == 0, worker.stderr
    summary = json.loads(worker.stdout)
    assert summary["finalized"] is False and summary["best_params"]
    assert "searched only (--no-finalize)" in worker.stderr
    assert not (tmp_path / "w" / "model").exists()
    done = runner.invoke(app, ["finalize", str(copy), *QUICK, "--storage", url,
                               "--run-dir", str(tmp_path / "f"), "--json"])
    assert done.exit_code == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["finalized"] is True
    assert (tmp_path / "f" / "model" / "bundle.json").is_file()
    trials = _study(url).trials
    assert len(trials) == 2  # finalize searched nothing
    assert summary["best_trial"] in {t.number for t in trials}
    # the claim now names the finalizer; a later searching host says so and leaves
    late = _host(runner, data, tmp_path / "late", url)
    assert late.exit_code == 0 and "was finalized by" in late.stdout
    assert str((tmp_path / "f").resolve()) in late.stdout


def test_finalize_needs_an_existing_study(runner, shared, tmp_path):
    data, _, _, url = shared
    result = runner.invoke(app, ["finalize", str(data), *QUICK, "--storage", url,
                                 "--run-dir", str(tmp_path / "f")])
    assert result.exit_code == 2
    assert "--study s: no such study in this storage" in result.stderr
    assert not (tmp_path / "f").exists()


def test_differences_name_each_field():
    base = {"task": "text", "metric": "accuracy", "seed": 0, "folds": 1,
            "data": {"rows": {"train": 70, "val": 15, "test": 15}, "sha256": "a"},
            "preparation": {"sample": None, "max_len": None}, "space": {"lr": [1, 2]}}
    assert differences(base, base) == []
    other = {**base, "seed": 1, "data": {"rows": {"train": 14, "val": 3, "test": 3},
                                          "sha256": "b"},
             "preparation": {"sample": 20, "max_len": None}, "space": {"lr": [1, 3]}}
    assert differences(base, other) == [
        "the prepared data differs (another data file, --test file or preparation option?; "
        "train/val/test rows 70/15/15 vs 14/3/3)",
        "--sample (default) vs 20", "--seed 0 vs 1",
        "the search space (--space, --sampler grid) differs in lr"]


# --- the finalizer's election and wait ----------------------------------------------------

def test_exactly_one_claim_wins_and_a_resumed_winner_keeps_it(tmp_path):
    storage = make_storage(f"journal:{tmp_path}/j.log")
    study = optuna.create_study(study_name="s", storage=storage)
    a, b = origin_of(tmp_path / "a", "run-a"), origin_of(tmp_path / "b", "run-b")
    results = {}

    def claim(origin):
        mine = optuna.load_study(study_name="s", storage=make_storage(f"journal:{tmp_path}/j.log"))
        results[origin["run_id"]] = claim_finalization(mine, origin)

    threads = [threading.Thread(target=claim, args=(o,)) for o in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(c.won for c in results.values()) == [False, True]
    winner = next(k for k, c in results.items() if c.won)
    loser = results[next(k for k in results if k != winner)]
    assert loser.holder["run_id"] == winner
    assert claim_finalization(study, a if winner == "run-a" else b).won  # a resumed winner
    finished(study, a if winner == "run-a" else b)
    late = claim_finalization(study, origin_of(tmp_path / "c", "run-c"))
    assert not late.won and "was finalized by" in late.says("s")
    # the main study keeps its name among the storage's studies: reports find it
    assert optuna.study.get_all_study_names(storage)[0] == "s"


def test_the_finalizer_waits_for_a_beating_host_not_a_dead_one(tmp_path):
    study = optuna.create_study(study_name="s")
    me = origin_of(tmp_path / "me", "me")
    study.set_user_attr(HOST + "dead", {**origin_of(tmp_path / "d", "dead"),
                                        "state": "searching", "beat": time.time() - 3600})
    study.set_user_attr(HOST + "done", {**origin_of(tmp_path / "x", "done"),
                                        "state": "searched", "beat": time.time()})
    start = time.monotonic()
    wait_for_hosts(study, me, grace_s=5, console=Console(quiet=True), poll_s=0.05)
    assert time.monotonic() - start < 1  # neither blocks

    def search_then_stop():
        for _ in range(10):
            study.set_user_attr(HOST + "live", {**origin_of(tmp_path / "l", "live"),
                                                "state": "searching", "beat": time.time()})
            time.sleep(0.1)
        study.set_user_attr(HOST + "live", {**origin_of(tmp_path / "l", "live"),
                                            "state": "searched", "beat": time.time()})

    study.set_user_attr(HOST + "live", {**origin_of(tmp_path / "l", "live"),
                                        "state": "searching", "beat": time.time()})
    worker = threading.Thread(target=search_then_stop)
    worker.start()
    start = time.monotonic()
    wait_for_hosts(study, me, grace_s=5, console=Console(quiet=True), poll_s=0.05)
    worker.join()
    assert time.monotonic() - start >= 0.9


def test_the_finalizer_runs_what_the_study_still_has_room_for():
    study = optuna.create_study(study_name="s")
    ran = []

    def run_more():
        if len(ran) < 2:
            ran.append(1)
            return True
        return False

    wait_for_hosts(study, origin_of(".", "me"), grace_s=5, console=Console(quiet=True),
                   run_more=run_more, poll_s=0.05)
    assert len(ran) == 2


def test_a_failed_trial_queued_again_does_not_count_against_trials():
    """A killed host's trial (failed, queued again) takes no place in --trials: its
    retry does, once it runs, so the retry is run even after the count was reached."""
    study = optuna.create_study()
    started = datetime.datetime.now() - datetime.timedelta(seconds=1)
    killed = study.ask()
    assert room_left(study, 3, started) == 2  # running: counts
    failed = compat.fail_trial(study, study.trials[killed.number], "heartbeat stale")
    assert room_left(study, 3, started) == 2  # failed: counts while not queued again
    retry_failed(study, failed)
    assert room_left(study, 3, started) == 3
    study.tell(study.ask(), 0.5)  # the retry (WAITING) is asked first
    assert room_left(study, 3, started) == 2


# --- a trial retrained on another host equals its checkpoint ----------------------------

def test_a_retrained_trial_equals_the_trained_one_with_its_thread_count(tmp_path):
    """A final model built where a trial's checkpoint is missing builds and retrains it
    with the thread count it trained with (a trial records it): the same weights, bit
    for bit."""
    cfg = DataConfig(path=str(tmp_path / "t.csv"), task="text")
    make_texts(20).to_csv(cfg.path, index=False)
    task = get_task("text")
    space = load_space(task.default_space(task.space_context(cfg)), None)
    prepared = task.prepare(cfg, None, space)
    task.pretrain(prepared, space, 0)
    # an orthogonal initialization is a QR decomposition: threads count there too
    params = {**{p.name: p.default for p in space.params.values()}, "init": "orthogonal"}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        trained = fit_trial(task, prepared, params, 7, 2).models[0].eval()
    finally:
        torch.set_num_threads(threads)
    missing = checkpoint_paths(tmp_path, 0, 1)
    again = restore_models(task, prepared, params, 7, missing, 2, threads=1)[0]
    assert torch.get_num_threads() == threads  # put back
    for (name, a), (_, b) in zip(trained.state_dict().items(), again.state_dict().items(),
                                 strict=True):
        assert torch.equal(a, b), name
    if threads > 1:  # why the count is recorded: with this process's own, other last bits
        other = restore_models(task, prepared, params, 7, missing, 2)[0]
        assert not all(torch.equal(a, b) for a, b in zip(
            trained.state_dict().values(), other.state_dict().values(), strict=True))
