"""Prepared tensors, built once per study and reused by every trial.

A split is three tensors: inputs ``x`` right-padded to the split's longest sequence,
``lengths`` and targets ``y``. Batches are *views chosen by index*, grouped by length so
that little padding is computed, with no per-batch Python collation:

- training: sort by a jittered length (so neighbours vary from epoch to epoch), cut into
  batches, shuffle the batch order;
- evaluation: sort by length once, in a fixed order, so the same rows always form the
  same batches (a saved model reproduces its test predictions bit for bit).

>>> import torch
>>> d = SequenceData(torch.arange(12).view(4, 3), torch.tensor([3, 1, 2, 3]), torch.zeros(4))
>>> [b.x.shape[1] for _, b in d.eval_batches(2)]
[2, 3]
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor


@dataclass(frozen=True)
class Batch:
    x: Tensor  # [B, T] token ids or [B, T, F] values, T = longest length in the batch
    lengths: Tensor  # [B]
    y: Tensor  # [B] class ids, or [B, ...] targets


@dataclass
class SequenceData:
    """One split's tensors: x [N, L(, F)], lengths [N] (>= 1), y [N(, ...)]."""

    x: Tensor
    lengths: Tensor
    y: Tensor

    def __post_init__(self) -> None:
        # Batch widths are read on the host; keep a NumPy copy of the lengths.
        self._lengths_np = self.lengths.cpu().numpy()

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def to(self, device: torch.device | str) -> SequenceData:
        return SequenceData(self.x.to(device), self.lengths.to(device), self.y.to(device))

    def on(self, device: torch.device) -> SequenceData:
        """These tensors on ``device``: this object where they already are, else a copy
        made on first use and kept, so every trial of a process reuses it (batches are
        indices into it there, as on the CPU).

        >>> d = SequenceData(torch.zeros(2, 3), torch.tensor([3, 1]), torch.zeros(2))
        >>> d.on(torch.device("cpu")) is d
        True
        """
        if self.x.device == device:
            return self
        copies = self.__dict__.setdefault("_copies", {})
        if str(device) not in copies:
            with torch.inference_mode(False):  # first asked by predict: still trainable
                copies[str(device)] = self.to(device)
        return copies[str(device)]

    def subset(self, index: np.ndarray) -> SequenceData:
        """Rows ``index`` (in that order), cut to their own longest length."""
        width = int(self._lengths_np[index].max())
        idx = torch.as_tensor(index, device=self.x.device)
        return SequenceData(self.x[idx, :width], self.lengths[idx], self.y[idx])

    def batch(self, index: np.ndarray) -> Batch:
        """Rows ``index`` cut to their own longest length."""
        width = int(self._lengths_np[index].max())
        idx = torch.as_tensor(index, device=self.x.device)
        return Batch(self.x[idx, :width], self.lengths[idx], self.y[idx])

    def train_batches(self, batch_size: int, rng: np.random.Generator, jitter: float = 0.1,
                      rows: int = 0) -> Iterator[Batch]:
        """Length-bucketed batches in random order; every row once per epoch, or ``rows``
        rows drawn at random without replacement (0: all)."""
        chosen = (np.sort(rng.choice(len(self), rows, replace=False))
                  if 0 < rows < len(self) else np.arange(len(self)))
        keys = self._lengths_np[chosen] * (1.0 + jitter * rng.random(len(chosen)))
        order = chosen[np.argsort(keys, kind="stable")]
        chunks = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
        for k in rng.permutation(len(chunks)):
            yield self.batch(chunks[k])

    def eval_batches(self, batch_size: int) -> Iterator[tuple[np.ndarray, Batch]]:
        """(row indices, batch) in a fixed length-sorted order."""
        order = np.argsort(self._lengths_np, kind="stable")
        for i in range(0, len(order), batch_size):
            index = order[i:i + batch_size]
            yield index, self.batch(index)


def concat(parts: list[SequenceData]) -> SequenceData:
    """Rows of ``parts`` one after another, right-padded to the widest."""
    width = max(int(p.x.shape[1]) for p in parts)
    xs = []
    for p in parts:
        pad = torch.zeros((p.x.shape[0], width - p.x.shape[1], *p.x.shape[2:]),
                          dtype=p.x.dtype, device=p.x.device)
        xs.append(torch.cat([p.x, pad], dim=1))
    return SequenceData(torch.cat(xs), torch.cat([p.lengths for p in parts]),
                        torch.cat([p.y for p in parts]))


def fingerprint(*parts: object) -> str:
    """A short stable hash of JSON-able parts (data identity + preparation settings).

    >>> fingerprint({"a": 1}) == fingerprint({"a": 1})
    True
    """
    digest = hashlib.sha256()
    for part in parts:
        digest.update(json.dumps(part, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:16]
