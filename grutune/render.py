"""How numbers are shown, in a terminal table or an HTML cell: the small pieces that
tasks (their metric tables and report sections) and the report page share.

>>> fmt(0.95821), with_interval(0.95, [0.9, 0.99]), band(0.95, None)
('0.9582', '0.9500 [0.9000, 0.9900]', '0.95')
>>> counts_text({"train": 2113, "val": 466}), format_seconds(245)
('train 2,113, val 466', '4m05s')
"""

from __future__ import annotations

import html

from rich.table import Table

from grutune.metrics.intervals import scalar_metrics


def format_seconds(seconds: float) -> str:
    """``1h02m``, ``4m05s``, ``12s``.

    >>> format_seconds(3725), format_seconds(245), format_seconds(12.4)
    ('1h02m', '4m05s', '12s')
    """
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


def counts_text(counts: dict, sep: str = ", ") -> str:
    """{"train": 2113, "val": 466} -> "train 2,113, val 466"."""
    return sep.join(f"{k} {v:,}" for k, v in counts.items())


def fmt(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, float) else ("-" if value is None else str(value))


def with_interval(value: float | None, interval: list[float] | None) -> str:
    text = fmt(value)
    return f"{text} [{fmt(interval[0])}, {fmt(interval[1])}]" if interval else text


def model_text(metrics: dict) -> str:
    members = metrics.get("model", {}).get("members", [metrics.get("best_trial")])
    folds = metrics.get("model", {}).get("folds", 1)
    if len(members) > 1 or folds > 1:
        return (f"ensemble of trials {', '.join(map(str, members))}"
                + (f" x {folds} folds" if folds > 1 else ""))
    return f"trial {members[0]}"


# metrics.json numbers that describe the run, not the model's quality
RUN_NUMBERS = ("best_trial",)


def metric_scalars(metrics: dict) -> dict[str, float]:
    """The scalar test metrics of ``metrics.json`` in their order, nested baselines as
    ``baselines.NAME.KEY``; bookkeeping numbers (``RUN_NUMBERS``, ``n``) left out.

    >>> metric_scalars({"n": 9, "best_trial": 2, "rmse": 1.5, "baselines": {"mean": {"rmse": 2.0}}})
    {'rmse': 1.5, 'baselines.mean.rmse': 2.0}
    """
    return {k: v for k, v in scalar_metrics(metrics).items() if k not in (*RUN_NUMBERS, "n")}


def main_table(metrics: dict, values: dict[str, object]) -> Table:
    """The test metrics ``values`` (name -> number; dotted names for nested ones) with
    their 95% intervals from ``metrics["intervals"]``."""
    main = Table(title="Test metrics",
                 caption=f"{metrics.get('n')} test rows, {model_text(metrics)}",
                 min_width=40)
    main.add_column("metric")
    main.add_column("value", justify="right")
    intervals = metrics.get("intervals", {})
    if intervals:
        main.add_column("95% interval", justify="right")
        main.caption += f"; intervals: {metrics.get('interval_method')}"
    for key, value in values.items():
        interval = intervals.get(key)
        shown = f"[{fmt(interval[0])}, {fmt(interval[1])}]" if interval else "-"
        extra = [shown] if intervals else []
        main.add_row(key, fmt(value), *extra)
    return main


def scalar_table(metrics: dict) -> Table:
    """Any task's scalar test metrics with their 95% intervals (``Task.metrics_table``'s
    default): one row per number of ``metrics.json`` (``metric_scalars``)."""
    return main_table(metrics, metric_scalars(metrics))


def cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def band(value: object, interval: list | None) -> str:
    """ "0.9582 [0.9463, 0.9701]"; the value alone without an interval ("-" if None)."""
    text = cell(value) if value is not None else "-"
    return f"{text} [{cell(interval[0])}, {cell(interval[1])}]" if interval else text


def table_html(rows: list[tuple], header: tuple | None = None) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header) if header else ""
    body = "".join("<tr>" + "".join(f"<td>{html.escape(cell(c))}</td>" for c in row)
                   + "</tr>" for row in rows)
    return f"<table>{f'<tr>{head}</tr>' if head else ''}{body}</table>"


def interval_note(metrics: dict) -> str:
    return (f"<p class='note'>[intervals: {html.escape(metrics['interval_method'])}]</p>"
            if metrics.get("intervals") else "")


def band_of(metrics: dict, key: str, value: object) -> str:
    return band(value, metrics.get("intervals", {}).get(key))


def scalar_metrics_html(metrics: dict) -> str:
    """Any task's scalar test metrics with intervals (``Task.report_metrics``' default)."""
    return table_html([(n, band_of(metrics, n, v)) for n, v in metric_scalars(metrics).items()],
                  ("metric", "value [95% interval]")) + interval_note(metrics)


def _baseline_rows(metrics: dict) -> list[tuple[str, object, list | None, object, list | None]]:
    """(metric, model value, its interval, baseline value, its interval) for the
    metrics the block names (``shown``: the task's metric and the ones compare judges by)."""
    base = metrics["baseline"]
    ours, theirs = metrics.get("intervals", {}), base["intervals"]
    return [(k, metrics[k], ours.get(k), base[k], theirs.get(k))
            for k in base["shown"] if k in metrics]


def baseline_caption(metrics: dict) -> str:
    """What the baseline is, what validation chose, and the paired difference.

    >>> text = baseline_caption({"baseline": {"name": "1-NN Euclidean",
    ...     "chosen": {"znorm": True}, "seconds": 0.4, "difference": {"metric": "accuracy",
    ...     "model_minus_baseline": 0.05, "interval": [0.01, 0.09]}}})
    >>> text.split("; ")[:2]
    ['baseline: 1-NN Euclidean (znorm True', 'chosen on validation), 0.4 s']
    >>> text.split("; ")[2].split(" (paired")[0]
    'model - baseline accuracy: +0.0500 [+0.0100, +0.0900]'
    """
    base = metrics["baseline"]
    chosen = ", ".join(f"{k} {v}" for k, v in base["chosen"].items())
    diff = base["difference"]
    low, high = diff["interval"]
    return (f"baseline: {base['name']} ({chosen}; chosen on validation), "
            f"{base['seconds']:.1f} s; model - baseline {diff['metric']}: "
            f"{diff['model_minus_baseline']:+.4f} [{low:+.4f}, {high:+.4f}] "
            "(paired bootstrap over the same test rows)")


def baseline_table(metrics: dict) -> Table:
    """The model beside the task's baseline on the same test rows, with intervals."""
    table = Table(title="Model vs baseline (same split, same test rows)",
                  caption=baseline_caption(metrics), min_width=60)
    for col in ("metric", "model", "baseline"):
        table.add_column(col, justify="left" if col == "metric" else "right")
    for name, ours, ours_band, theirs, theirs_band in _baseline_rows(metrics):
        table.add_row(name, with_interval(ours, ours_band), with_interval(theirs, theirs_band))
    return table


def baseline_html(metrics: dict) -> str:
    """``baseline_table`` for the report page."""
    rows = [(name, band(ours, ours_band), band(theirs, theirs_band))
            for name, ours, ours_band, theirs, theirs_band in _baseline_rows(metrics)]
    return (table_html(rows, ("metric", "model", "baseline"))
            + f"<p class='note'>{html.escape(baseline_caption(metrics))}</p>")
