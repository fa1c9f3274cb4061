"""Distributed and killed studies on real storages: PostgreSQL 15 (a throwaway server),
SQLite and Optuna's journal file. Real processes, real SIGKILLs."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest

from grutune.tuning.study import FINISHED, make_storage, storage_url

from .pg import pg_bin, postgres

pytestmark = pytest.mark.realdata
needs_postgres = pytest.mark.skipif(pg_bin() is None, reason="PostgreSQL not installed")

# storage mechanics: no seed repeats, folds or baseline (not what these tests test)
QUICK = ["--sample", "300", "--folds", "1", "--repeats", "1", "--no-baseline", "--max-epochs",
         "2", "--budget", "10m"]
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}
FAIL, RUNNING = optuna.trial.TrialState.FAIL, optuna.trial.TrialState.RUNNING


def _tune(run_dir: Path, trials: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "grutune", "tune", *QUICK, "--trials", str(trials),
            "--run-dir", str(run_dir), *extra]


@needs_postgres
def test_three_workers_on_postgres_record_every_trial_once(tmp_path):
    with postgres() as url:
        procs = []
        for i in range(3):
            cmd = _tune(tmp_path / f"machine-{i}", 12, "--storage", url, "--study", "shared",
                        "--workers", "1")
            procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.PIPE, text=True, env=ENV))
        ends = []
        for p in procs:
            _, err = p.communicate(timeout=900)
            assert p.returncode == 0, err
            ends.append(time.monotonic())
        study = optuna.load_study(study_name="shared", storage=make_storage(url))
        trials = study.get_trials()
        numbers = [t.number for t in trials]
        assert len(numbers) == len(set(numbers))
        finished = [t for t in trials if t.state in FINISHED]
        # --trials counts attempts: a trial that failed (a NaN loss) takes its place
        assert len(finished) + len([t for t in trials if t.state == FAIL]) >= 12
        assert not [t for t in trials if t.state == RUNNING]
        # every trial ran in exactly one process: each carries its own seed, once
        seeds = [t.user_attrs["seed"] for t in finished]
        assert len(seeds) == len(set(seeds))
        # the process that finished last wrote trials.csv from the whole study
        last = tmp_path / f"machine-{ends.index(max(ends))}"
        table = pd.read_csv(last / "trials.csv")
        assert sorted(table["number"]) == sorted(numbers)
        assert table["value"].max() == pytest.approx(study.best_value)
        runs = {m: set(pd.read_csv(tmp_path / f"machine-{m}" / "trials.csv")["number"])
                for m in range(3)}
        assert all(r <= set(numbers) for r in runs.values())


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


@pytest.mark.parametrize("storage", ["sqlite", "journal", "postgres"])
def test_killed_workers_trials_are_failed_and_retried(tmp_path, storage):
    """Two SIGKILLs mid-trial, then a clean run: the study completes, no finished trial is
    lost, each killed trial is FAIL and was queued again (linked to it), the storage
    opens cleanly."""
    if storage == "postgres" and pg_bin() is None:
        pytest.skip("PostgreSQL not installed")
    with postgres() if storage == "postgres" else _nothing() as pg_url:
        run_dir = tmp_path / "run"
        extra = {"sqlite": ["--workers", "1"], "journal": ["--workers", "2"],
                 "postgres": ["--workers", "1", "--storage", pg_url or "", "--study", "k",
                              "--heartbeat", "1", "--grace", "3"]}[storage]
        name = "k" if storage == "postgres" else "bbc-news-sample300"
        url = pg_url or storage_url(run_dir, None, 2 if storage == "journal" else 1)
        finished_before, killed_numbers = [], set()
        for _ in range(2):
            killed_numbers |= _kill_mid_trial(_tune(run_dir, 8, *extra), url, name,
                                              killed_numbers)
            study = optuna.load_study(study_name=name, storage=make_storage(url))
            finished_before = [t.number for t in study.get_trials(states=FINISHED)]
        if storage == "postgres":
            time.sleep(4)  # past the grace period: the next worker fails the silent trials
        result = subprocess.run(_tune(run_dir, 8, *extra), capture_output=True, text=True,
                                env=ENV, timeout=900)
        assert result.returncode == 0, result.stderr
        study = optuna.load_study(study_name=name, storage=make_storage(url))
        trials = study.get_trials()
        finished = [t.number for t in trials if t.state in FINISHED]
        assert len(finished) >= 8
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


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None
