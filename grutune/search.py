"""The search loop: trials until the count or the budget is reached, in one process or
in several forked workers (``--workers``); Ctrl-C stops cleanly either way.

>>> callable(search)
True
"""

from __future__ import annotations

import datetime
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import optuna
from rich.console import Console

from .config import StudyConfig
from .exceptions import GrutuneError, Interrupted, TrialFailure
from .objective import Objective
from .progress import Progress
from .search_space import Space
from .study import make_sampler, make_storage, storage_url
from .tasks import Prepared, Task
from .workers import parent_alive, run_workers

FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


class StopFlag:
    """First Ctrl-C/SIGTERM: stop after the current epoch. Second: stop now."""

    def __init__(self, console: Console, signals: tuple = (signal.SIGINT, signal.SIGTERM)):
        self.console = console
        self.signals = signals
        self.reason: str | None = None
        self._previous: dict = {}

    def __enter__(self) -> StopFlag:
        if threading.current_thread() is threading.main_thread():
            for sig in self.signals:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, frame: object) -> None:
        if self.reason is not None:
            raise KeyboardInterrupt
        self.reason = "interrupted"
        self.console.print("[yellow]stopping after this epoch (press Ctrl-C again to stop "
                           "now); the study stays resumable[/yellow]")


def _callbacks(cfg: StudyConfig) -> list:
    if cfg.trials is None:
        return []
    return [optuna.study.MaxTrialsCallback(cfg.trials, states=FINISHED)]


def _stopper(flag: StopFlag, budget_s: float | None,
             alive: Callable[[], bool] = lambda: True) -> Callable[[], str | None]:
    deadline = time.monotonic() + budget_s if budget_s else None

    def should_stop() -> str | None:
        if flag.reason or not alive():
            return "interrupted"
        return "budget" if deadline and time.monotonic() > deadline else None

    return should_stop


def search(task: Task, prepared: Prepared, study: optuna.Study, space: Space,
           cfg: StudyConfig, console: Console, run_dir: Path, remaining: int | None,
           done: int) -> bool:
    """Run trials until the count or the budget is reached; True if interrupted."""
    if cfg.workers > 1:
        return _search_parallel(task, prepared, study, space, cfg, console, run_dir, done)
    with StopFlag(console) as flag, Progress(console, task.metric, cfg.trials, cfg.budget_s,
                                             done) as progress:
        objective = Objective(task, prepared, space, cfg.max_epochs, cfg.seed, run_dir,
                              progress, _stopper(flag, cfg.budget_s), keep=cfg.ensemble)
        try:
            study.optimize(objective, n_trials=remaining, timeout=cfg.budget_s,
                           callbacks=[progress.trial_finished, *_callbacks(cfg)],
                           catch=(TrialFailure,))
        except Interrupted:
            return True
    return flag.reason is not None


def _worker(task: Task, prepared: Prepared, study: optuna.Study, space: Space,
            cfg: StudyConfig, run_dir: Path, parent: int) -> Callable[[int], int]:
    """The body of worker ``index`` (runs in a forked process): 0 done, 130 stopped."""

    def work(index: int) -> int:
        storage = make_storage(storage_url(run_dir, cfg.storage, cfg.workers))
        # each worker its own sampler stream, so concurrent trials differ
        sampler = make_sampler(cfg.sampler, cfg.seed + 7919 * index, space)
        mine = optuna.load_study(study_name=study.study_name, storage=storage,
                                 sampler=sampler, pruner=study.pruner)
        with StopFlag(Console(quiet=True), signals=(signal.SIGTERM,)) as flag:
            objective = Objective(task, prepared, space, cfg.max_epochs, cfg.seed, run_dir,
                                  None, _stopper(flag, cfg.budget_s,
                                                 lambda: parent_alive(parent)),
                                  keep=cfg.ensemble)
            deadline = time.monotonic() + cfg.budget_s if cfg.budget_s else None
            try:
                while not flag.reason and _room(mine, cfg.trials, started) and (
                        deadline is None or time.monotonic() < deadline):
                    mine.optimize(objective, n_trials=1, catch=(TrialFailure,))
            except (Interrupted, KeyboardInterrupt):
                return 130
        return 130 if flag.reason else 0

    started = datetime.datetime.now()
    return work


def _room(study: optuna.Study, trials: int | None, started: datetime.datetime) -> bool:
    """Whether another trial fits the count: finished ones plus those running now.

    Checked before each trial (not after, as ``MaxTrialsCallback`` does), so N workers
    do not finish N - 1 trials too many. Trials left RUNNING by a killed earlier run
    (started before this one) do not count.
    """
    if trials is None:
        return True
    taken = sum(1 for t in study.get_trials(deepcopy=False)
                if t.state in FINISHED or (t.state == optuna.trial.TrialState.RUNNING
                                           and t.datetime_start and t.datetime_start >= started))
    return taken < trials


def _search_parallel(task: Task, prepared: Prepared, study: optuna.Study, space: Space,
                     cfg: StudyConfig, console: Console, run_dir: Path, done: int) -> bool:
    """``cfg.workers`` forked workers on the study; the parent shows their progress."""
    shown: set[int] = set()
    work = _worker(task, prepared, study, space, cfg, run_dir, os.getpid())
    with Progress(console, task.metric, cfg.trials, cfg.budget_s, done) as progress:
        def poll() -> None:
            trials = study.get_trials(deepcopy=False)
            for t in trials:
                if t.state.is_finished() and t.number not in shown:
                    shown.add(t.number)
                    progress.trial_finished(study, t)
            running = [t.number for t in trials
                       if t.state == optuna.trial.TrialState.RUNNING]
            progress.running(running, cfg.workers)

        for t in study.get_trials(deepcopy=False):  # finished before this run: not shown
            if t.state.is_finished():
                shown.add(t.number)
        def notify(count: int) -> None:
            if count == 1:
                console.print("[yellow]stopping every worker after its current epoch (press "
                              "Ctrl-C again to stop now); the study stays resumable[/yellow]")

        codes = run_workers(cfg.workers, work, poll, notify=notify)
    failed = [c for c in codes if c not in (0, 130)]
    if failed:
        raise GrutuneError(f"{len(failed)} of {cfg.workers} workers exited with an error "
                           f"(exit codes {failed}); see the messages above. Finished trials "
                           "are kept: run the same command to continue")
    return any(c == 130 for c in codes)
