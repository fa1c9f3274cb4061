"""grutune compare: is a GRU or an LSTM better on this data? A verdict a reviewer accepts.

The two cells get the same treatment, step by step:

1. **One split.** The data is prepared once; both studies train, validate and test on
   the same rows (``RUN_DIR/gru`` and ``RUN_DIR/lstm`` hold the same ``split.json``).
2. **One size.** The shape factors (``SHAPE``: embedding width, hidden size, layers,
   direction) are fixed at the space's values for both cells, and the LSTM's hidden size
   is chosen so its trainable parameters, the token embedding left out (both share it,
   and it would hide any difference), are within ``SIZE_TOLERANCE`` of the GRU's. The
   rest of the space (learning rate and schedule, batch size, dropout, L2,
   initialization, pooling, clipping, optimizer, ...) is tuned for each cell.
3. **One budget.** Each cell's study gets the same trial cap and wall-time budget.
4. **Same seeds.** Each study's winner is trained again with the same ``--seeds`` seeds
   (GRU and LSTM alternately, so a slower machine moment hurts both alike), and each
   seed's model is scored on the untouched test split.
5. **A paired test.** For every metric, a paired t-test over the seeds (pairs share the
   seed and the split) gives the p-value; the verdict names a winner only when the
   primary metric's p-value is below ``ALPHA``.

>>> gru = 3 * 64 * (64 + 10)  # a toy count: 3 gates (GRU) of hidden 64 ...
>>> sized_hidden(lambda h: 4 * h * (h + 10), gru)  # ... and the LSTM (4 gates) closest
55
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import optuna
from rich.console import Console
from scipy import stats
from torch import nn

from grutune.config import COMPARE_SEEDS, DataConfig, StudyConfig, to_dict
from grutune.exceptions import ConfigError
from grutune.files import write_json
from grutune.metrics.intervals import mean_interval, metric_bounds
from grutune.nn.device import placed
from grutune.nn.model import Ensemble, count_parameters
from grutune.nn.trainer import predict
from grutune.render import counts_text, format_seconds
from grutune.reporting.data import trial_counts
from grutune.reporting.page import build_compare_report, build_or_warn
from grutune.reporting.tables import compare_table, limit_text, print_result
from grutune.search_space import Space, load_space
from grutune.tasks import Prepared, Task, get_task
from grutune.tuning.evaluate import top_trials
from grutune.tuning.fitting import build_model
from grutune.tuning.repeats import SEED_STRIDE, train_seed
from grutune.workflows.tune import INPUT, check_run_dir, file_logging, resolve, run_search, setup

log = logging.getLogger("grutune")

CELLS = ("gru", "lstm")
SHAPE = ("embed_dim", "hidden_size", "num_layers", "bidirectional")
SIZE_TOLERANCE = 0.05
ALPHA = 0.05
SCOPE = ("The p-value covers the training seeds of the two winners found on this split. "
         "The searches are random too (with several workers, so is their trial order): "
         "a rerun can find other winners, so judge the tuning itself by repeating the "
         "comparison with other --seed values.")


@dataclass
class CompareResult:
    run_dir: Path
    record: dict  # what compare.json holds
    interrupted: bool


# --- size matching -------------------------------------------------------------------

def sized_parameters(model: nn.Module) -> int:
    """Trainable parameters other than a token embedding's (the part the cells change)."""
    embedded = sum(p.numel() for m in model.modules() if isinstance(m, nn.Embedding)
                   for p in m.parameters() if p.requires_grad)
    return count_parameters(model) - embedded


def sized_hidden(count: Callable[[int], int], target: int) -> int:
    """The hidden size whose parameter ``count`` is closest to ``target`` (count grows
    with the hidden size; bisection, so a few model builds)."""
    low, high = 1, 1
    while count(high) < target:
        high *= 2
    while low < high:  # the smallest size reaching the target
        mid = (low + high) // 2
        if count(mid) < target:
            low = mid + 1
        else:
            high = mid
    candidates = [h for h in (low - 1, low) if h >= 1]
    return min(candidates, key=lambda h: (abs(count(h) - target), h))


def _full_params(space: Space) -> dict:
    """Every parameter at its default (the values a model is built from)."""
    return {name: space[name].default for name in space.names}


def fixed_shape(space: Space) -> tuple[Space, dict]:
    """The GRU's space: the shape factors fixed at the space's values; and the size record."""
    shape = {name: space[name].default for name in SHAPE if name in space.names}
    free = [name for name in shape if space[name].kind != "fixed"]
    record = {"shape": shape, "fixed_from_ranges": free,
              "counted": "trainable parameters except the token embedding (shared by both)",
              "tolerance": SIZE_TOLERANCE}
    return space.apply({**shape, "cell": "gru"}, source="compare"), record


def lstm_space(gru_space: Space, task: Task, state: dict, record: dict) -> Space:
    """The LSTM's space: the GRU's with the hidden size that matches its parameters."""
    values = _full_params(gru_space)

    def count(cell: str, hidden: int) -> int:
        model = build_model(task, {**values, "cell": cell, "hidden_size": hidden}, state, 0)
        return sized_parameters(model)

    gru_hidden = values["hidden_size"]
    lstm_hidden = sized_hidden(lambda h: count("lstm", h), count("gru", gru_hidden))
    record["hidden_size"] = {"gru": gru_hidden, "lstm": lstm_hidden}
    return gru_space.apply({"cell": "lstm", "hidden_size": lstm_hidden}, source="compare")


def size_check(winners: dict[str, optuna.trial.FrozenTrial], task: Task, state: dict,
               record: dict) -> dict:
    """The winners' parameter counts (total and sized) and their relative difference."""
    counts = {}
    for cell, trial in winners.items():
        model = build_model(task, trial.user_attrs["config"], state, 0)
        counts[cell] = {"total": count_parameters(model), "sized": sized_parameters(model)}
    gap = abs(counts["lstm"]["sized"] - counts["gru"]["sized"]) / counts["gru"]["sized"]
    return {**record, "parameters": counts, "difference": round(gap, 5),
            "within_tolerance": gap <= SIZE_TOLERANCE}


# --- seeds and the paired test -------------------------------------------------------

def seed_list(seed: int, n: int) -> list[int]:
    """The verdict's seeds: never a trial's seed, the same for both cells."""
    return [seed + SEED_STRIDE * (j + 1) for j in range(n)]


def verdict_metrics(task: Task) -> dict[str, str]:
    """The verdict table's metrics and directions, the task's own metric first."""
    metrics = task.verdict_metrics
    primary = task.metric if task.metric in metrics else next(iter(metrics))
    return {primary: metrics[primary], **metrics}


def run_seeds(winners: dict[str, optuna.trial.FrozenTrial], seeds: list[int], task: Task,
              prepared: Prepared, max_epochs: int, path: Path,
              console: Console) -> list[dict]:
    """Train each winner with every seed (cells alternating); one record per (seed, cell).

    Records are saved to ``path`` as they finish, so a rerun continues where it stopped.
    """
    metrics = verdict_metrics(task)

    def key(seed: int, cell: str) -> tuple:  # a new winner or epoch cap: train again
        return seed, cell, winners[cell].number, max_epochs

    done = json.loads(path.read_text()) if path.is_file() else []
    have = {(r["seed"], r["cell"], r["trial"], r.get("max_epochs")) for r in done}
    for j, seed in enumerate(seeds):
        for cell in CELLS:
            if key(seed, cell) in have:
                continue
            with console.status(f"verdict: {cell.upper()} (trial {winners[cell].number}) "
                                f"seed {j + 1}/{len(seeds)}"):
                started = time.perf_counter()
                models, value, _ = train_seed(winners[cell].user_attrs["config"], seed,
                                              task, prepared, max_epochs)
                seconds = time.perf_counter() - started
                outputs = predict(Ensemble(models, task.combine).eval(), prepared.test)
                scalars = task.scalars(outputs, prepared.test, prepared.state)
            test = {m: scalars[m] for m in metrics if scalars.get(m) is not None}
            done.append({"seed": seed, "cell": cell, "trial": winners[cell].number,
                         "max_epochs": max_epochs, "validation": value, "test": test,
                         "train_seconds": seconds})
            write_json(path, done)
            log.info("verdict: %s seed %d: validation %.4f, test %s, %.1f s", cell, seed,
                     value, test, seconds)
    wanted = {key(seed, cell) for seed in seeds for cell in CELLS}
    return [r for r in done if (r["seed"], r["cell"], r["trial"], r.get("max_epochs")) in wanted]


def paired(gru: list[float], lstm: list[float]) -> float:
    """Two-sided paired t-test p-value (1.0 when every pair is equal: no evidence)."""
    diffs = [a - b for a, b in zip(gru, lstm, strict=True)]
    if len(diffs) < 2 or all(d == 0 for d in diffs):
        return 1.0
    p = float(stats.ttest_rel(gru, lstm).pvalue)
    return p if math.isfinite(p) else 0.0  # equal nonzero differences: certain


def verdict_table(runs: list[dict], seeds: list[int], metrics: dict[str, str],
                  sizes: dict) -> list[dict]:
    """One row per (metric, cell): mean, 95% interval over seeds, parameters, training
    time, and the paired p-value of the metric (the same on both rows)."""
    by = {(r["cell"], r["seed"]): r for r in runs}
    rows = []
    for metric in metrics:
        values = {c: [by[c, s]["test"].get(metric) for s in seeds] for c in CELLS}
        if any(v is None for vs in values.values() for v in vs):
            continue
        p = paired(values["gru"], values["lstm"])
        for cell in CELLS:
            mean, low, high = mean_interval(values[cell], bounds=metric_bounds(metric))
            secs = [by[cell, s]["train_seconds"] for s in seeds]
            rows.append({"metric": metric, "cell": cell, "mean": mean,
                         "interval": [low, high], "values": values[cell],
                         "parameters": sizes["parameters"][cell]["total"],
                         "sized_parameters": sizes["parameters"][cell]["sized"],
                         "train_seconds": round(sum(secs) / len(secs), 2),
                         "p_value": p})
    return rows


def verdict(rows: list[dict], metric: str, direction: str, n: int) -> dict:
    """The primary metric's verdict: a winner only at p < ALPHA."""
    pair = {r["cell"]: r for r in rows if r["metric"] == metric}
    p = pair["gru"]["p_value"]
    sign = 1 if direction == "maximize" else -1
    diff = pair["gru"]["mean"] - pair["lstm"]["mean"]
    leader = "gru" if sign * diff > 0 else "lstm" if sign * diff < 0 else None
    winner = leader if p < ALPHA else None
    means = f"{metric} {pair['gru']['mean']:.4f} (GRU) vs {pair['lstm']['mean']:.4f} (LSTM)"
    test = f"paired t-test over {n} seeds, p = {p:.3g}"
    if winner:
        text = f"{winner.upper()} is better: {means}; {test} < {ALPHA}"
    else:
        text = f"no significant difference at {ALPHA}: {means}; {test}"
    return {"metric": metric, "direction": direction, "winner": winner, "p_value": p,
            "alpha": ALPHA, "difference_gru_minus_lstm": round(diff, 6),
            "test": f"two-sided paired t-test over {n} seeds (pairs share the seed and "
                    "the split)", "text": text, "scope": SCOPE}


# --- the command ---------------------------------------------------------------------

def compare(data_cfg: DataConfig | None = None, study_cfg: StudyConfig | None = None,
            seeds: int = COMPARE_SEEDS, metric: str | None = None,
            console: Console | None = None, out: Console | None = None) -> CompareResult:
    """Tune a GRU and an LSTM alike and judge them; writes ``compare.json`` and
    ``report.html`` in ``study_cfg.run_dir``. See the module docstring. Options left out
    take the library's defaults (``workflows.tune.resolve``; the study name gets
    "compare-"). ``console``: the plan, progress and warnings (default: standard error);
    ``out``: the verdict table and the run directory (default: ``console``).

    Example (a quick look, on the built-in monthly gas production series)::

        from grutune.workflows.compare import compare
        from grutune.config import DataConfig, StudyConfig

        result = compare(DataConfig(dataset="gas"),
                         StudyConfig(run_dir="runs/cmp", trials=4, max_epochs=5), seeds=3)
        print(result.record["verdict"]["text"])
    """
    data_cfg, study_cfg = resolve(data_cfg, study_cfg, prefix="compare-")
    study_cfg = replace(study_cfg, repeats=1, ensemble=1)  # each cell's winner alone
    console = console or Console(stderr=True)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    if seeds < 2:
        raise ConfigError(f"--seeds: a paired test needs at least 2 seeds; got {seeds}")
    task = get_task(data_cfg.task, metric)
    with console.status("reading data"):
        context = task.space_context(data_cfg)
    space = load_space(task.default_space(context), study_cfg.space_path)
    for name in SHAPE:
        if name in space.named and space[name].kind != "fixed":
            raise ConfigError(f"{study_cfg.space_path}: {name}: compare fixes the model's "
                              "size; give one value, not a range or choices")
    root = Path(study_cfg.run_dir)
    # INPUT: the copy of a DataFrame grutune.compare saves there before calling this
    check_run_dir(root, ("compare.json", *CELLS, INPUT))
    cfgs = {c: replace(study_cfg, run_dir=str(root / c), study_name=f"{study_cfg.study_name}-{c}",
                       repeats=1, ensemble=1) for c in CELLS}
    # the GRU study prepares the data; the LSTM study reuses it (one split)
    gru_space, size = fixed_shape(space)
    prepared, *gru = setup(data_cfg, cfgs["gru"], task, gru_space, console)
    spaces = {"gru": gru_space, "lstm": lstm_space(gru_space, task, prepared.state, size)}
    _, *lstm = setup(data_cfg, cfgs["lstm"], task, spaces["lstm"], console, prepared=prepared)
    studies = {"gru": tuple(gru), "lstm": tuple(lstm)}  # (study, new)
    handler = file_logging(root)
    try:
        console.print(_plan(data_cfg, study_cfg, prepared, size, seeds))
        with placed(study_cfg.device, study_cfg.precision):  # where every model trains
            for cell in CELLS:
                study, new = studies[cell]
                interrupted = run_search(task, prepared, study, new, spaces[cell], cfgs[cell],
                                         console, Path(cfgs[cell].run_dir),
                                         plan=f"[bold]{cell.upper()}[/bold] study "
                                              f"({cfgs[cell].run_dir}):")
                if interrupted:
                    console.print("[yellow]the comparison was interrupted; run the same "
                                  "command again to continue it[/yellow]")
                    return CompareResult(root, {}, True)
            record = _judge(task, prepared, {c: s for c, (s, _) in studies.items()}, size,
                            seeds, data_cfg, study_cfg, console, out or console, root)
    finally:
        log.removeHandler(handler)
        handler.close()
    return CompareResult(root, record, False)


def _judge(task: Task, prepared: Prepared, studies: dict[str, optuna.Study], size: dict,
           n_seeds: int, data_cfg: DataConfig, study_cfg: StudyConfig, console: Console,
           out: Console, root: Path) -> dict:
    """Seeds of both winners, the paired tests, compare.json, the table, the report."""
    winners = {c: top_trials(studies[c], 1)[0] for c in CELLS}
    size = size_check(winners, task, prepared.state, size)
    if not size["within_tolerance"]:
        log.warning("the winners' sizes differ by %.1f%% (over %.0f%%): their pooling adds "
                    "parameters", 100 * size["difference"], 100 * SIZE_TOLERANCE)
    seeds = seed_list(data_cfg.seed, n_seeds)
    runs = run_seeds(winners, seeds, task, prepared, study_cfg.max_epochs,
                     root / "verdict_runs.json", console)
    metrics = verdict_metrics(task)
    primary = next(iter(metrics))
    rows = verdict_table(runs, seeds, metrics, size)
    record = {
        "task": task.name, "dataset": data_cfg.dataset or data_cfg.path,
        "split_rows": prepared.summary.get("rows"), "metric": primary,
        "budget_per_cell_s": study_cfg.budget_s, "trials_per_cell": study_cfg.trials,
        "size": size, "seeds": seeds,
        "search": {c: _search_record(studies[c], winners[c]) for c in CELLS},
        "verdict": verdict(rows, primary, metrics[primary], len(seeds)),
        "table": rows, "runs": runs, "data_config": to_dict(data_cfg),
        "study_config": study_cfg.public_dict()}
    write_json(root / "compare.json", record)
    print_result(out, compare_table(record))
    print_result(out, f"verdict: {record['verdict']['text']}")
    build_or_warn(lambda folder: build_compare_report(folder, study_cfg.storage), root)
    print_result(out, f"run directory: {root}  (compare.json, report.html, gru/, lstm/)")
    return record


def _search_record(study: optuna.Study, winner: optuna.trial.FrozenTrial) -> dict:
    seconds = sum(t.user_attrs.get("seconds", 0.0) for t in study.get_trials(deepcopy=False))
    trials = {state: n for state, n in trial_counts(study).items() if n}
    return {"study": study.study_name, "trials": trials,
            "best_trial": winner.number, "best_validation": winner.value,
            "trial_seconds": round(seconds, 1), "params": winner.user_attrs["config"],
            "inactive": winner.user_attrs.get("inactive", [])}


def _plan(data_cfg: DataConfig, cfg: StudyConfig, prepared: Prepared, size: dict,
          seeds: int) -> str:
    """What compare will do and for how long, said before it starts."""
    rows = prepared.summary.get("rows", {})
    hidden = size["hidden_size"]
    shape = ", ".join(f"{k} {v}" for k, v in size["shape"].items() if k != "hidden_size")
    return (f"[bold]grutune compare[/bold]: GRU vs LSTM on "
            f"{data_cfg.dataset or data_cfg.path} "
            f"(split {counts_text(rows, ' / ')}).\n"
            f"Both cells at one size: {shape}; GRU hidden {hidden['gru']}, LSTM hidden "
            f"{hidden['lstm']} (parameters matched within {SIZE_TOLERANCE:.0%}, the token "
            f"embedding aside). Each cell is tuned for {limit_text(cfg, cfg.trials)}, "
            f"then each winner is trained with the same {seeds} seeds and tested; a paired "
            f"t-test gives the verdict. Expect up to about "
            f"{format_seconds(2 * cfg.budget_s * 1.3) if cfg.budget_s else 'the trial cap'}.")


