"""report.html: one self-contained page that shows the run and which factors mattered.

``build_report(run_dir)`` reads the run directory (the study from its storage, so it
also works while a study still runs; metrics and predictions once written), computes
each figure's data with ``report_data`` and draws it with plotly (Optuna's own plots for
parallel coordinates, contour and timeline). plotly's JavaScript is embedded once, so
the file works offline and requests nothing.

>>> callable(build_report)
True
"""

from __future__ import annotations

import datetime
import html
import logging
from collections.abc import Callable
from pathlib import Path

import optuna
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from grutune.files import atomic_path
from grutune.render import (
    band,
    baseline_html,
    cell,
    counts_text,
    format_seconds,
    table_html,
)
from grutune.reporting import data as rd

TOP_FACTORS = 4  # slice plots for this many of the most important factors
COLORS = {"complete": "#1f77b4", "pruned": "#ff7f0e", "fail": "#d62728", "running": "#7f7f7f"}
STYLE = """
body { font-family: system-ui, -apple-system, Segoe UI, sans-serif; margin: 0 auto;
       max-width: 1100px; padding: 0 18px 40px; color: #222; }
h1 { font-size: 1.6em; margin: 18px 0 4px; } h2 { margin-top: 32px; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 8px 0; font-size: 0.92em; }
td, th { border: 1px solid #ddd; padding: 3px 8px; text-align: left; }
th { background: #f4f4f4; } .note { color: #555; } .figure { margin: 10px 0 18px; }
.grid { display: grid; grid-template-columns: 1fr 1fr; gap: 8px; }
"""


class _Page:
    """The figures of one page: ``figure(fig)`` adds one and returns its div."""

    def __init__(self) -> None:
        self.figures: list[go.Figure] = []

    def figure(self, fig: go.Figure, height: int = 380) -> str:
        fig.update_layout(height=height, margin=dict(l=50, r=20, t=40, b=40),
                          template="plotly_white")
        self.figures.append(fig)
        div = fig.to_html(full_html=False, include_plotlyjs=False,
                          div_id=f"fig{len(self.figures)}", config={"displaylogo": False})
        return f"<div class='figure'>{div}</div>"


def _write_page(path: Path, title: str, parts: list[str]) -> Path:
    """One self-contained HTML file: plotly.js embedded once, written atomically."""
    page = ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style><script>{get_plotlyjs()}</script></head><body>"
            + "\n".join(parts) + "</body></html>")
    with atomic_path(path) as tmp:
        Path(tmp).write_text(page, encoding="utf-8")
    return path


def _heading(title: str, run_dir: Path) -> list[str]:
    return [f"<h1>{html.escape(title)}</h1>",
            f"<p class='note'>{html.escape(str(run_dir))} · written "
            f"{datetime.datetime.now():%Y-%m-%d %H:%M}</p>"]


def build_report(run_dir: str | Path, storage: str | None = None) -> Path:
    """Write ``run_dir/report.html`` (atomically) and return its path. ``storage``: the
    study's URL where ``config.json`` records it without its password."""
    run = rd.read_run(run_dir, storage)
    title = f"grutune report: {_dataset(run)}"
    parts = _heading(title, run.run_dir)
    figure = _Page().figure
    parts += _summary(run)
    if run.study is not None:
        scores = rd.importances(run.study)  # resampled fANOVA: seconds; computed once
        parts += _factors(run.study, figure, scores)
        parts += _search(run.study, figure, scores)
        parts += _best_model(run.study, figure)
    task = _task_of(run)
    if task is not None and run.metrics:
        parts += task.report_sections(run, figure)
    return _write_page(Path(run_dir) / "report.html", title, parts)


def build_compare_report(run_dir: str | Path, storage: str | None = None) -> Path:
    """``grutune compare``'s page: the verdict, the seeds side by side, both searches.
    Each cell's own report (``RUN_DIR/gru/report.html``, ``lstm/``) is rebuilt too.
    ``storage``: the studies' URL, as for ``build_report``."""
    root = Path(run_dir)
    record = rd.read_compare(root)
    title = f"grutune compare: GRU vs LSTM on {record.get('dataset')}"
    figure = _Page().figure
    size, verdict = record["size"], record["verdict"]
    counts = size["parameters"]
    budget = (format_seconds(record["budget_per_cell_s"]) if record.get("budget_per_cell_s")
              else "no time limit")
    parts = _heading(title, root) + [
        "<h2>Verdict</h2>", f"<p><b>{html.escape(verdict['text'])}</b></p>",
        f"<p class='note'>{html.escape(verdict.get('scope', ''))}</p>",
        f"<p class='note'>{html.escape(verdict['test'])}. Split rows: "
        f"{html.escape(counts_text(record.get('split_rows') or {}, ' / '))}. Each cell tuned "
        f"for at most {record.get('trials_per_cell')} trials / {budget}"
        "; both winners then trained with the same seeds "
        f"{html.escape(str(record['seeds']))}.</p>",
        table_html([(r["metric"], r["cell"].upper(), r["mean"],
                 f"[{cell(r['interval'][0])}, {cell(r['interval'][1])}]",
                 f"{r['parameters']:,} ({r['sized_parameters']:,})", r["train_seconds"],
                 f"{r['p_value']:.3g}") for r in record["table"]],
               ("metric", "cell", "mean", "95% interval", "parameters (sized)",
                "train s / seed", "paired p-value")),
        "<h2>Size</h2>",
        table_html([("shape (both cells)", ", ".join(f"{k} {v}" for k, v in size["shape"].items()
                                                 if k != "hidden_size")),
                ("hidden size", f"GRU {size['hidden_size']['gru']}, LSTM "
                                f"{size['hidden_size']['lstm']}"),
                ("parameters, all trainable", f"GRU {counts['gru']['total']:,}, LSTM "
                                              f"{counts['lstm']['total']:,}"),
                ("parameters, sized part", f"GRU {counts['gru']['sized']:,}, LSTM "
                                           f"{counts['lstm']['sized']:,} "
                                           f"({size['difference']:.2%} apart; tolerance "
                                           f"{size['tolerance']:.0%})"),
                ("sized part", size["counted"])])]
    parts += _compare_seeds(record, figure)
    parts.append("<h2>Searches</h2>")
    fig = go.Figure()
    for arm in ("gru", "lstm"):
        run = rd.read_run(root / arm, storage)
        if run.study is None:
            continue
        hist = rd.history(run.study)
        fig.add_trace(go.Scatter(x=hist["number"], y=hist["score"], mode="markers",
                                 name=f"{arm.upper()} trials", opacity=0.5))
        fig.add_trace(go.Scatter(x=hist["number"], y=hist["best"], mode="lines",
                                 name=f"{arm.upper()} best so far", line=dict(shape="hv")))
        build_or_warn(lambda folder: build_report(folder, storage), root / arm,
                      retry_hint(root / arm))
    fig.update_layout(title="Both searches: validation by trial", xaxis_title="trial",
                      yaxis_title="validation")
    parts.append(figure(fig))
    search = record["search"]
    names = list(dict.fromkeys([*search["gru"]["params"], *search["lstm"]["params"]]))
    parts.append("<p>The winners (each study's own report: <code>gru/report.html</code>, "
                 "<code>lstm/report.html</code>):</p>" + table_html(
                     [("trial", search["gru"]["best_trial"], search["lstm"]["best_trial"]),
                      ("validation", search["gru"]["best_validation"],
                       search["lstm"]["best_validation"]),
                      ("trials", counts_text(search["gru"]["trials"]),
                       counts_text(search["lstm"]["trials"])),
                      *[(n, *(_active(search[c], n) for c in ("gru", "lstm")))
                        for n in names]], ("", "GRU", "LSTM")))
    return _write_page(root / "report.html", title, parts)


def _active(record: dict, name: str) -> object:
    """A winner's parameter value, or "-" where it did not apply (momentum for AdamW)."""
    return "-" if name in record.get("inactive", []) else record["params"].get(name, "-")


def _compare_seeds(record: dict, figure) -> list[str]:
    """Each seed's test metric for both cells, joined per seed (the pairs of the test)."""
    metric = record["verdict"]["metric"]
    runs = {(r["cell"], r["seed"]): r for r in record["runs"]}
    fig = go.Figure()
    for seed in record["seeds"]:
        fig.add_trace(go.Scatter(x=["GRU", "LSTM"],
                                 y=[runs["gru", seed]["test"][metric],
                                    runs["lstm", seed]["test"][metric]],
                                 mode="lines+markers", name=f"seed {seed}"))
    fig.update_layout(title=f"Test {metric}, pairs by seed",
                      yaxis_title=metric)
    times = go.Figure([go.Bar(name=arm.upper(), x=[str(s) for s in record["seeds"]],
                              y=[runs[arm, s]["train_seconds"] for s in record["seeds"]])
                       for arm in ("gru", "lstm")])
    times.update_layout(title="Training time per seed (s)", xaxis_title="seed",
                        barmode="group")
    return ["<h2>Seeds</h2>", "<div class='grid'>" + figure(fig) + figure(times) + "</div>"]


def build_or_warn(build: Callable[[Path], Path], run_dir: Path, retry: str = "") -> None:
    """``build(run_dir)``; a failure to draw a page is a warning, never a failed run (the
    results it shows are already saved). ``retry``: how the user can draw it again."""
    try:
        build(run_dir)
    except Exception as err:  # noqa: BLE001 - see the docstring
        logging.getLogger("grutune").warning("%s not written (%s: %s)%s",
                                             Path(run_dir) / "report.html",
                                             type(err).__name__, err, retry)


def retry_hint(run_dir: Path) -> str:
    return f"; `grutune report {run_dir}` retries"


def _dataset(run: rd.RunFiles) -> str:
    data = run.config.get("data", {})
    return data.get("dataset") or Path(data.get("path") or run.run_dir.name).name


# --- summary -------------------------------------------------------------------------

def _summary(run: rd.RunFiles) -> list[str]:
    data, study_cfg = run.config.get("data", {}), run.config.get("study", {})
    rows = [("task", run.metrics.get("task") if run.metrics else data.get("task", "?")),
            ("dataset", _dataset(run))]
    sizes = run.summary.get("rows") or {}
    if sizes:
        rows.append(("split rows (train / validation / test)",
                     " / ".join(str(sizes.get(k, "?")) for k in ("train", "val", "test"))))
    task = _task_of(run)
    if task is not None:
        rows += task.report_summary_rows(run.summary)
    if run.study is not None:
        counts = rd.trial_counts(run.study)
        rows.append(("trials", ", ".join(f"{v} {k}" for k, v in counts.items() if v)))
        used = _search_seconds(run.study)
        budget = study_cfg.get("budget_s")
        rows.append(("search time", format_seconds(used) + (
            f" (budget {format_seconds(budget)}, cap {study_cfg.get('trials')} trials)"
            if budget else "")))
    out = ["<h2>Summary</h2>", table_html(rows)]
    balance = (run.summary.get("class_counts") or {})
    if balance:
        labels = sorted({c for part in balance.values() for c in part})
        out.append("<p>Class balance:</p>" + table_html(
            [(part, *[balance[part].get(c, 0) for c in labels]) for part in balance],
            ("split", *labels)))
    best = _best_trial(run.study) if run.study is not None else None
    if best is not None:
        config = best.user_attrs.get("config", best.params)
        inactive = set(best.user_attrs.get("inactive", []))
        shown = [(k, v) for k, v in config.items() if k not in inactive]
        out.append(f"<p>Best configuration (trial {best.number}, validation "
                   f"{cell(best.value)}):</p>" + table_html(shown, ("parameter", "value")))
    if run.metrics:
        out += _repeats(run.metrics.get("seed_repeats") or {})
        out.append("<p>Test metrics (the untouched test split, evaluated once):</p>"
                   + (task.report_metrics(run.metrics) if task else ""))
        if run.metrics.get("baseline"):
            out.append("<h3>Beside the baseline</h3>" + baseline_html(run.metrics))
    else:
        out.append("<p class='note'>No test metrics yet: the study is still running.</p>")
    return out


def _repeats(record: dict) -> list[str]:
    """The seed-repeat table: each configuration's mean and interval over seeds."""
    if not record.get("configurations"):
        return [f"<p class='note'>{html.escape(record['note'])}</p>"] if record.get("note") else []
    rows = []
    for c in record["configurations"]:
        rows.append((f"{c['trial']}{' (chosen)' if c['trial'] == record['chosen_trial'] else ''}",
                     len(c["seeds"]), band(c["validation_mean"], c["validation_interval"]),
                     band(c["test_mean"], c["test_interval"])))
    metric = record["configurations"][0]["metric"]
    return [f"<p>Seed repeats ({html.escape(metric)}, mean and 95% interval over seeds; "
            f"chosen by {html.escape(record['rule'])}):</p>",
            table_html(rows, ("trial", "seeds", "validation", "test"))]


def _search_seconds(study: optuna.Study) -> float:
    times = [(t.datetime_start, t.datetime_complete) for t in study.get_trials(deepcopy=False)
             if t.datetime_start is not None]
    if not times:
        return 0.0
    end = max((c or datetime.datetime.now()) for _, c in times)
    return (end - min(s for s, _ in times)).total_seconds()


def _best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    try:
        return study.best_trial
    except ValueError:
        return None


def _task_of(run: rd.RunFiles):  # -> Task | None: the run's task draws its own parts
    """The run's task (from metrics.json, else config.json); None when neither names one."""
    from grutune.tasks import get_task

    name = (run.metrics or {}).get("task") or (run.config.get("data") or {}).get("task")
    return get_task(name) if name else None


# --- key factors ---------------------------------------------------------------------

def _factors(study: optuna.Study, figure, scores: dict[str, rd.Importance]) -> list[str]:
    """``scores``: ``rd.importances(study)``."""
    out = ["<h2>Key factors</h2>"]
    if not scores:
        return out + ["<p class='note'>Importances need at least three complete trials.</p>"]
    names = list(scores)[::-1]
    bars = go.Bar(x=[scores[n].share for n in names], y=names, orientation="h", error_x=dict(
        type="data", symmetric=False, array=[scores[n].high - scores[n].share for n in names],
        arrayminus=[scores[n].share - scores[n].low for n in names]))
    out.append(figure(go.Figure(bars).update_layout(
        title="Hyperparameter importance (fANOVA, share of the validation metric's "
              "variance)"), height=max(300, 22 * len(names))))
    note = rd.importance_note(scores, rd.trial_counts(study)["complete"])
    out.append(f"<p class='note'>{html.escape(note)}</p>")
    higher = rd.maximize(study)
    for name in list(scores)[:TOP_FACTORS]:
        points = rd.slice_points(study, name)
        if points.empty:
            continue
        text = rd.best_range_text(name, list(zip(points["value"], points["score"],
                                                  strict=True)), higher)
        fig = go.Figure()
        for state, group in points.groupby("state"):
            fig.add_trace(go.Scatter(
                x=group["value"], y=group["score"], mode="markers", name=state,
                marker=dict(color=COLORS.get(state), symbol="x" if state == "pruned"
                            else "circle"), text=[f"trial {n}" for n in group["number"]]))
        dist = study.best_trial.distributions.get(name) if _best_trial(study) else None
        if isinstance(dist, optuna.distributions.FloatDistribution) and dist.log:
            fig.update_xaxes(type="log")
        imp = scores[name]
        fig.update_layout(title=f"{name} (importance {imp.share:.2f}, resampled "
                                f"{imp.low:.2f}-{imp.high:.2f})", xaxis_title=name,
                          yaxis_title="validation")
        out.append(figure(fig, 320) + f"<p>{html.escape(text)}.</p>")
    return out


# --- the search ----------------------------------------------------------------------

def _search(study: optuna.Study, figure, scores: dict[str, rd.Importance]) -> list[str]:
    """``scores``: ``rd.importances(study)``, whose top six the parallel plot shows."""
    out = ["<h2>Search</h2>"]
    hist = rd.history(study)
    if hist.empty:
        return out + ["<p class='note'>No finished trials yet.</p>"]
    fig = go.Figure()
    for state, group in hist.groupby("state"):
        fig.add_trace(go.Scatter(x=group["number"], y=group["score"], mode="markers",
                                 name=state, marker=dict(color=COLORS.get(state))))
    fig.add_trace(go.Scatter(x=hist["number"], y=hist["best"], mode="lines",
                             name="best so far", line=dict(shape="hv")))
    fig.update_layout(title="Optimization history", xaxis_title="trial",
                      yaxis_title="validation")
    out.append(figure(fig))
    top = list(scores)[:6]
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if len(complete) >= 2:
        fig = optuna.visualization.plot_parallel_coordinate(study, params=top or None)
        out.append(figure(fig.update_layout(title="Parallel coordinates (complete trials)"),
                          420))
    if len(top) >= 2 and len(complete) >= 3:
        fig = optuna.visualization.plot_contour(study, params=top[:2])
        out.append(figure(fig.update_layout(title=f"Contour: {top[0]} x {top[1]}"), 420))
    fig = go.Figure()
    for curve in rd.intermediate(study):
        pruned = curve["state"] == "pruned"
        fig.add_trace(go.Scatter(x=curve["steps"], y=curve["values"], mode="lines",
                                 name=f"trial {curve['number']}", showlegend=False,
                                 line=dict(color=COLORS["pruned"] if pruned
                                           else COLORS["complete"], dash="dot" if pruned
                                           else "solid", width=1)))
    fig.update_layout(title="Validation curve of every trial (pruned: dotted orange)",
                      xaxis_title="epoch (fold under cross-validation)",
                      yaxis_title="validation")
    out.append(figure(fig))
    fig = optuna.visualization.plot_timeline(study)
    out.append(figure(fig.update_layout(title="Timeline of trials"), 360))
    return out


def _best_model(study: optuna.Study, figure) -> list[str]:
    best = _best_trial(study)
    if best is None:
        return []
    frame = rd.curves(best)
    out = [f"<h2>Best model (trial {best.number})</h2>",
           table_html([("parameters", f"{best.user_attrs.get('n_params', '?'):,}"
                    if isinstance(best.user_attrs.get("n_params"), int) else "?"),
                   ("training time", format_seconds(best.user_attrs.get("seconds", 0))),
                   ("epochs (best)", f"{best.user_attrs.get('epochs', '?')} "
                    f"({best.user_attrs.get('best_epoch', '?')})"),
                   ("stopped by", best.user_attrs.get("stopped", "?"))])]
    if frame.empty:
        return out
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=frame["epoch"], y=frame["train_loss"], name="training loss"))
    fig.add_trace(go.Scatter(x=frame["epoch"], y=frame["val_loss"], name="validation loss"))
    fig.add_trace(go.Scatter(x=frame["epoch"], y=frame["val_metric"], name="validation metric",
                             yaxis="y2"))
    fig.update_layout(title="Loss and validation metric per epoch", xaxis_title="epoch",
                      yaxis=dict(title="loss"), yaxis2=dict(title="metric", overlaying="y",
                                                            side="right"))
    out.append("<div class='grid'>" + figure(fig, 340))
    fig = go.Figure(go.Scatter(x=frame["epoch"], y=frame["lr"], mode="lines+markers"))
    fig.update_layout(title="Learning rate at the end of each epoch", xaxis_title="epoch",
                      yaxis_title="learning rate")
    out.append(figure(fig, 340) + "</div>")
    return out


# --- task sections -------------------------------------------------------------------

