"""The baselines a next-item GRU must beat, fitted on the users' training events.

- most popular: items by their count in the training parts;
- first-order Markov: items by how often they followed the history's last item in the
  training parts (ties, and a last item never followed, by popularity);
- item-kNN: each item's cosine similarity to the history's items, from co-occurrence in
  the users' training histories (a user's training items as one binary row; each item
  keeps its ``NEIGHBOURS`` most similar), weighted by recency: the item ``a`` steps
  before the event counts ``decay ** a`` (``decay`` chosen on validation).

Each scores every item of the catalog for each event from the event's history (the
``x`` of a validation or test row: item ids, 1-based), with the history's items at
``-inf``, so they are ranked exactly as the model is (``metrics.ranking``).

>>> stats = fit_stats([np.array([0, 1, 2]), np.array([0, 1])], n_items=4)
>>> stats.popularity.tolist(), stats.transitions.toarray()[0].tolist()
([2.0, 2.0, 1.0, 0.0], [0.0, 2.0, 0.0, 0.0])
>>> x, n = torch.tensor([[1, 0]]), torch.tensor([1])
>>> scores(stats, "markov", x, n)[0].tolist()
[-inf, 8.0, 1.0, 0.0]
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

BASELINES = ("popularity", "markov", "item_knn")
NEIGHBOURS = 200  # most similar items each item keeps (item-kNN)
DECAYS = (0.5, 0.7, 0.8, 0.9)  # item-kNN recency decays tried on validation
MAX_RECENT = 200  # history items item-kNN reads at most
TIE = 1e-9  # item-kNN: popularity breaks ties between equal similarities (and zeros)


@dataclass
class ItemStats:
    """What the baselines learn from the training events."""

    n_items: int
    popularity: np.ndarray  # [V] training events per item
    transitions: sp.csr_matrix  # [V, V] times item j followed item i
    similarity: sp.csr_matrix  # [V, V] cosine, each row's NEIGHBOURS largest


def fit_stats(sequences: list[np.ndarray], n_items: int,
              neighbours: int = NEIGHBOURS) -> ItemStats:
    """The statistics of training sequences (item indices, 0-based, in time order)."""
    items = np.concatenate(sequences) if sequences else np.zeros(0, dtype=np.int64)
    popularity = np.bincount(items, minlength=n_items).astype(np.float64)
    pairs = [(s[:-1], s[1:]) for s in sequences if len(s) > 1]
    src = np.concatenate([p[0] for p in pairs]) if pairs else np.zeros(0, dtype=np.int64)
    dst = np.concatenate([p[1] for p in pairs]) if pairs else np.zeros(0, dtype=np.int64)
    transitions = sp.csr_matrix((np.ones(len(src)), (src, dst)), shape=(n_items, n_items))
    users = np.repeat(np.arange(len(sequences)), [len(s) for s in sequences])
    rows = sp.csr_matrix((np.ones(len(items)), (users, items)),
                         shape=(len(sequences), n_items))
    rows.data[:] = 1.0  # a user's item counts once
    return ItemStats(n_items, popularity, transitions, _cosine(rows, neighbours))


def _cosine(rows: sp.csr_matrix, neighbours: int) -> sp.csr_matrix:
    """Item-item cosine of the columns of a binary user x item matrix, each row cut to
    its ``neighbours`` largest (the diagonal dropped)."""
    co = (rows.T @ rows).tocsr()  # [V, V] co-occurrence counts
    norm = np.sqrt(co.diagonal())
    co.setdiag(0)
    co.eliminate_zeros()
    co = sp.diags(1 / np.maximum(norm, 1e-12)) @ co @ sp.diags(1 / np.maximum(norm, 1e-12))
    co = co.tocsr()
    keep_rows, keep_cols, keep_vals = [], [], []
    for i in range(co.shape[0]):  # one row at a time: a large catalog never goes dense
        start, end = co.indptr[i], co.indptr[i + 1]
        cols, vals = co.indices[start:end], co.data[start:end]
        if len(vals) > neighbours:
            best = np.argpartition(-vals, neighbours - 1)[:neighbours]
            cols, vals = cols[best], vals[best]
        keep_rows.append(np.full(len(cols), i))
        keep_cols.append(cols)
        keep_vals.append(vals)
    shape = co.shape
    return sp.csr_matrix((np.concatenate(keep_vals), (np.concatenate(keep_rows),
                                                      np.concatenate(keep_cols))), shape=shape)


def scores(stats: ItemStats, name: str, x: Tensor, lengths: Tensor,
           decay: float = 0.8) -> Tensor:
    """[N, V] float64 scores of baseline ``name`` for histories x [N, T] (ids 1..V, 0
    padding, V + 1 an item outside the catalog), the history's items at -inf."""
    v = stats.n_items
    pop = stats.popularity
    if name == "popularity":
        out = np.broadcast_to(pop, (len(x), v)).copy()
    elif name == "markov":
        last = x[torch.arange(len(x)), lengths - 1].numpy() - 1  # [N] 0-based
        known = (last >= 0) & (last < v)
        counts = stats.transitions[np.where(known, last, 0)].toarray()  # [N, V]
        counts[~known] = 0.0
        out = counts * (pop.max() + 1) + pop  # followers first, then by popularity
    elif name == "item_knn":
        out = np.asarray((_recent_weights(x, lengths, v, decay) @ stats.similarity).todense())
        out += TIE * pop / (pop.max() + 1)
    else:
        raise ValueError(f"unknown baseline {name!r}; one of {', '.join(BASELINES)}")
    ids = x.numpy()
    rows, cols = np.nonzero((ids >= 1) & (ids <= v))  # the history's catalog items
    out[rows, ids[rows, cols] - 1] = -np.inf
    return torch.from_numpy(out)


def _recent_weights(x: Tensor, lengths: Tensor, n_items: int, decay: float) -> sp.csr_matrix:
    """[N, V] sparse: each history's last items weighted ``decay ** age`` (age 0: the
    last item), items outside the catalog left out."""
    recent = min(MAX_RECENT, max(1, math.ceil(math.log(1e-3) / math.log(decay))))
    width = int(min(recent, x.shape[1]))
    age = np.arange(width)  # [W] 0 = the last item
    pos = lengths.numpy()[:, None] - 1 - age[None, :]  # [N, W]
    valid = pos >= 0
    ids = np.take_along_axis(x.numpy(), np.maximum(pos, 0), axis=1) - 1  # [N, W]
    valid &= (ids >= 0) & (ids < n_items)
    rows = np.broadcast_to(np.arange(len(x))[:, None], pos.shape)
    weights = np.broadcast_to(decay ** age, pos.shape)
    return sp.csr_matrix((weights[valid], (rows[valid], ids[valid])), shape=(len(x), n_items))
