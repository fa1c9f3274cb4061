"""Distributed and killed studies on real storages: PostgreSQL 15 (a throwaway server),
SQLite and Optuna's journal file. Real processes, real SIGKILLs."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import pandas as pd
import pytest
from safetensors.numpy import load_file

from grutune.tuning.evaluate import top_trials
from grutune.tuning.study import FINISHED, make_storage, storage_url

from .conftest import make_texts
from .pg import pg_bin, postgres

pytestmark = pytest.mark.realdata
needs_postgres = pytest.mark.skipif(pg_bin() is None, reason="PostgreSQL not installed")

# storage mechanics: no seed repeats, folds or baseline (not what these tests test)
QUICK = ["--sample", "300", "--folds", "1", "--repeats", "1", "--no-baseline", "--no-refit",
         "--max-epochs", "2", "--budget", "10m"]
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}
FAIL, RUNNING = optuna.trial.TrialState.FAIL, optuna.trial.TrialState.RUNNING


def _tune(run_dir: Path, trials: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "grutune", "tune", *QUICK, "--trials", str(trials),
            "--run-dir", str(run_dir), *extra]


# --- issue 18: hosts with their own run directories, caches and HOMEs ---------------------

# the README's command line ("Many machines, killed runs") with a small study: one thread
# per host (three hosts share this machine's cores), no seed repeats, no refit (so the
# saved weights are the trials' own: a checkpoint or its retraining, which must agree),
# short heartbeats so a killed host's trial is retried within seconds
README = ["tune", "reviews.csv", "--text", "review", "--target", "sentiment", "--trials", "6",
          "--study", "reviews-v1"]
SMALL = ["--max-epochs", "3", "--folds", "1", "--repeats", "1", "--no-baseline", "--no-refit",
         "--workers", "1", "--heartbeat", "2", "--grace", "6", "--budget", "5m"]


def _kernels() -> list[Path]:
    """This machine's compiled GRU kernels (built here if need be): each host gets its
    own copy, as another machine has its own build, instead of 20 s of compiling."""
    from torch.utils.cpp_extension import get_default_build_root

    from grutune.nn.recurrence import cpu_kernel

    cpu_kernel()
    root = Path(os.environ.get("TORCH_EXTENSIONS_DIR") or get_default_build_root())
    return [p for p in root.rglob("grutune_gru_cpu_*") if p.is_dir()]


def _host_env(home: Path, kernels: list[Path]) -> dict:
    """A host's environment: its own HOME, cache and kernel build folder, one thread."""
    extensions = home / "torch_extensions"
    for kernel in kernels:
        shutil.copytree(kernel, extensions / kernel.name, dirs_exist_ok=True)
    return {**ENV, "HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache"),
            "TORCH_EXTENSIONS_DIR": str(extensions), "OMP_NUM_THREADS": "1"}


@contextlib.contextmanager
def _stopped_at_the_end() -> Iterator[dict[int, subprocess.Popen]]:
    """Processes (each the leader of its own session) killed, with their workers, when
    the block ends however it ends."""
    procs: dict[int, subprocess.Popen] = {}
    try:
        yield procs
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.communicate()


def _logged_trials(run_dir: Path) -> list[int]:
    """The trials a host ran to their end, from its own tune.log."""
    log = run_dir / "tune.log"
    text = log.read_text(encoding="utf-8") if log.exists() else ""
    return [int(n) for n in re.findall(r"INFO trial\s+(\d+)\s+(?:complete|pruned)", text)]


def _weights(run_dir: Path) -> dict:
    bundle = json.loads((run_dir / "model" / "bundle.json").read_text())
    return load_file(str(run_dir / "model" / bundle.get("weights_file", "model.safetensors")))


@needs_postgres
def test_three_hosts_search_one_study_and_exactly_one_finalizes(tmp_path):
    """Issue 18, done when 1 and 2: three hosts (processes with their own run directory,
    HOME and caches) start the README's command on one PostgreSQL study; one is killed
    mid-trial. Every trial runs once (the killed one is retried by another host), exactly
    one host finalizes, after every trial, and its model is the one ``grutune finalize``
    builds from the same trials on a fourth host with no checkpoints (bit for bit; a
    retraining with another process's thread count: tests/test_hosts.py). A host with
    another seed is refused before it trains."""
    make_texts(1000).rename(columns={"text": "review", "label": "sentiment"}).to_csv(
        tmp_path / "reviews.csv", index=False)
    kernels = _kernels()
    hosts = [tmp_path / f"host-{i}" for i in range(4)]
    envs = [_host_env(tmp_path / f"home-{i}", kernels) for i in range(4)]

    def command(i: int, *extra: str, verb: str = "tune") -> list[str]:
        return [sys.executable, "-m", "grutune", verb, *README[1:], "--storage", url, *SMALL,
                "--run-dir", str(hosts[i]), *extra]

    def start(i: int) -> subprocess.Popen:
        return subprocess.Popen(command(i), cwd=tmp_path, env=envs[i], text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True)

    def running(epoch: bool) -> dict[int, str]:
        """RUNNING trials (that reported an epoch) -> the run directory running them."""
        try:
            study = optuna.load_study(study_name="reviews-v1", storage=storage)
        except KeyError:
            return {}
        return {t.number: t.user_attrs.get("origin", {}).get("run_dir", "")
                for t in study.get_trials(deepcopy=False)
                if t.state == RUNNING and (t.intermediate_values or not epoch)}

    with postgres() as url, _stopped_at_the_end() as procs:
        storage = make_storage(url)  # the tables exist before the hosts race to make them
        victim, killed = str(hosts[2].resolve()), None
        procs[2] = start(2)
        deadline = time.monotonic() + 240
        # host 2 first, the others once it trains (so that it gets a trial); host 2 is
        # killed mid-trial: after its first epoch, with epochs to go
        while killed is None:
            assert procs[2].poll() is None, procs[2].communicate()[1]
            assert time.monotonic() < deadline, "host 2 was never caught mid-trial"
            if 0 not in procs and victim in running(epoch=False).values():
                procs.update({i: start(i) for i in (0, 1)})
            killed = next((n for n, where in running(epoch=True).items() if where == victim),
                          None)
            time.sleep(0.1)
        os.killpg(procs[2].pid, signal.SIGKILL)
        procs[2].communicate()
        if 0 not in procs:
            procs.update({i: start(i) for i in (0, 1)})
        outs = []
        for p in (procs[0], procs[1]):
            out, err = p.communicate(timeout=300)
            assert p.returncode == 0, err
            outs.append(out)
        study = optuna.load_study(study_name="reviews-v1", storage=storage)
        trials = study.get_trials()
        finished = [t for t in trials if t.state in FINISHED]
        # every trial exactly once: none left running or queued, at least the 6 asked
        # for finished, each in one host's log, and no configuration-and-seed twice
        assert {t.state for t in trials} <= {*FINISHED, FAIL}
        assert len(finished) >= 6
        logged = [n for h in hosts[:3] for n in _logged_trials(h)]
        assert sorted(logged) == sorted(t.number for t in finished)
        assert len({t.user_attrs["seed"] for t in finished}) == len(finished)
        # the killed host's trial failed and another host ran it again
        assert trials[killed].state == FAIL
        retries = [t for t in finished if killed in t.system_attrs.get("retry_history", [])]
        assert len(retries) == 1 and retries[0].params == trials[killed].params
        assert retries[0].user_attrs["origin"]["run_dir"] != victim
        # exactly one host finalized, after every trial; the other says who did
        made = [h for h in hosts[:3] if (h / "model" / "bundle.json").is_file()]
        assert len(made) == 1, outs
        finalizer = made[0]
        other = outs[1 - hosts.index(finalizer)]
        assert "finalizes study 'reviews-v1'" in other or "was finalized by" in other, other
        assert str(finalizer.resolve()) in other
        table = pd.read_csv(finalizer / "trials.csv")
        assert sorted(table["number"]) == [t.number for t in trials]
        metrics = json.loads((finalizer / "metrics.json").read_text())
        best = [t.number for t in top_trials(study, 3)]
        assert metrics["model"]["members"] == best
        # another seed: refused before it trains (exit 2, one line naming it)
        refused = subprocess.run(command(3, "--seed", "1"), cwd=tmp_path, env=envs[3],
                                 capture_output=True, text=True, timeout=300)
        assert refused.returncode == 2
        assert "tunes another problem" in refused.stderr and "--seed 0 vs 1" in refused.stderr
        assert len(optuna.load_study(study_name="reviews-v1", storage=storage).trials) == \
            len(trials)
        # the same trials finalized on a fourth host, which has no checkpoints
        again = subprocess.run(command(3, verb="finalize"), cwd=tmp_path, env=envs[3],
                               capture_output=True, text=True, timeout=300)
        assert again.returncode == 0, again.stderr
    second = json.loads((hosts[3] / "metrics.json").read_text())
    assert second["model"]["members"] == metrics["model"]["members"]
    assert second["accuracy"] == metrics["accuracy"]
    assert second["log_loss"] == pytest.approx(metrics["log_loss"], abs=1e-6)
    mine, theirs = _weights(finalizer), _weights(hosts[3])
    assert mine.keys() == theirs.keys()
    assert all((mine[k] == theirs[k]).all() for k in mine)


def _running_with_an_epoch(url: str, study_name: str) -> set[int]:
    """Numbers of RUNNING trials that reported an epoch, read without writing: SQLite
    read-only, a journal or PostgreSQL through Optuna once they exist."""
    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///"):])
        if not path.exists():
            return set()
        try:
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as con:
                rows = con.execute(
                    "select distinct t.number from trials t join trial_intermediate_values v "
                    "on t.trial_id = v.trial_id where t.state = 'RUNNING'").fetchall()
            return {r[0] for r in rows}
        except sqlite3.OperationalError:  # tables not created yet
            return set()
    if url.startswith("journal:") and not Path(url[len("journal:"):]).exists():
        return set()
    try:
        study = optuna.load_study(study_name=study_name, storage=make_storage(url))
    except KeyError:
        return set()
    return {t.number for t in study.get_trials(deepcopy=False)
            if t.state == RUNNING and t.intermediate_values}


def _kill_mid_trial(cmd: list[str], url: str, study_name: str, before: set[int]) -> set[int]:
    """Start ``cmd``, SIGKILL it (its whole process group) once a trial other than
    ``before`` has reported an epoch and is still running; the trials it killed."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=ENV, start_new_session=True)
    deadline = time.monotonic() + 300
    running: set[int] = set()
    try:
        while not (running := _running_with_an_epoch(url, study_name) - before):
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "no trial reached an epoch in time"
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return running


def test_killed_workers_trials_are_failed_and_retried(tmp_path):
    """Two SIGKILLs of a two-worker run (journal file) mid-trial, then a clean run: the
    study completes, no finished trial is lost, each killed trial is FAIL and was queued
    again (linked to it), the storage opens cleanly. (SQLite, one process: the killed-run
    test of test_end_to_end.py; PostgreSQL, through heartbeats: the three-hosts test.)"""
    run_dir = tmp_path / "run"
    extra = ["--workers", "2"]
    name = "bbc-news-sample300"
    url = storage_url(run_dir, None, 2)
    finished_before, killed_numbers = [], set()
    for _ in range(2):
        killed_numbers |= _kill_mid_trial(_tune(run_dir, 6, *extra), url, name, killed_numbers)
        study = optuna.load_study(study_name=name, storage=make_storage(url))
        finished_before = [t.number for t in study.get_trials(states=FINISHED)]
    result = subprocess.run(_tune(run_dir, 6, *extra), capture_output=True, text=True,
                            env=ENV, timeout=900)
    assert result.returncode == 0, result.stderr
    study = optuna.load_study(study_name=name, storage=make_storage(url))
    trials = study.get_trials()
    finished = [t.number for t in trials if t.state in FINISHED]
    assert len(finished) >= 6
    assert set(finished_before) <= set(finished)
    killed = [t for t in trials if t.state == FAIL]
    assert len(killed_numbers) >= 2
    assert killed_numbers <= {t.number for t in killed}
    assert not [t for t in trials if t.state == RUNNING]
    # Optuna's retry record: the original trial, and every failed attempt since
    retried = {n for t in trials for n in t.system_attrs.get("retry_history", [])}
    assert {t.number for t in killed} <= retried
    for t in trials:  # a retry runs the killed trial's parameters again
        if t.system_attrs.get("failed_trial") is not None and t.state in FINISHED:
            original = trials[t.system_attrs["failed_trial"]]
            assert {k: v for k, v in t.params.items() if k in original.params} == \
                original.params
    table = pd.read_csv(run_dir / "trials.csv")
    assert len(table) == len(trials)
