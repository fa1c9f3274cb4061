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

from grutune.config import StudyConfig
from grutune.exceptions import Interrupted, SearchError, TrialFailure
from grutune.search_space import Space
from grutune.tasks import Prepared, Task
from grutune.tuning.objective import Objective
from grutune.tuning.population import PopulationObjective, population_round
from grutune.tuning.progress import Progress
from grutune.tuning.study import FINISHED, make_sampler, make_storage, storage_url
from grutune.tuning.workers import parent_alive, run_workers


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


def _stopper(flag: StopFlag, budget_s: float | None,
             alive: Callable[[], bool] = lambda: True) -> Callable[[], str | None]:
    deadline = time.monotonic() + budget_s if budget_s else None

    def should_stop() -> str | None:
        if flag.reason or not alive():
            return "interrupted"
        return "budget" if deadline and time.monotonic() > deadline else None

    return should_stop


def _run_trials(study: optuna.Study, objective: Objective | PopulationObjective,
                should_stop: Callable[[], str | None],
                trials: int | None, started: datetime.datetime, callbacks: tuple = (),
                population: int = 1, beat: Callable[[], None] | None = None) -> None:
    """Trials until ``should_stop`` gives a reason or the count is reached: one at a time,
    or ``population`` at a time trained together.

    The one loop of both the single-process search and every worker. A trial stopped by
    a signal raises ``Interrupted`` out of it. ``beat``: told before every trial (the
    host's record in a shared study, ``hosts.Host.beat``).
    """
    while should_stop() is None and (room := room_left(study, trials, started)):
        if beat is not None:
            beat()
        if population > 1 and room > 1:
            population_round(study, objective, min(population, room), callbacks)
        else:
            study.optimize(objective, n_trials=1, callbacks=list(callbacks),
                           catch=(TrialFailure,))


def search(task: Task, prepared: Prepared, study: optuna.Study, space: Space,
           cfg: StudyConfig, console: Console, run_dir: Path, done: int,
           started: datetime.datetime | None = None, origin: dict | None = None,
           beat: Callable[[], None] | None = None) -> bool:
    """Run trials until the count or the budget is reached; True if interrupted.

    ``started``: when this run's search began (its failed and running trials count
    against ``--trials`` from then on; default now). ``origin``: recorded on every trial
    (which host and run directory ran it). ``beat``: called between trials and epochs
    (the host's record in a shared study).
    """
    started = started or datetime.datetime.now()
    if cfg.workers > 1:
        return _search_parallel(task, prepared, study, space, cfg, console, run_dir, done,
                                started, origin, beat)
    with StopFlag(console) as flag, Progress(console, task.metric, cfg.trials, cfg.budget_s,
                                             done) as progress:
        should_stop = _stopper(flag, cfg.budget_s)
        objective = _objective(cfg)(task, prepared, space, cfg.max_epochs, cfg.seed,
                                    run_dir, progress, should_stop, keep=cfg.ensemble,
                                    origin=origin, tick=beat)
        try:
            _run_trials(study, objective, should_stop, cfg.trials, started,
                        (progress.trial_finished,), population=cfg.population, beat=beat)
        except Interrupted:
            return True
    return flag.reason is not None


def _worker(task: Task, prepared: Prepared, study: optuna.Study, space: Space,
            cfg: StudyConfig, run_dir: Path, parent: int,
            started: datetime.datetime, origin: dict | None = None) -> Callable[[int], int]:
    """The body of worker ``index`` (runs in a forked process): 0 done, 130 stopped."""

    def work(index: int) -> int:
        storage = make_storage(storage_url(run_dir, cfg.storage, cfg.workers),
                               cfg.heartbeat_s, cfg.grace_s)
        # each worker its own sampler stream, so concurrent trials differ
        sampler = make_sampler(cfg.sampler, (cfg.seed + 7919 * index) % 2**32, space)
        mine = optuna.load_study(study_name=study.study_name, storage=storage,
                                 sampler=sampler, pruner=study.pruner)
        with StopFlag(Console(quiet=True), signals=(signal.SIGTERM,)) as flag:
            should_stop = _stopper(flag, cfg.budget_s, lambda: parent_alive(parent))
            objective = _objective(cfg)(task, prepared, space, cfg.max_epochs, cfg.seed,
                                        run_dir, None, should_stop, keep=cfg.ensemble,
                                        origin=origin)
            try:
                _run_trials(mine, objective, should_stop, cfg.trials, started,
                            population=cfg.population)
            except (Interrupted, KeyboardInterrupt):
                return 130
        return 130 if flag.reason else 0

    return work


def _objective(cfg: StudyConfig) -> type[Objective]:
    """One trial at a time, or ``--population`` trials trained together."""
    return PopulationObjective if cfg.population > 1 else Objective


def room_left(study: optuna.Study, trials: int | None, started: datetime.datetime) -> int:
    """How many more trials fit the count ``--trials`` (a large number without one).

    Finished trials count, and so do this run's running and failed ones: checked before
    each trial (not after, as ``MaxTrialsCallback`` does), N workers do not finish N - 1
    trials too many, and a run whose trials keep failing ends after ``trials`` attempts.
    Trials an earlier run left RUNNING or failed do not count, nor does a failed trial
    that was queued again (a killed worker's: its retry counts once it runs, so the
    retry is run even when the count was reached while the killed trial still ran).
    """
    if trials is None:
        return 2**31
    attempted = (optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.FAIL)
    every = study.get_trials(deepcopy=False)
    retried = {n for t in every for n in t.system_attrs.get("retry_history", ())}
    taken = sum(1 for t in every
                if t.state in FINISHED or (t.state in attempted and t.datetime_start
                                           and t.datetime_start >= started
                                           and t.number not in retried))
    return max(trials - taken, 0)


def _search_parallel(task: Task, prepared: Prepared, study: optuna.Study, space: Space,
                     cfg: StudyConfig, console: Console, run_dir: Path, done: int,
                     started: datetime.datetime, origin: dict | None = None,
                     beat: Callable[[], None] | None = None) -> bool:
    """``cfg.workers`` forked workers on the study; the parent shows their progress (and
    beats for the host: ``beat``)."""
    shown: set[int] = set()
    work = _worker(task, prepared, study, space, cfg, run_dir, os.getpid(), started, origin)
    with Progress(console, task.metric, cfg.trials, cfg.budget_s, done) as progress:
        def poll() -> None:
            if beat is not None:
                beat()
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
        raise SearchError(f"{len(failed)} of {cfg.workers} workers exited with an error "
                           f"(exit codes {failed}); see the messages above. Finished trials "
                           "are kept: run the same command to continue")
    return any(c == 130 for c in codes)
