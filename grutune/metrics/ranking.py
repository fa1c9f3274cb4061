"""Ranking metrics of next-item recommendation, with full ranking over the catalog.

Every event is scored against every item of the catalog (no sampled negatives); items
the user has already seen carry the score ``-inf`` and rank below every other item. The
order is the score, descending, then the item index, ascending (so ties are broken the
same way everywhere). A target's rank is 0-based: 0 is the first item recommended. A
target outside the catalog, or one the user had already seen, is a miss (rank ``MISS``,
beyond every cut-off, whatever the catalog's size).

Per event, with one target: HR@K = Recall@K = 1 if rank < K; NDCG@K = 1 / log2(rank + 2)
if rank < K; MRR@K = 1 / (rank + 1) if rank < K (else 0). A model's figure is the mean
over events. Catalog coverage@K is the share of the catalog that appears in at least one
event's top K.

>>> import torch
>>> scores = torch.tensor([[0.1, 0.9, 0.5, float("-inf")], [1.0, 1.0, 0.0, 0.0]])
>>> ranks, top = ranks_and_top(scores, torch.tensor([2, 1]), k=2)
>>> ranks.tolist(), top.tolist()
([1, 1], [[1, 2], [0, 1]])
>>> event_values(np.array([0, 1, 30]))["ndcg_10"].round(3).tolist()
[1.0, 0.631, 0.0]
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

# the scalar metrics reported, and the cut-off each uses
CUTOFFS = {"hr_10": 10, "ndcg_10": 10, "recall_20": 20, "mrr_20": 20}
COVERAGE_K = 20
CURVE_K = 50  # HR@K for K = 1..CURVE_K in the report
CHUNK = 1024  # rows ranked at a time (a [CHUNK, n_items] block)
MISS = 2**40  # the rank of a target that cannot be recommended


def ranks_and_top(scores: Tensor, targets: Tensor, k: int = COVERAGE_K) -> tuple[Tensor, Tensor]:
    """Each row's target rank [N] (int64; ``MISS`` for a miss) and top ``k`` items
    [N, k] (int64; k = 0: none, no sort), from scores [N, n_items]; targets [N] are item
    indices, -1 for an item outside the catalog."""
    n, n_items = scores.shape
    ranks = np.empty(n, dtype=np.int64)
    top = torch.empty((n, min(k, n_items)), dtype=torch.int64)
    index = np.arange(n_items)
    for start in range(0, n, CHUNK):
        chunk = scores[start:start + CHUNK].detach()  # [C, V]
        if top.shape[1]:  # k = 0: the ranks alone
            top[start:start + CHUNK] = _top(chunk, top.shape[1])
        s = chunk.numpy()  # NumPy counts comparisons several times faster
        t = targets[start:start + CHUNK].numpy().astype(np.int64)  # [C]
        own = s[np.arange(len(s)), np.maximum(t, 0)][:, None]  # [C, 1]
        above = np.count_nonzero(s > own, axis=1)  # [C]
        tied = np.flatnonzero(np.count_nonzero(s == own, axis=1) > 1)  # rows with ties
        above[tied] += np.count_nonzero((s[tied] == own[tied]) & (index < t[tied, None]),
                                        axis=1)
        miss = (t < 0) | ~np.isfinite(own[:, 0])
        ranks[start:start + CHUNK] = np.where(miss, MISS, above)
    return torch.from_numpy(ranks), top


def _top(scores: Tensor, k: int, spare: int = 32) -> Tensor:
    """The ``k`` first items of each row [C, V] by score, then index (exact under ties,
    without sorting whole rows): [C, k]. The ``k + spare`` best hold every item tied with
    the k-th unless a row has more ties than that; only such rows take the long way."""
    wide = min(k + spare, scores.size(1))
    values, index = torch.topk(scores, wide, dim=1)  # [C, wide], ties in any order
    by_index = torch.sort(index, dim=1).indices  # candidates in index order, then by score
    index, values = index.gather(1, by_index), values.gather(1, by_index)
    order = torch.sort(values, dim=1, descending=True, stable=True).indices[:, :k]
    best = index.gather(1, order)  # [C, k]
    crowded = (values.min(1).values == values.gather(1, order[:, -1:]).squeeze(1))
    if wide < scores.size(1) and bool(crowded.any()):  # ties may reach past the candidates
        best[crowded] = _top_tied(scores[crowded], k)
    return best


def _top_tied(scores: Tensor, k: int) -> Tensor:
    """``_top`` for rows whose ties at the k-th score are many: [C, V] -> [C, k]."""
    threshold = torch.topk(scores, k, dim=1).values[:, -1:]  # [C, 1] the k-th score
    above = scores > threshold  # [C, V]
    level = scores == threshold
    room = k - above.sum(1, keepdim=True)  # [C, 1] places left for the tied
    take = above | (level & (level.cumsum(1) <= room))  # exactly k per row
    index = take.nonzero()[:, 1].view(-1, k)  # [C, k] ascending item index
    order = torch.sort(scores.gather(1, index), dim=1, descending=True, stable=True).indices
    return index.gather(1, order)


def event_values(ranks: np.ndarray) -> dict[str, np.ndarray]:
    """Per event, each metric of ``CUTOFFS`` (float64 arrays of the ranks' length)."""
    ranks = np.asarray(ranks, dtype=np.float64)
    out = {}
    for name, k in CUTOFFS.items():
        hit = ranks < k
        if name.startswith("ndcg"):
            out[name] = np.where(hit, 1.0 / np.log2(ranks + 2.0), 0.0)
        elif name.startswith("mrr"):
            out[name] = np.where(hit, 1.0 / (ranks + 1.0), 0.0)
        else:
            out[name] = hit.astype(np.float64)
    return out


def coverage(top: np.ndarray, n_items: int, k: int = COVERAGE_K) -> float:
    """The share of the catalog in at least one top-``k`` list ([N, >= k] item indices).

    >>> coverage(np.array([[0, 1], [1, 2]]), n_items=8, k=2)
    0.375
    """
    if len(top) == 0:
        return 0.0
    return float((np.bincount(np.asarray(top)[:, :k].ravel(), minlength=n_items) > 0).mean())


def ranking_metrics(ranks: np.ndarray, top: np.ndarray, n_items: int) -> dict[str, float]:
    """The scalar metrics of events with these ranks and top lists (means over events).

    >>> ranking_metrics(np.array([0, 12]), np.array([[0, 1], [2, 3]]), n_items=4)["hr_10"]
    0.5
    """
    values = {name: float(v.mean()) if len(v) else 0.0
              for name, v in event_values(ranks).items()}
    return {"n": int(len(ranks)), **values, "coverage_20": coverage(top, n_items)}


def hit_curve(ranks: np.ndarray, k_max: int = CURVE_K) -> list[float]:
    """HR@K for K = 1..``k_max``.

    >>> hit_curve(np.array([0, 2, 9]), k_max=3)
    [0.333333, 0.333333, 0.666667]
    """
    ranks = np.asarray(ranks)
    counts = np.bincount(ranks[ranks < k_max], minlength=k_max).cumsum()
    return [round(float(c) / max(len(ranks), 1), 6) for c in counts]
