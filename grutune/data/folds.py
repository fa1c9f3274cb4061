"""Cross-validation folds for small training sets.

With a few dozen training series, a carved validation part of 8 rows cannot tell
configurations apart (every one scores 100%, or chance decides). Below ``CV_BELOW`` rows
in train + validation, each trial is therefore scored by stratified k-fold
cross-validation on those rows: k models, each early-stopped on its own held-out fold,
and the trial's value is the metric over all out-of-fold predictions together. The k
fold models of the best trials are the final ensemble. The test split is never touched.

>>> resolve_folds(None, n_rows=50), resolve_folds(None, n_rows=5000), resolve_folds(3, 50)
(5, 1, 3)
"""

from __future__ import annotations

import numpy as np

from grutune.data.cache import SequenceData, concat
from grutune.exceptions import ConfigError

CV_BELOW = 500  # rows in train + validation under which trials are cross-validated
DEFAULT_FOLDS = 5


def resolve_folds(requested: int | None, n_rows: int) -> int:
    """The number of folds: the user's, else 5 for small data and 1 (holdout) otherwise."""
    if requested is not None:
        if requested < 1:
            raise ConfigError(f"--folds: must be >= 1 (1 = a single validation split); got "
                              f"{requested}")
        return requested
    return DEFAULT_FOLDS if n_rows < CV_BELOW else 1


def make_folds(train: SequenceData, val: SequenceData, k: int,
               seed: int) -> list[tuple[SequenceData, SequenceData]]:
    """k (train, held-out) pairs over train + val; stratified when targets are classes."""
    pool = concat([train, val])
    y = pool.y.cpu().numpy()
    rows = np.arange(len(pool))
    if y.ndim == 1 and not np.issubdtype(y.dtype, np.floating):
        present = np.bincount(y)
        smallest = int(present[present > 0].min())
        if smallest < k:
            raise ConfigError(f"--folds {k}: the smallest class has {smallest} rows in train "
                              f"+ validation; use --folds {max(smallest, 2)} or fewer")
        from sklearn.model_selection import StratifiedKFold

        splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
        pairs = splitter.split(rows, y)
    else:
        from sklearn.model_selection import KFold

        pairs = KFold(n_splits=k, shuffle=True, random_state=seed).split(rows)
    return [(pool.subset(np.sort(a)), pool.subset(np.sort(b))) for a, b in pairs]
