"""Shared fixtures: small synthetic text tables and a CLI runner.

The synthetic data is only for fast unit tests of mechanics; every accuracy claim is
made on real data (tests marked ``realdata``/``slow`` and the closing notes).
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
from typer.testing import CliRunner

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Under `pytest -n auto` (CI) there is one test process per core: each keeps to one
    # intra-op thread, and so do the grutune processes its tests start (OMP_NUM_THREADS
    # is inherited). With torch's default of a thread per core, two processes on two
    # cores oversubscribed them and ran slower than one process (72% in 22 minutes,
    # against 26m15s for the whole serial suite); with one thread each: 15m40s.
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ["MKL_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)


@pytest.hookimpl(optionalhook=True)  # without pytest-xdist installed, nothing calls it
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto`: one test process per core this process may run on (grutune's own
    count). pytest-xdist would ask psutil first when it is installed, which counts the
    host's physical cores, not a container's or a CPU set's."""
    from grutune.tuning.workers import default_workers

    return default_workers()


WORDS = {
    "sport": ["match", "goal", "team", "coach", "league", "score", "player"],
    "tech": ["phone", "software", "chip", "internet", "computer", "data", "robot"],
    "food": ["pizza", "bread", "cheese", "soup", "salad", "recipe", "bake"],
}
FILLER = ["the", "a", "today", "new", "big", "small", "week", "people", "said", "very"]


def make_texts(n_per_class: int = 30, seed: int = 0) -> pd.DataFrame:
    """Documents of 5-25 words; each class has its own topic words among filler."""
    rng = random.Random(seed)
    rows = []
    for label, words in WORDS.items():
        for _ in range(n_per_class):
            length = rng.randint(5, 25)
            doc = [rng.choice(words) if rng.random() < 0.4 else rng.choice(FILLER)
                   for _ in range(length)]
            rows.append({"text": " ".join(doc) + f" {rng.randint(0, 10**6)}", "label": label})
    rng.shuffle(rows)
    return pd.DataFrame(rows)


def tiny_text_run(root: Path, options: list[str]) -> Path:
    """A text run on ``make_texts(20)`` under ``root``, tuned by the CLI with ``options``
    (a trial or so: for tests of what is done with a run); its run directory."""
    from grutune.cli import app

    make_texts(20).to_csv(root / "d.csv", index=False)
    result = CliRunner().invoke(app, ["tune", str(root / "d.csv"), "--run-dir",
                                      str(root / "run"), *options])
    assert result.exit_code == 0, result.stderr
    return root / "run"


@pytest.fixture
def texts_csv(tmp_path: Path) -> Path:
    path = tmp_path / "texts.csv"
    make_texts().to_csv(path, index=False)
    return path


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture(autouse=True)
def _no_storage_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A GRUTUNE_STORAGE exported in the developer's shell would send every test's
    study to that database; tests that want it set it themselves."""
    monkeypatch.delenv("GRUTUNE_STORAGE", raising=False)


def finished_trials(run_dir: Path) -> int:
    """Complete or pruned trials in a run directory's own study (SQLite or journal file)."""
    if (run_dir / "study.db").exists():
        # read-only SQL: an RDBStorage here would create the schema while the run does
        with sqlite3.connect(f"file:{run_dir / 'study.db'}?mode=ro", uri=True) as con:
            try:
                return con.execute("select count(*) from trials where state in "
                                   "('COMPLETE', 'PRUNED')").fetchone()[0]
            except sqlite3.OperationalError:  # no tables yet
                return 0
    if not (run_dir / "study.journal").exists():
        return 0
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(run_dir / "study.journal")))
    try:
        names = optuna.study.get_all_study_names(storage)
        if not names:
            return 0
        study = optuna.load_study(study_name=names[0], storage=storage)
        return len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,
                                            optuna.trial.TrialState.PRUNED)))
    except Exception:  # a storage being created right now
        return 0


def interrupt_after_first_trial(cmd: list[str], run_dir: Path) -> tuple[int, str, pd.DataFrame]:
    """Run ``cmd``, send SIGINT once a trial has finished; (exit code, stderr, trials.csv)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                            text=True)
    deadline = time.time() + 120
    while finished_trials(run_dir) < 1 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    time.sleep(0.4)  # into the next trial
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=300)
    return proc.returncode, stderr, pd.read_csv(run_dir / "trials.csv")
