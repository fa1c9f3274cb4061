"""What a run prints and writes as tables: the plan, the trials, the test metrics."""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import optuna
import pandas as pd
from rich.console import Console, RenderableType
from rich.table import Table

from grutune.config import StudyConfig
from grutune.render import format_seconds, with_interval

if TYPE_CHECKING:  # tables draws for tasks; tasks import it, so no import at run time
    from grutune.tasks import Task

log = logging.getLogger("grutune")
LOG_WIDTH = 100  # columns of a table written into tune.log


def print_result(console: Console, result: RenderableType | str) -> None:
    """Show a result of the run (a table, the run directory line) on ``console`` (the
    command line's standard output) and write its plain text into the run's log
    (tune.log), marked ``shown`` so the command line's stderr log does not repeat it.
    A string is shown as written: no markup, one line however narrow the terminal."""
    line = isinstance(result, str)
    console.print(result, markup=not line, soft_wrap=line)
    plain = Console(file=io.StringIO(), width=LOG_WIDTH, color_system=None,
                    force_terminal=False, emoji=False, highlight=False)
    plain.print(result, markup=not line, soft_wrap=line)
    text = plain.file.getvalue().rstrip()
    log.info("%s", "\n" + text if "\n" in text else text, extra={"shown": True})


def limit_text(cfg: StudyConfig, remaining: int | None, done: int = 0) -> str:
    """What ends a search: "60 trials or 10m00s of search (whichever comes first)"."""
    limits = []
    if remaining is not None:
        limits.append(f"{remaining} more trials" if done else f"{remaining} trials")
    if cfg.budget_s:
        limits.append(f"{format_seconds(cfg.budget_s)} of search")
    return " or ".join(limits) + (" (whichever comes first)" if len(limits) > 1 else "")


def _why_folds(summary: dict) -> str:
    """Why cross-validation is on when the user did not ask for it (``folds_chosen``)."""
    chosen = summary.get("folds_chosen")
    if not chosen:
        return ""
    sample = f"--sample {chosen['sample']} leaves " if chosen.get("sample") else ""
    return (f" ({sample}fewer than {chosen['below']} rows, too few for one validation "
            "split; --folds 1 turns it off)")


def plan_text(task: Task, summary: dict, cfg: StudyConfig, remaining: int | None, done: int,
              run_dir: Path) -> str:
    """One paragraph saying what the run will do and for how long (the data sentence and
    what the test compares with are the task's: ``describe_data``, ``plan_phrases``)."""
    from grutune.tuning.refit import refit_skip_reason  # imports the trainer: only here

    rows = summary.get("rows", {})
    limit = limit_text(cfg, remaining, done)
    resumed = f"Resuming: {done} finished trials kept. " if done else ""
    folds = summary.get("folds", 1)
    ensemble = (f"ensemble of the {cfg.ensemble} best trials is" if cfg.ensemble > 1
                else "best trial is")
    scoring = ""
    if folds > 1:
        pool = sum(v for k, v in rows.items() if k != "test")
        scoring = (f"Each trial is scored by {folds}-fold cross-validation on the {pool} "
                   f"train + validation rows{_why_folds(summary)}.\n")
        ensemble = (f"ensemble of the {cfg.ensemble} best trials' {folds} fold models each is"
                    if cfg.ensemble > 1 else f"ensemble of the best trial's {folds} fold "
                    "models is")
    if cfg.repeats > 1:
        from grutune.tuning.repeats import REPEAT_SHARE

        share = (f", at most {format_seconds(cfg.budget_s * REPEAT_SHARE)}" if cfg.budget_s
                 else "")
        ensemble = (f"top {cfg.repeat_top} configurations are re-trained with {cfg.repeats} "
                    f"seeds each{share} (seed repeats), and the one whose validation interval "
                    "has the best bound, averaged over its seeds, is")
    if refit_skip_reason(task, folds, cfg.refit) is None:
        ensemble = ensemble.removesuffix(" is").rstrip(",") + (
            ", refitted on train + validation for the epochs early stopping chose, is")
    scored, evaluated = task.plan_phrases(summary)
    return (f"{task.describe_data(summary)}\n{scoring}{resumed}Search: {limit} with the "
            f"{cfg.sampler} sampler and {cfg.pruner} pruning, up to {cfg.max_epochs} epochs "
            f"per trial{scored}; then the {ensemble} {evaluated} and saved to {run_dir}/model.")


def trials_frame(study: optuna.Study) -> pd.DataFrame:
    """One row per trial: number, state, value, epochs, seconds, then every parameter."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        row = {
            "number": t.number,
            "state": t.state.name,
            "value": t.value,
            "epochs": t.user_attrs.get("epochs"),
            "best_epoch": t.user_attrs.get("best_epoch"),
            "seconds": t.user_attrs.get("seconds"),
            "n_params": t.user_attrs.get("n_params"),
            "stopped": t.user_attrs.get("stopped"),
            "fail_reason": t.user_attrs.get("fail_reason"),
        }
        config = t.user_attrs.get("config") or t.params
        inactive = set(t.user_attrs.get("inactive", []))  # blank: did not apply
        row.update({f"param_{k}": (None if k in inactive else v) for k, v in config.items()})
        rows.append(row)
    return pd.DataFrame(rows)


def repeats_table(record: dict) -> Table:
    """Seed repeats: each configuration's validation and test mean and 95% interval."""
    table = Table(title="Seed repeats (95% intervals over seeds; test never chooses)",
                  caption=f"chosen: trial {record['chosen_trial']} - {record['rule']}"
                  + (f"; {record['note']}" if record.get("note") else ""))
    for col in ("trial", "seeds", "validation", "test"):
        table.add_column(col, justify="left" if col == "trial" else "right")
    for c in record["configurations"]:
        mark = " *" if c["trial"] == record["chosen_trial"] else ""
        table.add_row(f"{c['trial']}{mark}", str(len(c["seeds"])),
                      with_interval(c["validation_mean"], c["validation_interval"]),
                      with_interval(c["test_mean"], c["test_interval"]))
    return table


def compare_table(record: dict) -> Table:
    """The GRU-vs-LSTM verdict: per metric, each cell's mean over the seeds with its 95%
    interval and the paired p-value; then parameters and training time per seed."""
    n = len(record["seeds"])
    table = Table(title=f"GRU vs LSTM on the test split ({n} seeds each, same seeds and split)",
                  caption=f"{record['verdict']['test']}; parameters: all trainable (without "
                  "the token embedding)")
    for col in ("", "GRU", "LSTM", "p-value"):
        table.add_column(col, justify="left" if not col else "right")
    pairs: dict[str, dict] = {}
    for row in record["table"]:
        pairs.setdefault(row["metric"], {})[row["cell"]] = row
    for metric, pair in pairs.items():
        table.add_row(metric, *(with_interval(pair[c]["mean"], pair[c]["interval"])
                                for c in ("gru", "lstm")), f"{pair['gru']['p_value']:.3g}")
    first = next(iter(pairs.values()))
    table.add_row("parameters", *(f"{first[c]['parameters']:,} ({first[c]['sized_parameters']:,})"
                                  for c in ("gru", "lstm")), "")
    table.add_row("train s / seed", *(f"{first[c]['train_seconds']:.1f}" for c in ("gru", "lstm")),
                  "")
    return table
