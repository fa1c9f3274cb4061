"""What the built-in tasks show: their printed metric tables, the plan's data sentence,
the report's metric tables and sections (figure data as plain functions, then plotly).

A task reaches these through its hooks (``metrics_table``, ``report_metrics``,
``report_sections``, ``describe_data``); the report page only calls the hooks, so a new
task draws its own parts without an edit there.

>>> horizon_errors({"mae_by_step": [1.0, 2.0], "baselines": {"naive": {"mae_by_step": [2.0, 3.0]}}})
   step  model  naive
0     1    1.0    2.0
1     2    2.0    3.0
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import pandas as pd
from rich.console import Group
from rich.table import Table

from grutune.render import (
    band_of,
    cell,
    counts_text,
    fmt,
    interval_note,
    main_table,
    model_text,
    table_html,
    with_interval,
)


class RunView(Protocol):
    """What a task's report sections read of a run directory (``reporting.data.RunFiles``)."""

    metrics: dict
    predictions: pd.DataFrame | None


def classification_data_text(summary: dict, inputs: str, dropped: list[str]) -> str:
    """The plan's data sentence for a classifier: split, what was dropped, classes, inputs."""
    dropped = [f"{summary[key]} {what}" for key, what in (
        ("duplicates_removed", "duplicates removed"),
        ("test_overlap_removed", "training rows also in test removed"),
        ("empty_removed", "empty texts dropped")) if summary.get(key)] + dropped
    split = counts_text(summary.get("rows", {}), " / ")
    n_classes = len(summary.get("class_counts", {}).get("train", {}))
    return (f"Tuning a GRU classifier on {summary.get('source')}: {split} rows"
            f"{' (' + ', '.join(dropped) + ')' if dropped else ''}, {n_classes} classes, "
            f"{inputs}.")


CLASSIFICATION_KEYS = ("accuracy", "precision_macro", "recall_macro", "f1_macro",
                       "f1_weighted", "precision", "recall", "f1", "roc_auc", "pr_auc",
                       "log_loss")


def classification_table(metrics: dict) -> Group:
    """The test metrics, per-class scores and confusion matrix as rich tables."""
    main = main_table(metrics, {k: metrics[k] for k in CLASSIFICATION_KEYS if k in metrics})
    labels = metrics.get("labels", [])
    per_class = Table(title="Per class")
    for col in ("class", "precision", "recall", "f1", "support"):
        per_class.add_column(col, justify="left" if col == "class" else "right")
    for name, m in metrics.get("per_class", {}).items():
        per_class.add_row(name, fmt(m["precision"]), fmt(m["recall"]), fmt(m["f1"]),
                          str(m["support"]))
    confusion = Table(title="Confusion matrix", caption="rows: true, columns: predicted")
    confusion.add_column("")
    for name in labels:
        confusion.add_column(name, justify="right")
    for name, row in zip(labels, metrics.get("confusion_matrix", []), strict=False):
        confusion.add_row(name, *map(str, row))
    return Group(main, per_class, confusion)


def forecast_table(metrics: dict) -> Table:
    """Model against the naive and seasonal-naive forecasts on the same test windows."""
    table = Table(title="Test forecasts", min_width=60, caption=(
        f"{metrics['n_windows']} test windows x horizon {metrics['horizon']} (rolling origin), "
        f"season {metrics.get('season')}; {model_text(metrics)}; skill = 1 - MASE / best "
        f"baseline MASE = {fmt(metrics.get('skill'))}"))
    keys = ("mae", "rmse", "mape", "smape", "mase")
    table.add_column("forecast")
    for key in keys:
        table.add_column(key.upper(), justify="right")
    intervals = metrics.get("intervals", {})
    rows = {"GRU (grutune)": (metrics, ""),
            **{name.replace("_", " "): (m, f"baselines.{name}.")
               for name, m in metrics["baselines"].items()}}
    for name, (m, prefix) in rows.items():
        table.add_row(name, *(with_interval(m.get(k), intervals.get(prefix + k)) for k in keys))
    if intervals:
        table.caption += f"; [{metrics.get('interval_method')}]"
    return table


def classification_metrics_html(metrics: dict) -> str:
    """The classifier's scalar test metrics with intervals."""
    names = ("accuracy", "precision_macro", "recall_macro", "f1_macro", "roc_auc", "pr_auc",
             "log_loss")
    return table_html([(n, band_of(metrics, n, metrics[n])) for n in names
                   if metrics.get(n) is not None],
                  ("metric", "value [95% interval]")) + interval_note(metrics)


def forecast_metrics_html(metrics: dict) -> str:
    """The model's test errors beside its baselines', with intervals, and the skill."""
    names = ("mae", "rmse", "smape", "mase")
    rows = [("model", *[band_of(metrics, n, metrics.get(n)) for n in names])]
    for base, values in (metrics.get("baselines") or {}).items():
        rows.append((base, *[band_of(metrics, f"baselines.{base}.{n}", values.get(n))
                             for n in names]))
    return (table_html(rows, ("forecast", "MAE", "RMSE", "sMAPE", "MASE")) + interval_note(metrics)
            + f"<p>skill (1 - MASE / best baseline's): {cell(metrics.get('skill'))}</p>")


def classification_sections(run: RunView, figure) -> list[str]:
    """ROC and PR curves, the confusion matrix, per-class scores."""
    import plotly.graph_objects as go  # only when a report is drawn
    metrics = run.metrics
    labels = [str(label) for label in metrics["labels"]]
    out = ["<h2>Classification</h2>"]
    curves = roc(metrics)
    if curves:
        fig = go.Figure()
        for name, c in curves.items():
            fig.add_trace(go.Scatter(x=c["fpr"], y=c["tpr"], mode="lines",
                                     name=f"{name} (AUC {c['auc']:.3f})",
                                     line=dict(dash="dash" if name == "macro" else "solid")))
        fig.update_layout(title="ROC curves (one-vs-rest)", xaxis_title="false positive rate",
                          yaxis_title="true positive rate")
        out.append("<div class='grid'>" + figure(fig, 380))
        pr = {}
        if run.predictions is not None and "prediction" in run.predictions:
            target = run.predictions.columns[run.predictions.columns.get_loc("prediction") - 1]
            pr = precision_recall(run.predictions, target, labels)
        fig = go.Figure()
        for name, c in pr.items():
            fig.add_trace(go.Scatter(x=c["recall"], y=c["precision"], mode="lines", name=name))
        fig.update_layout(title=f"Precision-recall curves (PR-AUC {metrics.get('pr_auc', 0):.3f})",
                          xaxis_title="recall", yaxis_title="precision")
        out.append(figure(fig, 380) + "</div>")
    out.append("<div class='grid'>")
    for key, title in (("confusion_matrix", "Confusion matrix (counts)"),
                       ("confusion_matrix_normalized", "Confusion matrix (row-normalized)")):
        fig = go.Figure(go.Heatmap(z=metrics[key], x=labels, y=labels, colorscale="Blues",
                                   text=[[cell(v) for v in row] for row in metrics[key]],
                                   texttemplate="%{text}"))
        fig.update_layout(title=title, xaxis_title="predicted", yaxis_title="true",
                          yaxis=dict(autorange="reversed"))
        out.append(figure(fig, 380))
    out.append("</div>")
    per_class = metrics.get("per_class", {})
    out.append(table_html([(name, v["precision"], v["recall"], v["f1"], v["support"])
                       for name, v in per_class.items()],
                      ("class", "precision", "recall", "F1", "support")))
    return out


def forecast_sections(run: RunView, figure) -> list[str]:
    """Per target: test actuals, forecasts and baselines over time."""
    import plotly.graph_objects as go  # only when a report is drawn
    metrics = run.metrics
    frame = forecast_frame(run.predictions)
    out = ["<h2>Forecast</h2>"]
    for target, group in frame.groupby("target", sort=False):
        fig = go.Figure()
        for column, style in (("actual", dict(color="black")), ("forecast", dict(color="#1f77b4")),
                              ("naive", dict(color="#aaaaaa", dash="dot")),
                              ("seasonal_naive", dict(color="#ff7f0e", dash="dot"))):
            fig.add_trace(go.Scatter(x=group["time"],  # plotly reads date strings
                                     y=group[column], mode="lines", name=column, line=style))
        fig.update_layout(title=f"{target}: test actuals, forecasts and baselines",
                          xaxis_title="time")
        out.append(figure(fig, 400))
    steps = horizon_errors(metrics)
    fig = go.Figure()
    for column in steps.columns[1:]:
        fig.add_trace(go.Scatter(x=steps["step"], y=steps[column], mode="lines+markers",
                                 name=column))
    fig.update_layout(title="MAE by horizon step", xaxis_title="steps ahead",
                      yaxis_title="MAE")
    out.append(figure(fig, 340))
    return out


def roc(metrics: dict) -> dict[str, dict]:
    """Per-class ROC points and AUC from metrics.json, plus the macro average curve
    (mean TPR over a common FPR grid)."""
    curves_ = metrics.get("roc_curve") or {}
    out = {name: {"fpr": c["fpr"], "tpr": c["tpr"], "auc": c["auc"]}
           for name, c in curves_.items()}
    if len(out) > 1:
        grid = np.linspace(0, 1, 101)
        tpr = np.mean([np.interp(grid, c["fpr"], c["tpr"]) for c in out.values()], axis=0)
        out["macro"] = {"fpr": grid.tolist(), "tpr": tpr.tolist(),
                        "auc": float(np.mean([c["auc"] for c in out.values()]))}
    return out


def precision_recall(predictions: pd.DataFrame, target: str,
                     labels: list[str]) -> dict[str, dict]:
    """Per-class precision-recall curves (one-vs-rest) from the test predictions."""
    from sklearn.metrics import precision_recall_curve

    out = {}
    truth = predictions[target].astype(str)
    for label in labels:
        column = f"prob_{label}"
        if column not in predictions:
            continue
        precision, recall, _ = precision_recall_curve(truth == str(label), predictions[column])
        out[label] = {"precision": precision.tolist(), "recall": recall.tolist()}
    return out


def forecast_frame(predictions: pd.DataFrame) -> pd.DataFrame:
    """Test actuals, forecasts and baselines per time (one row per time and target; where
    rolling windows overlap, the latest window's forecast)."""
    frame = predictions.sort_values(["window", "step"])
    frame = frame.drop_duplicates(["time", "target"], keep="last")
    return frame[["time", "target", "actual", "forecast", "naive",
                  "seasonal_naive"]].reset_index(drop=True)


def horizon_errors(metrics: dict) -> pd.DataFrame:
    """MAE by horizon step for the model and both baselines."""
    frame = pd.DataFrame({"step": range(1, len(metrics["mae_by_step"]) + 1),
                          "model": metrics["mae_by_step"]})
    for name, base in (metrics.get("baselines") or {}).items():
        if "mae_by_step" in base:
            frame[name] = base["mae_by_step"]
    return frame
