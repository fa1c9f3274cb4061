"""Live progress of a search: trial n/N, epoch, validation metric, best so far, time.

One status line is redrawn in place (rich ``Live``) and one line is printed per finished
trial, so the log reads well in a terminal and in a file; each trial's line is also
logged (the run's tune.log).
"""

from __future__ import annotations

import logging
import time

import optuna
from rich.console import Console
from rich.live import Live
from rich.text import Text

from grutune.nn.trainer import EpochLog
from grutune.render import format_seconds
from grutune.tuning.study import trial_score

log = logging.getLogger("grutune")


class Progress:
    """Receives events from the objective and shows them."""

    def __init__(self, console: Console, metric: str, trials: int | None,
                 budget_s: float | None, done_before: int):
        self.console = console
        self.metric = metric
        self.trials = trials
        self.budget_s = budget_s
        self.done_before = done_before  # finished trials found in a resumed study
        self.start = time.monotonic()
        self.trial: int | None = None
        self.epoch_text = ""
        self.best: tuple[float, int] | None = None
        self.live = Live(Text(""), console=console, refresh_per_second=4, transient=True)

    def __enter__(self) -> Progress:
        self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.live.__exit__(*exc)

    def running(self, numbers: list[int], workers: int) -> None:
        """Parallel workers: which trials are running now."""
        self.trial = None
        self.epoch_text = (f"{workers} workers · running trials "
                           f"{', '.join(map(str, numbers)) or '-'}")
        self._refresh()

    def trial_started(self, number: int) -> None:
        self.trial, self.epoch_text = number, "starting"
        self._refresh()

    def epoch(self, log: EpochLog, max_epochs: int) -> None:
        self.epoch_text = (f"epoch {log.epoch}/{max_epochs} · val {self.metric} "
                           f"{log.val_metric:.4f}")
        self._refresh()

    def trial_finished(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        """Optuna callback: print the trial's line and update the best."""
        state = trial.state.name.lower()
        score = trial_score(trial)
        value = "-" if score is None else (
            f"({score:.4f})" if trial.state == optuna.trial.TrialState.PRUNED else f"{score:.4f}")
        epochs = epochs_text(trial.user_attrs)
        seconds = trial.user_attrs.get("seconds")
        took = format_seconds(seconds) if seconds is not None else "-"
        reason = trial.user_attrs.get("fail_reason", "")
        try:
            best = study.best_trial
            self.best = (best.value, best.number)
        except ValueError:
            pass
        mark = " *" if self.best and self.best[1] == trial.number else ""
        line = (f"trial {trial.number:>3}  {state:<8} {self.metric} {value:<9} "
                f"epochs {epochs:<3} {took:>6}{mark} {reason}".rstrip())
        self.console.print(line, markup=False)
        log.info("%s", line, extra={"shown": True})  # tune.log: one line per trial
        self._refresh()

    def _refresh(self) -> None:
        elapsed = time.monotonic() - self.start
        parts = []
        if self.trial is not None:
            total = f"/{self.trials}" if self.trials else ""
            parts.append(f"trial {self.trial + 1}{total}")
        if self.epoch_text:
            parts.append(self.epoch_text)
        if self.best:
            parts.append(f"best {self.best[0]:.4f} (trial {self.best[1]})")
        parts.append(f"{format_seconds(elapsed)} elapsed")
        if self.budget_s:
            parts.append(f"{format_seconds(max(self.budget_s - elapsed, 0))} left")
        self.live.update(Text(" · ".join(parts), style="cyan"))


def epochs_text(attrs: dict) -> str:
    """A trial's epochs for its line: the count, or per fold under cross-validation
    (the trial's ``epochs`` attribute sums its folds).

    >>> epochs_text({"epochs": 7}), epochs_text({"epochs": 5, "fold_epochs": [1] * 5})
    ('7', '1/fold')
    >>> epochs_text({"epochs": 9, "fold_epochs": [4, 5]})
    '4-5/fold'
    """
    folds = attrs.get("fold_epochs")
    if not folds:
        return str(attrs.get("epochs", "?"))
    low, high = min(folds), max(folds)
    return f"{low}/fold" if low == high else f"{low}-{high}/fold"
