"""Word vectors from the training text: reproducible, training split only, into the
embedding of the trials that ask for them, and nowhere else."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import torch

from grutune.config import DataConfig
from grutune.tasks import get_task
from grutune.tasks.word_vectors import project, train_vectors
from grutune.tuning.fitting import build_model

VOCAB = ["<pad>", "<unk>", "the", "cat", "dog", "sat", "ran", "mat", "rare"]


def _docs() -> list[list[str]]:
    rng = np.random.default_rng(0)
    words = VOCAB[2:-1]
    return [list(rng.choice(words, 12)) for _ in range(60)] + [["rare"]]


def test_vectors_are_the_same_in_processes_with_different_string_hashes():
    """Python's str hash differs per process (gensim can seed vectors with a hash of the
    word); the table must not depend on it, so seeded runs repeat exactly. (The BLAS
    kernel matters: the children keep this process's environment.)"""
    code = ("import sys; sys.path.insert(0, '.'); from tests.test_word_vectors import _docs, "
            "VOCAB; from grutune.tasks.word_vectors import train_vectors; import numpy as np; "
            "t = train_vectors(_docs(), VOCAB, 8, seed=3); print(np.asarray(t).tobytes().hex())")
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True, env={**os.environ, "PYTHONHASHSEED": seed}).stdout
            for seed in ("1", "2")}
    assert len(outs) == 1
    here = np.asarray(train_vectors(_docs(), VOCAB, 8, seed=3)).tobytes().hex()
    assert outs == {here + "\n"}


def test_rows_known_and_unknown():
    table = train_vectors(_docs(), VOCAB, 8, seed=0)
    assert table.known.tolist() == [False, False] + [True] * 6 + [False]  # "rare": once
    assert not np.asarray(table)[~table.known].any()
    narrow = project(table, 3)
    assert narrow.shape == (9, 3)
    assert abs(float(narrow[table.known].std()) - 1.0) < 1e-5
    assert np.allclose(narrow[table.known].mean(axis=0), 0.0, atol=1e-5)
    # the leading components keep most of the spread: they are a projection, not noise
    full = project(table, 8)
    assert np.allclose(np.abs(np.corrcoef(narrow[table.known, 0],
                                          full[table.known] @ np.linalg.svd(
                                              full[table.known], full_matrices=False)[2][0]
                                          )[0, 1]), 1.0, atol=1e-4)


def _texts(n: int = 90) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    topics = {"a": ["goal", "match", "team", "win"], "b": ["vote", "party", "law", "poll"],
              "c": ["stock", "bank", "price", "trade"]}
    rows = []
    for i in range(n):
        label = "abc"[i % 3]
        words = list(rng.choice(topics[label] + ["the", "and", "of"], 15)) + [f"w{i}"]
        rows.append({"text": " ".join(words), "label": label})
    return pd.DataFrame(rows)


def _prepared(tmp_path, space_overrides: dict | None = None):
    path = tmp_path / "d.csv"
    _texts().to_csv(path, index=False)
    task = get_task("text")
    prepared = task.prepare(DataConfig(path=str(path), min_count=1))
    space = task.default_space({})
    if space_overrides:
        space = space.apply(space_overrides)
    task.pretrain(prepared, space, seed=0)
    return task, prepared, space


def test_pretrain_reads_the_training_split_only(tmp_path, monkeypatch):
    """The documents word2vec sees are exactly the training split's."""
    seen = {}

    def spy(docs, vocab, dim, seed):
        seen["docs"], seen["dim"] = docs, dim
        return train_vectors(docs, vocab, dim, seed)

    monkeypatch.setattr("grutune.tasks.text_classification.train_vectors", spy)
    task, prepared, _ = _prepared(tmp_path)
    assert len(seen["docs"]) == len(prepared.train)
    tails = {d[-1] for d in seen["docs"]}  # each document ends in its own word w<i>
    assert tails == {t.split()[-1] for t in prepared.raw["train"]}
    assert not tails & {t.split()[-1] for t in prepared.raw["val"] + prepared.raw["test"]}
    assert seen["dim"] == 256  # the widest embedding the default space allows


def test_word2vec_trials_start_from_the_vectors_random_ones_do_not(tmp_path):
    task, prepared, space = _prepared(tmp_path)
    table = prepared.pretrained["word2vec"]
    params = {p.name: p.default for p in space.params.values()}
    assert params["embedding"] == "word2vec"
    started = build_model(task, params, prepared.state, 0, prepared).embed.weight.detach()
    fresh = build_model(task, params, prepared.state, 0).embed.weight.detach()
    known = torch.from_numpy(table.known)
    assert torch.equal(started[known], torch.from_numpy(project(table, params["embed_dim"]))[known])
    assert torch.equal(started[~known], fresh[~known])  # <pad>, <unk>, rare words: seeded
    assert not started[0].any()
    random = build_model(task, {**params, "embedding": "random"}, prepared.state, 0, prepared)
    assert torch.equal(random.embed.weight.detach(), fresh)


def test_a_space_without_word2vec_trains_no_vectors(tmp_path):
    _, prepared, _ = _prepared(tmp_path, {"embedding": "random"})
    assert prepared.pretrained == {}
