"""The search-space linter: settings that do nothing or waste budget, said before a study.

Each rule looks at the space (its ranges and choices), the study settings and the data's
summary, and returns a sentence that says what is wrong and what to change. Warnings
never stop a run.

>>> from grutune.config import StudyConfig
>>> from grutune.tasks import default_space
>>> space = default_space("text").apply({"num_layers": 1, "layer_dropout": 0.3})
>>> lint(space, StudyConfig(max_epochs=20), {"rows": {"train": 1000}})[0][:40]
'layer_dropout is set but num_layers is a'
"""

from __future__ import annotations

import math

from grutune.config import StudyConfig
from grutune.search_space import Param, Space


def _values(p: Param) -> list:
    """Every value a parameter can take: its choices, its range ends, or its fixed value."""
    if p.kind in ("float", "int"):
        return [p.low, p.high]
    return list(p.choices)


def _high(space: Space, name: str) -> float | None:
    return max(_values(space[name])) if name in space.params else None


def lint(space: Space, cfg: StudyConfig, summary: dict) -> list[str]:
    """Warnings about ``space`` for this study (empty when nothing is off)."""
    out = []
    if "layer_dropout" in space.named and _high(space, "num_layers") == 1:
        out.append("layer_dropout is set but num_layers is always 1: dropout between layers "
                   "does nothing with a single layer; allow num_layers: [1, 2] or drop "
                   "layer_dropout from the space file")
    warmup = _high(space, "warmup_epochs")
    if warmup is not None and warmup >= cfg.max_epochs:
        out.append(f"warmup_epochs reaches {warmup:g} but --max-epochs is {cfg.max_epochs}: "
                   "such trials never train at their peak learning rate; lower warmup_epochs "
                   "or raise --max-epochs")
    schedules = set(_values(space["schedule"])) if "schedule" in space.params else set()
    patience = _high(space, "patience")
    if "cosine" in schedules and patience is not None and cfg.max_epochs > 5 * patience:
        out.append(f"cosine annealing spans --max-epochs {cfg.max_epochs}, but early stopping "
                   f"(patience <= {patience:g}) usually ends a trial long before: its rate "
                   "barely decays; lower --max-epochs or raise patience")
    if "exponential" in schedules and "exp_gamma" in space.params:
        gamma = min(_values(space["exp_gamma"]))
        vanish = math.log(1e-3) / math.log(gamma) if 0 < gamma < 1 else math.inf
        if vanish < cfg.max_epochs / 4:
            out.append(f"exponential decay with exp_gamma {gamma:g} cuts the rate to 0.1% by "
                       f"epoch {vanish:.0f}, a quarter of --max-epochs {cfg.max_epochs}: "
                       "later epochs learn nothing; raise exp_gamma's low end")
    train = summary.get("rows", {}).get("train")
    batch = _high(space, "batch_size")
    if train and batch and batch > train:
        out.append(f"batch_size reaches {batch:g} but the training split has {train} rows: "
                   "such a batch is the whole split (one step per epoch); list smaller sizes")
    steps = summary.get("steps", {}).get("train")
    lookback = _high(space, "lookback")
    if steps and lookback and lookback > steps / 2:
        out.append(f"lookback reaches {lookback:g} steps but the training part has {steps}: "
                   "long windows leave few training windows; list shorter lookbacks")
    return out
