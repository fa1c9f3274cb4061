"""How the recommendation task's metrics are shown: the printed table, the report's
metrics table and its section (HR@K, popularity of what is recommended, accuracy by
history length). Figures read ``metrics.json`` only; their numbers come from the plain
functions here (tested on values).

>>> m = {"hr_at_k": {"model": [0.1, 0.2], "popularity": [0.05, 0.1]}}
>>> curve_rows(m)
[('model', [1, 2], [0.1, 0.2]), ('popularity', [1, 2], [0.05, 0.1])]
"""

from __future__ import annotations

from rich.table import Table

from grutune.render import band_of, fmt, interval_note, model_text, table_html, with_interval

SHOWN = ("hr_10", "ndcg_10", "recall_20", "mrr_20", "coverage_20")
TITLES = {"hr_10": "HR@10", "ndcg_10": "NDCG@10", "recall_20": "Recall@20",
          "mrr_20": "MRR@20", "coverage_20": "coverage@20"}
NAMES = {"model": "GRU (grutune)", "popularity": "most popular",
         "markov": "first-order Markov", "item_knn": "item-kNN"}


def _rows(metrics: dict) -> dict[str, tuple[dict, str]]:
    """name -> (its metrics, its interval prefix): the model, then each baseline."""
    return {"model": (metrics, ""),
            **{name: (m, f"baselines.{name}.") for name, m in
               (metrics.get("baselines") or {}).items()}}


def recommend_table(metrics: dict) -> Table:
    """The model beside its baselines on the same test events, with intervals."""
    table = Table(title="Test next-item ranking (full catalog, seen items excluded)",
                  min_width=60, caption=f"{metrics['n']} test events of "
                  f"{metrics.get('users', '?')} histories, {metrics.get('n_items', '?')} "
                  "items; "
                  f"{model_text(metrics)}")
    table.add_column("recommender")
    for key in SHOWN:
        table.add_column(TITLES[key], justify="right")
    intervals = metrics.get("intervals", {})
    for name, (m, prefix) in _rows(metrics).items():
        table.add_row(NAMES.get(name, name),
                      *(with_interval(m.get(k), intervals.get(prefix + k)) for k in SHOWN))
    if intervals:
        table.caption += f"; [{metrics.get('interval_method')}]"
    return table


def recommend_metrics_html(metrics: dict) -> str:
    """The report's table: model and baselines, each metric with its interval."""
    rows = [(NAMES.get(name, name), *[band_of(metrics, prefix + k, m.get(k)) for k in SHOWN])
            for name, (m, prefix) in _rows(metrics).items()]
    return (table_html(rows, ("recommender", *[TITLES[k] for k in SHOWN]))
            + interval_note(metrics))


def curve_rows(metrics: dict) -> list[tuple[str, list[int], list[float]]]:
    """(name, K, HR@K) for the model and each baseline."""
    return [(name, list(range(1, len(values) + 1)), values)
            for name, values in (metrics.get("hr_at_k") or {}).items()]


def history_rows(metrics: dict, key: str = "ndcg_10") -> list[tuple[str, list[str], list]]:
    """(name, history-length bins, ``key`` per bin) for the model and each baseline.

    >>> history_rows({"by_history_length": [{"history": "1-10", "n": 3,
    ...               "model": {"ndcg_10": 0.2}}]})
    [('model', ['1-10 (3)'], [0.2])]
    """
    bins = metrics.get("by_history_length") or []
    names = [n for n in (bins[0] if bins else {}) if n not in ("history", "n")]
    labels = [f"{b['history']} ({b['n']})" for b in bins]
    return [(name, labels, [b[name].get(key) for b in bins]) for name in names]


def recommend_sections(metrics: dict, figure) -> list[str]:  # noqa: ANN001 - the page's
    """HR@K for K = 1..50, the popularity of recommended items, accuracy by history."""
    import plotly.graph_objects as go  # only when a report is drawn

    out = ["<h2>Recommendation</h2>"]
    fig = go.Figure()
    for name, ks, values in curve_rows(metrics):
        fig.add_trace(go.Scatter(x=ks, y=values, mode="lines", name=NAMES.get(name, name)))
    fig.update_layout(title="HR@K on the test events", xaxis_title="K", yaxis_title="HR@K")
    out.append(figure(fig, 360))
    bias = metrics.get("popularity_of_recommended") or {}
    if bias:
        names = list(bias)
        fig = go.Figure(go.Bar(x=[NAMES.get(n, n) for n in names],
                               y=[bias[n] for n in names]))
        fig.update_layout(title="Mean training popularity (events per item) of the top-20 "
                          "items recommended, and of the test events' items",
                          yaxis_title="training events per item")
        out.append(figure(fig, 340))
    fig = go.Figure()
    for name, labels, values in history_rows(metrics):
        fig.add_trace(go.Bar(x=labels, y=values, name=NAMES.get(name, name)))
    fig.update_layout(title="NDCG@10 by history length (events before the one predicted; "
                      "test events per bin)", xaxis_title="history length", barmode="group")
    out.append(figure(fig, 360))
    out.append(f"<p>catalog: {fmt(metrics.get('n_items'))} items; coverage@20 is the share "
               "of it in at least one test event's top 20.</p>")
    return out
