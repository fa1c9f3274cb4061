"""The recommendation task on values: ranking metrics against a hand-computed ranking,
the baselines against brute force on a tiny dataset, a split with no future event in a
training part, and predictions that never recommend a seen item. Small synthetic events:
the whole file runs in seconds."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from grutune.bundle import save_bundle
from grutune.config import DataConfig
from grutune.exceptions import GrutuneError
from grutune.metrics.ranking import MISS, ranking_metrics, ranks_and_top
from grutune.nn.model import Ensemble, make_model
from grutune.nn.trainer import seed_everything
from grutune.tasks import get_task
from grutune.tasks.recommend_baselines import fit_stats, scores
from grutune.tasks.recommend_data import Columns, read_events
from grutune.workflows.predict import predict_file

INF = float("-inf")


def _events(users: int = 24, items: int = 30, length: int = 20, seed: int = 0) -> pd.DataFrame:
    """Users walking through the items mostly in order (i -> i + 1), some jumps; times
    with ties (broken by item)."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(users):
        item = int(rng.integers(items))
        for step in range(length):
            rows.append({"user": f"u{u}", "item": item, "time": 100 * u + step // 2})
            item = (item + 1) % items if rng.random() < 0.8 else int(rng.integers(items))
    return pd.DataFrame(rows)


def _config(path: Path, **kw) -> DataConfig:
    return DataConfig(path=str(path), task="recommend", user_column="user",
                      item_column="item", time_column="time", **kw)


@pytest.fixture(scope="module")
def events_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("events") / "events.csv"
    _events().to_csv(path, index=False)
    return path


# --- metrics ---------------------------------------------------------------------------

def test_ranks_and_metrics_match_a_hand_computed_ranking():
    scores_ = torch.tensor([
        [0.9, 0.5, 0.5, INF, 0.1],  # target 2: 0.9 first, then 0.5 tied (index 1 first)
        [0.2, 0.8, 0.3, 0.3, INF],  # target 0: below 0.8, 0.3, 0.3
        [0.1, 0.2, 0.3, 0.4, 0.5],  # target 3 (seen: -inf would be a miss; here rank 1)
        [0.5, 0.4, INF, 0.3, 0.2],  # target 2 was seen: a miss
        [0.5, 0.4, 0.3, 0.2, 0.1],  # target -1: an item outside the catalog, a miss
    ])
    ranks, top = ranks_and_top(scores_, torch.tensor([2, 0, 3, 2, -1]), k=3)
    assert ranks.tolist() == [2, 3, 1, MISS, MISS]
    assert top.tolist() == [[0, 1, 2], [1, 2, 3], [4, 3, 2], [0, 1, 3], [0, 1, 2]]
    m = ranking_metrics(ranks.numpy(), top.numpy(), n_items=5)
    assert m["hr_10"] == pytest.approx(3 / 5) and m["recall_20"] == pytest.approx(3 / 5)
    ndcg = (1 / math.log2(4) + 1 / math.log2(5) + 1 / math.log2(3)) / 5
    assert m["ndcg_10"] == pytest.approx(ndcg)
    assert m["mrr_20"] == pytest.approx((1 / 3 + 1 / 4 + 1 / 2) / 5)
    assert m["coverage_20"] == pytest.approx(1.0)  # top-3 lists cover items 0-4


# --- baselines -------------------------------------------------------------------------

def test_baselines_match_brute_force():
    rng = np.random.default_rng(1)
    n_items = 12
    sequences = [rng.integers(0, n_items, rng.integers(3, 10)) for _ in range(15)]
    stats = fit_stats(sequences, n_items, neighbours=n_items)
    history = [3, 5, 3, 7]  # item indices, oldest first
    x = torch.tensor([[i + 1 for i in history]])
    n = torch.tensor([len(history)])
    pop = np.zeros(n_items)
    follows = np.zeros((n_items, n_items))
    users = np.zeros((len(sequences), n_items))
    for s in sequences:
        for a, b in zip(s[:-1], s[1:], strict=True):
            follows[a, b] += 1
        for i in s:
            pop[i] += 1
    for u, s in enumerate(sequences):
        users[u, list(set(s.tolist()))] = 1
    seen = set(history)
    for name in ("popularity", "markov", "item_knn"):
        got = scores(stats, name, x, n, decay=0.5)[0].numpy()
        for j in range(n_items):
            if j in seen:
                assert got[j] == -np.inf
                continue
            if name == "popularity":
                want = pop[j]
            elif name == "markov":
                want = follows[7, j] * (pop.max() + 1) + pop[j]
            else:
                want = 0.0
                for age, i in enumerate(reversed(history)):
                    both = users[:, i] @ users[:, j]
                    norm = math.sqrt(users[:, i].sum() * users[:, j].sum())
                    want += 0.5 ** age * (both / norm if norm and i != j else 0.0)
                want += 1e-9 * pop[j] / (pop.max() + 1)
            assert got[j] == pytest.approx(want, rel=1e-9, abs=1e-12), (name, j)


def test_the_baseline_block_ranks_exactly_as_the_float64_scores_do():
    """The run's baseline block holds float32 values; scores a tie-breaker 1e-9 apart
    must keep their order there (a plain cast merged them and moved some ranks)."""
    from grutune.tasks.recommend import _order_values

    s = torch.tensor([[0.5, 0.5 + 1e-9, 0.5, INF, 0.2],
                      [0.3, 0.3, 0.3, 0.3, INF]], dtype=torch.float64)
    values = _order_values(s)
    assert values.dtype == torch.float32 and torch.isneginf(values[0, 3])
    targets = torch.tensor([1, 3])
    want, want_top = ranks_and_top(s, targets, k=3)
    got, got_top = ranks_and_top(values, targets, k=3)
    assert got.tolist() == want.tolist() == [0, 3]  # items ranked above the target
    assert got_top.tolist() == want_top.tolist() == [[1, 0, 2], [0, 1, 2]]
    cast, _ = ranks_and_top(s.float(), targets, k=0)
    assert cast.tolist() != want.tolist()  # what the cast got wrong


# --- the split ---------------------------------------------------------------------------

def test_the_split_puts_no_future_event_in_a_training_part(events_file):
    task = get_task("recommend")
    prepared = task.prepare(_config(events_file), None, task.default_space({}))
    events = read_events(pd.read_csv(events_file), Columns("user", "item", "time"), "x")
    part = pd.Series("", index=events["row"])
    for name in ("train", "val", "test"):
        part.loc[prepared.split[name]] = name
    events["part"] = part.loc[events["row"]].to_numpy()
    rank = {"train": 0, "val": 1, "test": 2}
    for _, mine in events.groupby("user"):  # sorted in time: parts in order, 70/15/15
        order = mine["part"].map(rank).to_numpy()
        assert (np.diff(order) >= 0).all()
        assert (order == 2).sum() == round(0.15 * len(mine)) == (order == 1).sum()
    # the training windows hold training events only: their targets are those events
    # after each user's first (the last training event's successor is never a target)
    train = prepared.train
    targets = train.y[train.y >= 0]
    items = np.asarray(prepared.state["items"])
    want = events[events["part"] == "train"].groupby("user")["item"].apply(
        lambda s: s.astype(str).iloc[1:].tolist()).sum()
    assert sorted(items[targets.numpy()].tolist()) == sorted(want)
    # a test event's history is every earlier event of its user, training ones included
    r = 0
    first = events[events["part"] == "test"].iloc[r]
    before = events[(events["user"] == first["user"]) & (events.index < first.name)]
    ids = prepared.test.x[r, : int(prepared.test.lengths[r])].numpy()
    assert items[ids - 1].tolist() == before["item"].astype(str).tolist()


def test_bad_events_are_refused_in_one_line(tmp_path):
    frame = _events(users=3).astype({"time": object})
    frame.loc[4, "time"] = "soon"
    path = tmp_path / "bad.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(GrutuneError, match="'soon' in data row 5") as err:
        get_task("recommend").prepare(_config(path))
    assert "\n" not in str(err.value)


# --- predictions --------------------------------------------------------------------------

def test_predict_never_recommends_a_seen_item(events_file, tmp_path):
    task = get_task("recommend")
    space = task.default_space({})
    prepared = task.prepare(_config(events_file), None, space)
    params = {name: space[name].default for name in space.names}
    seed_everything(0)
    model = make_model(task.model_config(params, prepared.state)).eval()
    save_bundle(tmp_path / "model", Ensemble([model], task.combine).eval(), prepared.state, {})
    history = _events().head(45)  # two users' whole histories, and a third's start
    path = tmp_path / "history.csv"
    history.to_csv(path, index=False)
    table = predict_file(tmp_path / "model", path)
    assert list(table.columns) == ["user", "rank", "item", "score"]
    assert table.groupby("user").size().tolist() == [10, 10, 10]
    for user, mine in table.groupby("user"):
        seen = set(history.loc[history["user"] == user, "item"].astype(str))
        assert not seen & set(mine["item"]), user
        assert (np.diff(mine["score"].to_numpy()) <= 0).all()


def test_the_readmes_click_log_example_runs_end_to_end(tmp_path):
    """README's session example as written (a click log: session ids, product codes,
    timestamps), through the CLI: tune, then predict --top 20 for sessions in a file."""
    from typer.testing import CliRunner

    from grutune.cli import app

    rng = np.random.default_rng(3)
    products = [f"lamp {i:03d}, blue" for i in range(40)]  # names with a space and a comma
    rows = []
    for s in range(60):
        start = pd.Timestamp("2026-03-01 08:00") + pd.Timedelta(hours=int(rng.integers(500)))
        item = int(rng.integers(40))
        for step in range(int(rng.integers(8, 16))):
            rows.append({"session_id": f"s-{s:04d}", "product": products[item],
                         "ts": (start + pd.Timedelta(seconds=30 * step)).isoformat()})
            item = (item + 1) % 40 if rng.random() < 0.7 else int(rng.integers(40))
    clicks = pd.DataFrame(rows)
    clicks.to_csv(tmp_path / "clicks.csv", index=False)
    runner = CliRunner()
    run = tmp_path / "runs" / "clicks"
    result = runner.invoke(app, [
        "tune", str(tmp_path / "clicks.csv"), "--task", "recommend", "--session",
        "session_id", "--item", "product", "--time", "ts", "--run-dir", str(run),
        "--trials", "1", "--max-epochs", "2", "--repeats", "1", "--ensemble", "1",
        "--workers", "1", "--no-refit"])
    assert result.exit_code == 0, result.output
    events = pd.read_csv(run / "test_predictions.csv")
    tops = [json.loads(cell) for cell in events["top_10"]]  # each a list of whole names
    assert tops and all(len(t) == 10 and set(t) <= set(products) for t in tops)
    recent = clicks[clicks["session_id"].isin(["s-0001", "s-0002"])].head(12)
    recent.to_csv(tmp_path / "recent.csv", index=False)
    result = runner.invoke(app, ["predict", str(run / "model"), str(tmp_path / "recent.csv"),
                                 "--top", "20", "--out", str(tmp_path / "top.csv")])
    assert result.exit_code == 0, result.output
    top = pd.read_csv(tmp_path / "top.csv")
    assert list(top.columns) == ["session_id", "rank", "item", "score"]
    assert top.groupby("session_id")["rank"].apply(list).tolist() == [list(range(1, 21))] * 2
    for session, mine in top.groupby("session_id"):
        seen = set(recent.loc[recent["session_id"] == session, "product"])
        assert not seen & set(mine["item"]) and set(mine["item"]) <= set(products), session
