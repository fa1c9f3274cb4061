"""The recommendation task's test metrics, their per-user form for the bootstrap, and its
prediction tables.

A validation or test row's ``y`` holds the event's item index (column 0), its history's
index (column 1) and, per baseline (``recommend_baselines.BASELINES``), the baseline's
rank of the item and its top 20 items; the model's ranks come from its outputs.

The bootstrap resamples users (``per_user``): each user becomes one row holding, for the
model and each baseline, the number of their test events and the sums of each event
metric, so a resample's metrics are sums over the drawn users (micro averages over their
events). Catalog coverage has no interval: it is a union over users, and a resample
(users drawn with repeats, so fewer distinct ones) covers less by construction.

>>> import torch
>>> from grutune.data.cache import SequenceData
>>> y = torch.zeros((2, 2 + 3 * 21), dtype=torch.int64); y[:, 1] = torch.tensor([0, 1])
>>> out = torch.tensor([[0.0, -1.0, -2.0], [-1.0, 0.0, -2.0]]).log_softmax(-1)
>>> data = SequenceData(torch.ones((2, 1), dtype=torch.int64), torch.ones(2), y)
>>> state = {"items": ["a", "b", "c"], "popularity": [3, 2, 1]}
>>> evaluate_events(out, data, state)["hr_10"], user_scalars(*per_user(out, data, state))["hr_10"]
(1.0, 1.0)
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from grutune.data.cache import SequenceData
from grutune.metrics.ranking import (
    COVERAGE_K,
    CUTOFFS,
    MISS,
    event_values,
    hit_curve,
    ranking_metrics,
    ranks_and_top,
)
from grutune.tasks.recommend_baselines import BASELINES

BASE_COLUMNS = 1 + COVERAGE_K
HISTORY_BINS = (1, 11, 26, 51, 101, 251)  # history lengths of the report, lower bounds
DEFAULT_TOP = 10  # items per history ``grutune predict`` lists without --top
SHOWN_TOP = 10  # the model's top items written per test event in test_predictions.csv


def baseline_columns(y: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per baseline: (its rank of each event's item [N], its top items [N, 20])."""
    out = {}
    for i, name in enumerate(BASELINES):
        block = y[:, 2 + i * BASE_COLUMNS:2 + (i + 1) * BASE_COLUMNS]
        out[name] = (block[:, 0], block[:, 1:])
    return out


def evaluate_events(outputs: Tensor, data: SequenceData, state: dict) -> dict:
    """Test metrics of the model and its baselines on the same events, HR@K curves, the
    popularity of what each recommends and accuracy by history length."""
    n_items = len(state["items"])
    ranks, top = ranks_and_top(outputs, data.y[:, 0], COVERAGE_K)
    y = data.y.numpy()
    methods = {"model": (ranks.numpy(), top.numpy()), **baseline_columns(y)}
    out = ranking_metrics(*methods["model"], n_items)
    out["users"], out["n_items"] = int(len(np.unique(y[:, 1]))), n_items
    out["baselines"] = {name: ranking_metrics(r, t, n_items)
                        for name, (r, t) in methods.items() if name != "model"}
    out["hr_at_k"] = {name: hit_curve(r) for name, (r, _) in methods.items()}
    popularity = np.asarray(state["popularity"], dtype=np.float64)
    known = y[:, 0] >= 0
    out["popularity_of_recommended"] = {
        **{name: round(float(popularity[t].mean()), 3) for name, (_, t) in methods.items()},
        "test items": round(float(popularity[y[known, 0]].mean()), 3) if known.any() else 0.0}
    out["by_history_length"] = _by_history(methods, data.lengths.numpy())
    return out


def _by_history(methods: dict, lengths: np.ndarray) -> list[dict]:
    """HR@10 and NDCG@10 of each method per bin of history length."""
    bounds = [*HISTORY_BINS, np.inf]
    rows = []
    for low, high in zip(bounds[:-1], bounds[1:], strict=True):
        inside = (lengths >= low) & (lengths < high)
        if not inside.any():
            continue
        label = f"{low}-{int(high) - 1}" if np.isfinite(high) else f"{low}+"
        row = {"history": label, "n": int(inside.sum())}
        for name, (r, _) in methods.items():
            values = event_values(r[inside])
            row[name] = {k: round(float(values[k].mean()), 6) for k in ("hr_10", "ndcg_10")}
        rows.append(row)
    return rows


def _user_block(ranks: np.ndarray, users: np.ndarray, n_users: int) -> np.ndarray:
    """[U, 1 + metrics]: each user's events and the sums of each event metric."""
    sums = [np.bincount(users, weights=v, minlength=n_users)
            for v in event_values(ranks).values()]
    return np.column_stack([np.bincount(users, minlength=n_users), *sums])


def per_user(outputs: Tensor, data: SequenceData, state: dict) -> tuple[Tensor, SequenceData]:
    """(model [U, 1, W], data with y [U, baselines, W]): one row per user of ``data``."""
    ranks, _ = ranks_and_top(outputs, data.y[:, 0], k=0)
    y = data.y.numpy()
    _, users = np.unique(y[:, 1], return_inverse=True)
    n_users = int(users.max(initial=-1)) + 1
    model = _user_block(ranks.numpy(), users, n_users)
    bases = np.stack([_user_block(r, users, n_users) for r, _ in baseline_columns(y).values()],
                     axis=1)
    return torch.from_numpy(model[:, None, :]), SequenceData(
        torch.zeros((n_users, 1), dtype=torch.int64), torch.ones(n_users, dtype=torch.int64),
        torch.from_numpy(bases))


def _block_scalars(block: np.ndarray) -> dict[str, float]:
    """The metrics of the users in ``block`` [U, W] (``_user_block`` rows)."""
    events = max(block[:, 0].sum(), 1.0)
    return {name: float(block[:, 1 + i].sum() / events) for i, name in enumerate(CUTOFFS)}


def user_scalars(outputs: Tensor, data: SequenceData) -> dict[str, float]:
    """The scalar metrics with intervals (model, and ``baselines.NAME.KEY``) of per-user
    rows (``per_user``)."""
    out = _block_scalars(outputs[:, 0].numpy())
    for i, name in enumerate(BASELINES):
        for key, value in _block_scalars(data.y[:, i].numpy()).items():
            out[f"baselines.{name}.{key}"] = value
    return out


def top_table(outputs: Tensor, state: dict) -> pd.DataFrame:
    """Per row of ``outputs`` [N, V] (log-probabilities): its top ``state['top']`` items,
    best first: row, rank (1 = first), item, score (probability); seen items never."""
    items = np.asarray(state["items"], dtype=object)
    k = min(int(state.get("top") or DEFAULT_TOP), len(items))
    _, top = ranks_and_top(outputs, torch.full((len(outputs),), -1), k)
    score = outputs.double().gather(1, top).exp().numpy()  # [N, k]
    table = pd.DataFrame({"row": np.repeat(np.arange(len(outputs)), k),
                          "rank": np.tile(np.arange(1, k + 1), len(outputs)),
                          "item": items[top.numpy().ravel()], "score": score.ravel()})
    return table[table["score"] > 0].reset_index(drop=True)


def event_table(outputs: Tensor, prepared: object) -> pd.DataFrame:
    """test_predictions.csv: per test event its history's columns, item and data row,
    history length, the model's and each baseline's rank of the item (1 = first; blank:
    a miss, an item outside the catalog or seen before) and the model's top 10 (a JSON
    list of item names, best first)."""
    test = prepared.test
    ranks, top = ranks_and_top(outputs, test.y[:, 0], SHOWN_TOP)
    table = prepared.test_frame.reset_index(drop=True).copy()
    table["history"] = test.lengths.numpy()
    columns = {"model": ranks.numpy(), **{name: r for name, (r, _) in
                                          baseline_columns(test.y.numpy()).items()}}
    for name, r in columns.items():
        table["rank" if name == "model" else f"rank_{name}"] = np.where(
            r < MISS, r + 1.0, np.nan)
    items = np.asarray(prepared.state["items"], dtype=object)
    # a JSON list: item names may hold spaces, commas or quotes ("The Matrix (1999)")
    table["top_10"] = [json.dumps([str(i) for i in row], ensure_ascii=False)
                       for row in items[top.numpy()]]
    return table
