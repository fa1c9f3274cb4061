"""Events -> per-user histories -> the recommendation task's tensors.

An event is one row: a user (``--user``; with ``--session`` the history is a session of
that user, or of nobody in particular without ``--user``), an item (``--item``) and a
time (``--time``; without it the file's row order). Each history's events are sorted by
time, ties by item (numerically when every item is a whole number), and split in time,
70/15/15 of its own events (rounded half to even): train, then validation, then test.

Tensors (``SequenceData``; item ids are 1-based, 0 pads, ``V + 1`` is an item outside
the catalog, which is the items of the training parts):

- train: each history's training events as windows of ``window`` steps: x [N, W] the
  items, y [N, W] the next item's index at each step (-1 where there is none: the last
  training event's successor is a validation event, never a training target);
- validation / test: one row per event: x [N, T] every earlier event of its history
  (training, validation and earlier test events alike), y [N, C] with the event's item
  index (-1 outside the catalog) in column 0 and its history's index in column 1 (the
  task appends each baseline's rank and top items).

>>> frame = pd.DataFrame({"u": ["a"] * 7, "i": [5, 3, 4, 1, 2, 6, 7], "t": range(7)})
>>> events = read_events(frame, Columns("u", "i", "t"), "x.csv")
>>> parts(events.groupby("key").size().to_numpy(), 0.15, 0.15)
(array([5]), array([1]))
>>> train_windows([np.array([0, 1, 2, 3])], window=2)[1].tolist()
[[1, 2], [3, -1]]
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from grutune.data.readers import require_columns, show
from grutune.data.times import time_keys
from grutune.exceptions import DataError

KEY_SEP = "\x1f"  # joins a user and a session into one history key


@dataclass(frozen=True)
class Columns:
    """The event table's columns (names as the user gave them; None: not given)."""

    user: str | None
    item: str
    time: str | None
    session: str | None = None

    @property
    def keys(self) -> list[str]:
        """The columns that name a history: user, session, or both."""
        return [c for c in (self.user, self.session) if c is not None]


def _names(values: pd.Series, column: str, source: str, role: str) -> pd.Series:
    """Cells as names (text as written; whole numbers without ``.0``); DataError at the
    first missing one."""
    missing = values.isna() | values.astype(str).str.strip().eq("")
    if missing.any():
        row = int(np.flatnonzero(missing.to_numpy())[0]) + 1
        raise DataError(f"{source}: {role} column {column!r} is empty in data row {row}; "
                        f"every event needs {'an' if role[0] in 'aeiou' else 'a'} {role}")
    if pd.api.types.is_float_dtype(values):
        numbers = values.to_numpy(np.float64)
        # whole numbers that int64 holds exactly are written without ".0"; inf and
        # 1e19 are not ids (a cast would make every such id the same item)
        bad = ~np.isfinite(numbers) | (np.abs(numbers) > 2.0**53)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataError(f"{source}: {role} column {column!r} has the value "
                            f"{show(values.iloc[row])} in data row {row + 1}; a numeric "
                            f"{role} id must be a finite number under 2**53 (write ids as "
                            "text to keep larger ones)")
        if (numbers == np.round(numbers)).all():
            values = values.astype(np.int64)
    return values.astype(str)


def item_order(names: pd.Series | np.ndarray) -> np.ndarray:
    """Sort keys of item names: whole numbers by value when every name is one, else the
    names as text.

    >>> item_order(pd.Series(["10", "9"])).tolist(), item_order(pd.Series(["b", "a"])).tolist()
    ([10, 9], ['b', 'a'])
    """
    names = pd.Series(names).astype(str)
    if names.map(lambda s: re.fullmatch(r"-?[0-9]{1,18}", s) is not None).all():
        return names.astype(np.int64).to_numpy()
    return names.to_numpy(dtype=object)


def read_events(frame: pd.DataFrame, cols: Columns, source: str) -> pd.DataFrame:
    """[row, key, <key columns>, item, time] sorted by history, time, then item; DataError
    naming the file, column, row and rule for a missing column or value or a bad time."""
    require_columns(frame, [*cols.keys, cols.item] + ([cols.time] if cols.time else []),
                    source)
    if not len(frame):
        raise DataError(f"{source}: no events")
    out = pd.DataFrame({"row": np.arange(1, len(frame) + 1)})
    for column in cols.keys:
        out[column] = _names(frame[column].reset_index(drop=True), column, source,
                             "user" if column == cols.user else "session").to_numpy()
    out["key"] = out[cols.keys].agg(KEY_SEP.join, axis=1) if len(cols.keys) > 1 else \
        out[cols.keys[0]]
    out["item"] = _names(frame[cols.item].reset_index(drop=True), cols.item, source,
                         "item").to_numpy()
    out["time"] = (time_keys(frame[cols.time], cols.time, source, "event")
                   if cols.time else np.arange(len(frame), dtype=np.float64))
    out["_order"] = item_order(out["item"])
    out = out.sort_values(["key", "time", "_order"], kind="stable").drop(columns="_order")
    return out.reset_index(drop=True)


def parts(counts: np.ndarray, val_fraction: float, test_fraction: float
          ) -> tuple[np.ndarray, np.ndarray]:
    """Per history of ``counts`` events: (training events, validation events); the rest
    are test. Validation and test are each ``fraction`` of the events, rounded half to
    even (a history of 3 events is all training)."""
    n_test = np.round(counts * test_fraction).astype(np.int64)
    n_val = np.round(counts * val_fraction).astype(np.int64)
    return counts - n_val - n_test, n_val


def train_windows(sequences: list[np.ndarray], window: int) -> tuple[torch.Tensor, torch.Tensor,
                                                                      torch.Tensor]:
    """(x [N, W] item ids, y [N, W] next-item indices or -1, lengths [N]) of training
    sequences (0-based item indices), cut into windows of ``window`` steps."""
    xs, ys = [], []
    for s in sequences:
        for start in range(0, len(s) - 1, window):
            xs.append(s[start:start + window][: len(s) - 1 - start] + 1)
            ys.append(s[start + 1:start + window + 1])
    lengths = np.array([len(x) for x in xs], dtype=np.int64)
    x = np.zeros((len(xs), window), dtype=np.int32)
    y = np.full((len(xs), window), -1, dtype=np.int64)
    for i, (a, b) in enumerate(zip(xs, ys, strict=True)):
        x[i, :len(a)], y[i, :len(b)] = a, b
    return torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(lengths)


def history_rows(ids: list[np.ndarray], positions: list[np.ndarray]
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """(x [N, T] histories, lengths [N]): for each history's events at ``positions``,
    every id before it (``ids``: a history's item ids, 1-based)."""
    lengths = np.concatenate(positions) if positions else np.zeros(0, dtype=np.int64)
    width = int(max(lengths.max(initial=1), 1))
    x = np.zeros((len(lengths), width), dtype=np.int32)
    row = 0
    for seq, pos in zip(ids, positions, strict=True):
        if not len(pos):
            continue
        top = int(pos.max())
        block = np.broadcast_to(seq[:top], (len(pos), top))
        x[row:row + len(pos), :top] = np.where(np.arange(top) < pos[:, None], block, 0)
        row += len(pos)
    return torch.from_numpy(x), torch.from_numpy(lengths.astype(np.int64))
