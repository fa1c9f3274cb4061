"""Parallel trial workers (--workers): one study, every trial once, clean stops, no orphans."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from grutune.tuning.study import storage_url

from .conftest import finished_trials, interrupt_after_first_trial, make_texts

ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def _cmd(data: Path, run_dir: Path, trials: int, epochs: int) -> list[str]:
    return [sys.executable, "-m", "grutune", "tune", str(data), "--workers", "2", "--trials",
            str(trials), "--max-epochs", str(epochs), "--run-dir", str(run_dir), "--budget",
            "5m", "--folds", "1", "--repeats", "1", "--no-baseline"]


def _wait_for(run_dir: Path, trials: int, proc: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.time() + seconds
    while finished_trials(run_dir) < trials and time.time() < deadline and proc.poll() is None:
        time.sleep(0.3)


def test_two_workers_share_one_study(tmp_path):
    data = tmp_path / "texts.csv"
    make_texts(40).to_csv(data, index=False)
    run_dir = tmp_path / "par"
    result = subprocess.run(_cmd(data, run_dir, 6, 2) + ["--study", "par"], capture_output=True,
                            text=True, env=ENV, timeout=600)
    assert result.returncode == 0, result.stderr
    assert storage_url(run_dir, None) == f"journal:{(run_dir / 'study.journal').as_posix()}"
    trials = pd.read_csv(run_dir / "trials.csv")
    assert trials["number"].is_unique
    finished = trials[trials["state"].isin(["COMPLETE", "PRUNED"])]
    # workers check the count before each trial; only two checks at the same instant
    # could both start the last one
    assert 6 <= len(finished) <= 7
    assert finished_trials(run_dir) == len(finished)
    best = trials[trials["state"] == "COMPLETE"].sort_values("value", ascending=False).iloc[0]
    assert f"trial {best['number']:>3}" in result.stderr  # the parent showed every trial


def test_ctrl_c_stops_every_worker_and_the_study_resumes(tmp_path):
    data = tmp_path / "texts.csv"
    make_texts(150).to_csv(data, index=False)
    run_dir = tmp_path / "sigint"
    code, stderr, trials = interrupt_after_first_trial(
        _cmd(data, run_dir, 12, 40) + ["--study", "sigint"], run_dir)
    assert code == 130, stderr
    assert "stopping every worker after its current epoch" in stderr
    stopped = trials[trials["fail_reason"].fillna("").str.startswith("interrupted after epoch")]
    assert 1 <= len(stopped) <= 2 and set(stopped["state"]) == {"FAIL"}
    assert not (trials["state"] == "RUNNING").any()  # every worker recorded its trial
    done = finished_trials(run_dir)
    result = subprocess.run(_cmd(data, run_dir, done + 2, 2) + ["--study", "sigint"],
                            capture_output=True, text=True, env=ENV, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "Resuming: " in result.stderr and finished_trials(run_dir) >= done + 2


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "State:\tZ" not in status.read_text()


def test_killed_parent_takes_its_workers_along(tmp_path):
    data = tmp_path / "texts.csv"
    make_texts(150).to_csv(data, index=False)
    run_dir = tmp_path / "kill"
    proc = subprocess.Popen(_cmd(data, run_dir, 50, 40) + ["--study", "kill"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    _wait_for(run_dir, 1, proc)
    workers = _children(proc.pid)
    assert len(workers) >= 2
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 10
    while any(_alive(w) for w in workers) and time.time() < deadline:
        time.sleep(0.2)
    assert not any(_alive(w) for w in workers)
