"""Recommendation: a user's next item from their history (GRU4Rec), ranked over every item.

Data flow (``prepare``): events (user, item, time; ``recommend_data``) -> each history
sorted in time and split 70/15/15 in time (train, validation, test) -> the catalog is the
training parts' items -> training windows (next item at every step) and one validation
or test row per event (its whole earlier history) -> the baselines (most popular,
first-order Markov, item-kNN; ``recommend_baselines``) fitted on the training parts, the
kNN's recency decay chosen on validation, and each one's rank of every validation and
test event kept beside the event's target (``y``), so the metrics, their bootstrap over
users and the report show them beside the model on the same events.

Scoring is full ranking over the catalog with the history's items excluded
(``metrics.ranking``): HR@10, NDCG@10, Recall@20, MRR@20 (means over events) and catalog
coverage@20; 95% intervals resample users (coverage, a union over users, has none).
Trials are scored by validation NDCG@10 (``--metric recall_20|hr_10|mrr_20``). The model
is fitted on training parts only.

>>> Recommendation().default_space({})["history"].choices
(50, 100)
"""

from __future__ import annotations

import logging
import math
import time

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from grutune.config import CELLS, INITS, OPTIMIZERS, DataConfig, ModelConfig
from grutune.data.cache import SequenceData
from grutune.data.datasets import get_dataset
from grutune.data.readers import read_table, show
from grutune.exceptions import ConfigError, DataError
from grutune.manifest_checks import Checker, is_int, is_str_list
from grutune.metrics.ranking import (
    COVERAGE_K,
    CUTOFFS,
    event_values,
    ranks_and_top,
)
from grutune.nn import next_item  # noqa: F401 - registers the next_item model kinds
from grutune.nn.trainer import predict
from grutune.search_space import (
    POSITIVE,
    UNIT,
    Space,
    choice_param,
    fixed_param,
    float_param,
    int_param,
    training_params,
    with_params,
)
from grutune.tasks.base import Prepared, Task
from grutune.tasks.baselines import Baseline
from grutune.tasks.recommend_baselines import BASELINES, DECAYS, ItemStats, fit_stats, scores
from grutune.tasks.recommend_data import (
    Columns,
    history_rows,
    item_order,
    parts,
    read_events,
    train_windows,
)
from grutune.tasks.recommend_views import (
    recommend_metrics_html,
    recommend_sections,
    recommend_table,
)

log = logging.getLogger("grutune")

RANKING_SCORES = tuple(CUTOFFS)  # validation metrics a study may optimize (all maximized)
# y columns of a validation or test row: target, history index, then per baseline its
# rank of the target and its top COVERAGE_K items
BASE_COLUMNS = 1 + COVERAGE_K


def _base_slice(i: int) -> slice:
    return slice(2 + i * BASE_COLUMNS, 2 + (i + 1) * BASE_COLUMNS)


class Recommendation(Task):
    """Histories of item ids -> the next item, scored over the whole catalog."""

    name = "recommend"
    options = frozenset({"user_column", "item_column", "session_column", "time_column"})
    prediction_rows = "recommends items per history (the user column is already there)"
    direction = "maximize"
    combine = "mean"  # members' log-probabilities averaged (a seen item stays at -inf)
    verdict_metrics = {"ndcg_10": "maximize", "recall_20": "maximize", "hr_10": "maximize",
                       "mrr_20": "maximize"}
    test_unit = "users"
    uses_folds = False  # events of one history are not exchangeable
    refits = False  # the model is fitted on the training parts only
    default_max_epochs = 20

    def __init__(self, metric: str = "ndcg_10"):
        if metric not in RANKING_SCORES:
            raise ConfigError(f"--metric: a recommender is scored by one of "
                              f"{', '.join(RANKING_SCORES)}; got {metric!r}")
        self.metric = metric

    @classmethod
    def check_state(cls, state: dict, config: ModelConfig, check: Checker) -> None:
        """Items (distinct names, one per output), the columns, the window."""
        items = state.get("items")
        check.require(is_str_list(items) and len(items) >= 2, "state.items",
                      "a list of at least 2 item names", items)
        check.require(len(set(items)) == len(items), "state.items", "distinct", items)
        check.require(len(items) == config.num_outputs and config.vocab_size == len(items) + 2
                      and config.kind in ("next_item", "next_item_tied"), "state.items",
                      f"one per model output ({config.num_outputs}) of a next_item model",
                      items)
        for key in ("item_column",):
            check.require(isinstance(state.get(key), str), f"state.{key}", "a string",
                          state.get(key))
        for key in ("user_column", "time_column", "session_column"):
            check.require(state.get(key) is None or isinstance(state[key], str),
                          f"state.{key}", "a string or null", state.get(key))
        check.require(state.get("user_column") or state.get("session_column"),
                      "state.user_column", "given (or a session column)")
        check.require(is_int(state.get("window")) and state["window"] >= 1, "state.window",
                      "a whole number >= 1", state.get("window"))
        popularity = state.get("popularity")
        check.require(isinstance(popularity, list) and len(popularity) == len(items)
                      and all(is_int(v) and v >= 0 for v in popularity), "state.popularity",
                      "a count per item", popularity)

    # --- words ---------------------------------------------------------------------

    def describe_data(self, summary: dict) -> str:
        return f"Tuning a GRU next-item recommender on {summary['source']}: " \
               f"{summary['description']}."

    def plan_phrases(self, summary: dict) -> tuple[str, str]:
        return (f", scored by validation {self.metric} (full ranking)",
                "evaluated on the untouched test events beside the most-popular, "
                "first-order Markov and item-kNN baselines,")

    def metrics_table(self, metrics: dict) -> object:
        return recommend_table(metrics)

    def report_metrics(self, metrics: dict) -> str:
        return recommend_metrics_html(metrics)

    def report_summary_rows(self, summary: dict) -> list[tuple[str, object]]:
        return [("events", summary["description"])] if summary.get("description") else []

    def report_sections(self, run: object, figure: object) -> list[str]:
        return recommend_sections(run.metrics, figure) if "hr_at_k" in run.metrics else []

    # --- the search space ------------------------------------------------------------

    def default_space(self, context: dict) -> Space:
        """Shape, dropouts and history length on top of the common training factors.

        The defaults (the first trial) were measured one at a time on movielens'
        validation part (one seed, one trial each, bench/RESULTS.md): embedding 64,
        history 50, lr 3e-3 constant, no clipping gave NDCG@10 0.0409; lr 5e-3 cosine,
        history 100, clipping 1.0 0.0460 (with dropouts 0.15/0.4); embedding 128 0.0485;
        the same with a constant rate 0.0465; with dropouts 0.3/0.3 0.0512 (the
        defaults). The ranges are narrowed to where the trials of three 10-minute runs
        did well: a 10-minute search makes only 5-6 trials of 2-6 minutes each, and the
        wide space's (SGD and RMSprop, embeddings of 32, rates from 5e-4, batches of 16,
        histories of 20) reached 0.020-0.036 in 8 of 11 and crowded the ensemble."""
        common = with_params(
            training_params(),
            # SGD (lr 2e-3, momentum 0.88) learnt popularity only in 20 epochs, 414 s of
            # a 10-minute movielens search; RMSprop reached 0.020-0.046 in 3 trials of 4
            optimizer=fixed_param("optimizer", "adamw", allowed=OPTIMIZERS),
            lr=float_param("lr", 2e-3, 1e-2, 5e-3, log=True, bounds=POSITIVE),
            # windows per batch: few, so that an epoch of ~1,000 windows makes hundreds
            # of updates (32 windows per batch learnt popularity only in 5 epochs)
            batch_size=choice_param("batch_size", [4, 8], 4, bounds=(1, math.inf)),
            schedule=choice_param("schedule", ["cosine", "constant"],
                                  "cosine", allowed=("constant", "step", "exponential",
                                                       "cosine")),
            warmup_epochs=int_param("warmup_epochs", 0, 1, 0, bounds=(0, math.inf)),
            regularization=choice_param("regularization", ["weight_decay", "l2_penalty"],
                                        "weight_decay",
                                        allowed=("weight_decay", "l2_penalty")),
            weight_decay=float_param("weight_decay", 1e-6, 1e-1, 1e-4, log=True,
                                     when=(("regularization", ("weight_decay",)),),
                                     bounds=(0.0, 1.0)),
            patience=int_param("patience", 2, 5, 3),
            grad_clip=choice_param("grad_clip", [0.0, 0.5, 1.0, 5.0], 1.0,
                                   bounds=(0.0, math.inf)))
        shape = [
            fixed_param("cell", "gru", allowed=CELLS),
            choice_param("embed_dim", [64, 128], 128, bounds=(1, math.inf)),
            choice_param("hidden_size", [128, 256], 128, bounds=(1, math.inf)),
            choice_param("num_layers", [1, 2], 1, bounds=(1, 8)),
            choice_param("tied", [True, False], True, allowed=(False, True)),
            choice_param("history", [50, 100], 100, bounds=(1, math.inf)),
            float_param("dropout", 0.1, 0.5, 0.3, bounds=UNIT),
            float_param("layer_dropout", 0.1, 0.5, 0.3, bounds=UNIT),
            choice_param("init", list(INITS), "default", allowed=INITS),
        ]
        return Space(shape + common)

    # --- preparing -------------------------------------------------------------------

    def _read(self, cfg: DataConfig) -> tuple[pd.DataFrame, Columns, str]:
        """The events (sorted) and their columns."""
        if cfg.path is None:
            ds = get_dataset(cfg.dataset)
            if ds.task != self.name:
                raise DataError(f"--dataset {ds.name}: a {ds.task} dataset, not {self.name}")
            frame, _ = ds.loader()
            d = ds.defaults
            cols = Columns(cfg.user_column or d["user"], cfg.item_column or d["item"],
                           cfg.time_column or d["time"], cfg.session_column)
            source = ds.name
        else:
            if cfg.test_path:
                raise ConfigError("--test: a recommender is tested on each user's last 15% "
                                  "of events; put all events in one file")
            if not cfg.item_column or not (cfg.user_column or cfg.session_column):
                raise ConfigError("--task recommend: name the events' columns with --user "
                                  "COL (or --session COL) and --item COL (and --time COL)")
            cols = Columns(cfg.user_column, cfg.item_column, cfg.time_column,
                           cfg.session_column)
            keep = [c for c in (*cols.keys, cols.item) if c]
            frame, source = read_table(cfg.path, as_written=keep), cfg.path
        events = read_events(frame, cols, source)
        if cfg.sample:  # a quick look: that many histories, drawn by the seed
            keys = events["key"].unique()
            if cfg.sample < len(keys):
                chosen = np.random.default_rng(cfg.seed).choice(keys, cfg.sample, replace=False)
                events = events[events["key"].isin(chosen)].reset_index(drop=True)
        return events, cols, source

    def prepare(self, cfg: DataConfig, saved_split: dict | None = None,
                space: Space | None = None) -> Prepared:
        events, cols, source = self._read(cfg)
        keys, key_index = np.unique(events["key"].to_numpy(), return_inverse=True)
        counts = np.bincount(key_index, minlength=len(keys))
        n_train, n_val = parts(counts, cfg.val_fraction, cfg.test_fraction)
        position = events.groupby("key", sort=False).cumcount().to_numpy()
        part = np.select([position < n_train[key_index], position < (n_train + n_val)[key_index]],
                         [0, 1], 2)
        split = {name: events["row"][part == p].tolist()
                 for p, name in enumerate(("train", "val", "test"))}
        if saved_split is not None and any(saved_split.get(k) != split[k] for k in split):
            raise DataError(f"{source}: the data no longer matches the study's split.json "
                            "(its events or their order changed); use a new --study or "
                            "--run-dir")
        items = _catalog(events["item"][part == 0])
        _check_sizes(items, split, source)
        index = pd.Series(np.arange(len(items)), index=items)
        item_idx = index.reindex(events["item"]).fillna(-1).astype(np.int64).to_numpy()
        starts = np.r_[0, np.cumsum(counts)[:-1]]
        sequences = [item_idx[s:s + n] for s, n in zip(starts, n_train, strict=True)]
        # the model ranks only unseen items, so a training event teaches it only when its
        # item is new to the history: data of nothing but repeats has nothing to learn
        if sum(len(np.unique(seq)) - 1 for seq in sequences if len(seq) > 1) == 0:
            raise DataError(f"{source}: no training event is an item new to its history "
                            "(every history repeats one item); a next-item recommender "
                            "ranks the items a history has not seen, so it has nothing to "
                            "learn here")
        window = max(_histories(space))
        train_x, train_y, train_len = train_windows([s for s in sequences if len(s) > 1], window)
        stats = fit_stats(sequences, len(items))
        ids = [np.where(item_idx[s:s + c] >= 0, item_idx[s:s + c] + 1, len(items) + 1)
               for s, c in zip(starts, counts, strict=True)]
        data, chosen = {"train": SequenceData(train_x, train_len, train_y)}, {}
        for p, name in ((1, "val"), (2, "test")):
            positions = [np.flatnonzero(part[s:s + c] == p) for s, c in zip(starts, counts,
                                                                             strict=True)]
            x, lengths = history_rows(ids, positions)
            target = item_idx[part == p]
            y = np.zeros((len(target), 2 + len(BASELINES) * BASE_COLUMNS), dtype=np.int64)
            y[:, 0], y[:, 1] = target, key_index[part == p]
            if name == "val":
                chosen = _choose_decay(stats, x, lengths, torch.from_numpy(target), self.metric)
            for i, base in enumerate(BASELINES):
                y[:, _base_slice(i)] = _ranked(stats, base, x, lengths, target,
                                               chosen["decay"])
            data[name] = SequenceData(x, lengths, torch.from_numpy(y))
        validation = {b: float(event_values(data["val"].y[:, _base_slice(i)][:, 0].numpy())
                               [self.metric].mean()) for i, b in enumerate(BASELINES)}
        state = {"task": self.name, "user_column": cols.user, "item_column": cols.item,
                 "time_column": cols.time, "session_column": cols.session,
                 "items": items.tolist(), "window": window,
                 "popularity": stats.popularity.astype(int).tolist()}
        test = events[part == 2]
        test_frame = test[[*cols.keys, "item", "row"]].rename(
            columns={"item": cols.item}).reset_index(drop=True)
        summary = _summary(source, keys, counts, data, split, items, item_idx, part, window)
        raw = {"stats": stats, "decay": chosen["decay"], "tried": chosen["tried"],
               "validation": validation}
        return Prepared(data["train"], data["val"], data["test"], state, split, summary,
                        test_frame, raw=raw)

    def model_config(self, params: dict, state: dict) -> ModelConfig:
        n = len(state["items"])
        return ModelConfig(
            num_outputs=n, kind="next_item_tied" if params["tied"] else "next_item",
            vocab_size=n + 2, embed_dim=params["embed_dim"], cell=params["cell"],
            hidden_size=params["hidden_size"], num_layers=params["num_layers"],
            bidirectional=False, layer_dropout=params["layer_dropout"], pooling="last",
            dropout=params["dropout"], init=params["init"],
            lookback=min(params["history"], state["window"]))

    # --- scoring ---------------------------------------------------------------------

    def loss(self, outputs: Tensor, y: Tensor) -> Tensor:
        """Training: cross-entropy of every step's next item over the whole catalog
        (logits [B, T, V], y [B, W]); evaluation: the negative log-probability of each
        event's item among the unseen ones ([N, V], y [N, C]; misses left out)."""
        if outputs.dim() == 3:  # a target seen earlier in its window (at -inf) is left out
            target = y[:, :outputs.size(1)]
            own = outputs.gather(2, target.clamp(min=0).unsqueeze(-1)).squeeze(-1)
            target = target.masked_fill(torch.isinf(own), -1)
            total = torch.nn.functional.cross_entropy(
                outputs.reshape(-1, outputs.size(-1)), target.reshape(-1), ignore_index=-1,
                reduction="sum")
            # the mean over the kept steps; 0 (not the NaN of a mean over none) when every
            # next item is a repeat, with no host sync in the training loop
            return total / (target >= 0).sum().clamp(min=1)
        target = y[:, 0].long()
        own = outputs.gather(1, target.clamp(min=0).unsqueeze(1)).squeeze(1)  # [N]
        ok = (target >= 0) & torch.isfinite(own)
        return -own[ok].mean() if bool(ok.any()) else outputs.new_zeros(())

    def val_metric(self, outputs: Tensor, y: Tensor, state: dict | None = None) -> float:
        ranks, _ = ranks_and_top(outputs, y[:, 0], k=0)
        return float(event_values(ranks.numpy())[self.metric].mean())

    def evaluate(self, outputs: Tensor, data: SequenceData, state: dict) -> dict:
        from grutune.tasks.recommend_eval import evaluate_events

        return evaluate_events(outputs, data, state)

    def scalars(self, outputs: Tensor, data: SequenceData, state: dict) -> dict:
        from grutune.tasks.recommend_eval import per_user, user_scalars

        if outputs.dim() != 3:  # raw scores: reduce them first
            outputs, data = per_user(outputs, data, state)
        return user_scalars(outputs, data)

    def bootstrap_rows(self, outputs: Tensor, data: SequenceData,
                       state: dict) -> tuple[Tensor, SequenceData]:
        """One row per user: their events and the sums of each event metric, for the
        model (``outputs``) and each baseline (``data.y``)."""
        from grutune.tasks.recommend_eval import per_user

        return per_user(outputs, data, state)

    def baseline(self, prepared: Prepared, seed: int, refit: bool = False) -> Baseline | None:
        """The best of the three baselines on validation (item-kNN with the decay
        validation chose), its test scores over the catalog. ``refit`` (never asked:
        the task does not refit) would change nothing here."""
        raw = prepared.raw
        if raw is None:
            return None
        start = time.perf_counter()
        validation = raw["validation"]
        best = max(BASELINES, key=lambda b: (validation[b], -BASELINES.index(b)))
        test = prepared.test
        parts_ = [_order_values(scores(raw["stats"], best, test.x[i:i + 2048],
                                       test.lengths[i:i + 2048], raw["decay"]))
                  for i in range(0, len(test), 2048)]
        chosen = {"baseline": best, **({"decay": raw["decay"]} if best == "item_knn" else {})}
        tried = [{"baseline": b, "validation": v} for b, v in validation.items()]
        tried += [{"baseline": "item_knn", "decay": t["decay"], "validation": t["validation"]}
                  for t in raw["tried"]]
        return Baseline(best.replace("_", "-"), chosen, validation[best], torch.cat(parts_),
                        time.perf_counter() - start, tried)

    # --- predictions -----------------------------------------------------------------

    def decode(self, outputs: Tensor, state: dict) -> pd.DataFrame:
        """[N, V] -> per input row its top ``state['top']`` items: row, rank, item, score
        (the probability among the items not yet seen)."""
        from grutune.tasks.recommend_eval import top_table

        return top_table(outputs, state)

    def prediction_table(self, outputs: Tensor, prepared: Prepared) -> pd.DataFrame:
        """Per test event: its history, item, history length, the model's and each
        baseline's rank of it (1 = first; blank for an item outside the catalog) and the
        model's top 10."""
        from grutune.tasks.recommend_eval import event_table

        return event_table(outputs, prepared)

    def read_rows(self, path: str, state: dict) -> pd.DataFrame:
        """Events to recommend for, read and sorted like the training events."""
        cols = Columns(state["user_column"], state["item_column"], state["time_column"],
                       state["session_column"])
        keep = [c for c in (*cols.keys, cols.item) if c]
        return read_events(read_table(path, as_written=keep), cols, path)

    def encode(self, frame: pd.DataFrame, state: dict, source: str) -> SequenceData:
        """One row per history in ``frame``: all its events, in time order."""
        index = pd.Series(np.arange(1, len(state["items"]) + 1), index=state["items"])
        ids = index.reindex(frame["item"]).fillna(len(state["items"]) + 1).astype(np.int64)
        groups = []
        for key, group in ids.groupby(frame["key"].to_numpy(), sort=False):
            g = group.to_numpy()
            groups.append(g)
            if len(np.unique(g[g <= len(state["items"])])) == len(state["items"]):
                # the model would have to rank seen items: refused, never shown
                raise DataError(f"{source}: history {show(key)} holds every one of the "
                                f"model's {len(state['items'])} items; there is nothing left "
                                "to recommend it (leave it out of the file)")
        x, lengths = history_rows(groups, [np.array([len(g)]) for g in groups])
        return SequenceData(x, lengths, torch.zeros(len(groups), dtype=torch.int64))

    def predict_rows(self, model: torch.nn.Module, frame: pd.DataFrame, state: dict,
                     source: str) -> pd.DataFrame:
        """Per history in the file, its top items (``--top``, default 10), seen ones
        excluded: the history's columns, rank, item, score."""
        table = self.decode(predict(model, self.encode(frame, state, source)), state)
        cols = [c for c in (state["user_column"], state["session_column"]) if c]
        firsts = frame.drop_duplicates("key")[cols].reset_index(drop=True)
        ahead = firsts.iloc[table["row"].to_numpy()].reset_index(drop=True)
        return pd.concat([ahead, table.drop(columns="row")], axis=1)


def _catalog(train_items: pd.Series) -> np.ndarray:
    """The training parts' distinct items, sorted as ``item_order`` sorts them."""
    names = pd.unique(train_items)
    return names[np.argsort(item_order(names), kind="stable")].astype(object)


def _check_sizes(items: np.ndarray, split: dict, source: str) -> None:
    if len(items) < 2 or not split["val"] or not split["test"]:
        raise DataError(f"{source}: {len(split['train'])} training, {len(split['val'])} "
                        f"validation and {len(split['test'])} test events of {len(items)} "
                        "items; a recommender needs at least 2 items and histories of at "
                        "least 4 events (each history's last 15% are its test events)")


def _histories(space: Space | None) -> list[int]:
    """Every history length the space can sample (training windows hold the longest)."""
    if space is None or "history" not in space.params:
        return [100]
    p = space["history"]
    return [int(p.low), int(p.high)] if p.kind in ("int", "float") else \
        [int(v) for v in p.choices]


def _ranked(stats: ItemStats, name: str, x: Tensor, lengths: Tensor, target: np.ndarray,
            decay: float) -> np.ndarray:
    """[N, 1 + COVERAGE_K]: baseline ``name``'s rank of each target and its top items."""
    out = np.zeros((len(x), BASE_COLUMNS), dtype=np.int64)
    for i in range(0, len(x), 2048):
        s = scores(stats, name, x[i:i + 2048], lengths[i:i + 2048], decay)
        ranks, top = ranks_and_top(s, torch.from_numpy(target[i:i + 2048]), COVERAGE_K)
        out[i:i + 2048, 0], out[i:i + 2048, 1:1 + top.shape[1]] = ranks.numpy(), top.numpy()
    return out


def _order_values(scores_: Tensor) -> Tensor:
    """float64 scores [N, V] -> float32 values [N, V] in the same order, ties broken as
    ``ranks_and_top`` breaks them (the lower item index first), -inf kept. Casting the
    scores to float32 instead would merge item-kNN's tiny popularity tie-breaker into
    ties and change some ranks (NDCG@10 0.03793 against the table's 0.03798)."""
    order = torch.sort(-scores_, dim=1, stable=True).indices  # [N, V] best first
    position = torch.empty_like(order)
    position.scatter_(1, order, torch.arange(scores_.size(1)).expand_as(order))
    values = (scores_.size(1) - position).float()  # [N, V]: V for the best, 1 the worst
    return values.masked_fill(torch.isneginf(scores_), float("-inf"))


def _choose_decay(stats: ItemStats, x: Tensor, lengths: Tensor, target: Tensor,
                  metric: str) -> dict:
    """Item-kNN's recency decay with the best validation ``metric`` (ties: the first)."""
    tried = []
    for decay in DECAYS:
        ranks = torch.cat([ranks_and_top(scores(stats, "item_knn", x[i:i + 2048],
                                                lengths[i:i + 2048], decay),
                                         target[i:i + 2048], k=0)[0]
                           for i in range(0, len(x), 2048)])
        tried.append({"decay": decay,
                      "validation": float(event_values(ranks.numpy())[metric].mean())})
    best = max(tried, key=lambda t: t["validation"])
    return {"decay": best["decay"], "tried": tried}


def _summary(source: str, keys: np.ndarray, counts: np.ndarray, data: dict, split: dict,
             items: np.ndarray, item_idx: np.ndarray, part: np.ndarray, window: int) -> dict:
    outside = {p: int((item_idx[part == i] < 0).sum()) for i, p in ((1, "val"), (2, "test"))}
    events = {k: len(v) for k, v in split.items()}
    return {
        "source": source, "kind": "recommend",
        "rows": {k: len(d) for k, d in data.items()}, "events": events,
        "histories": int(len(keys)), "items": int(len(items)), "window": window,
        "outside_catalog": outside,
        "description": (
            f"{int(counts.sum()):,} events of {len(keys):,} histories (median "
            f"{int(np.median(counts))} events); split in time per history: train "
            f"{events['train']:,} / validation {events['val']:,} / test {events['test']:,} "
            f"events; catalog {len(items):,} items (the training parts'; "
            f"{outside['test']:,} test events are of other items and count as misses); "
            f"training windows of {window} steps"),
    }
