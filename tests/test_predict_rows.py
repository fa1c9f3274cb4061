"""Predicting a file equals predicting each of its rows alone.

One row's content (its length, an unknown word, a value far outside the training range)
must never change another row's prediction: batches are padded, bucketed and split over
threads, and the GRU kernel's rule for non-finite gate arguments fails one row, not the
batch. Hypothesis draws the files.
"""

from __future__ import annotations

import csv
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from grutune.cli import app
from grutune.exceptions import GrutuneError
from grutune.nn.recurrence import FastGRU, cpu_kernel
from grutune.workflows.predict import predict_file

from .conftest import FILLER, WORDS, make_texts

FAST = ["--trials", "1", "--max-epochs", "2", "--repeats", "1", "--ensemble", "1",
        "--workers", "1", "--folds", "1", "--no-refit"]
VOCAB = [w for words in WORDS.values() for w in words] + FILLER


@pytest.fixture(scope="module")
def text_model(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("text-model")
    data = root / "d.csv"
    make_texts(20).to_csv(data, index=False)
    result = CliRunner().invoke(app, ["tune", str(data), "--run-dir", str(root / "run"), *FAST])
    assert result.exit_code == 0, result.stderr
    return root / "run" / "model"


def _predict(model: Path, texts: list[str]) -> pd.DataFrame | str:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rows.csv"
        # every field quoted: an unquoted lone \r would end the row for any CSV reader
        pd.DataFrame({"text": texts}).to_csv(path, index=False, quoting=csv.QUOTE_ALL)
        try:
            return predict_file(model, path)
        except GrutuneError as err:
            return f"refused: {err}"


words = st.one_of(st.sampled_from(VOCAB), st.text(min_size=1, max_size=12))
docs = st.lists(words, min_size=0, max_size=80).map(" ".join)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(texts=st.lists(docs, min_size=1, max_size=8))
def test_a_file_predicts_what_its_rows_predict_alone(text_model, texts):
    together = _predict(text_model, texts)
    alone = [_predict(text_model, [t]) for t in texts]
    if isinstance(together, str):  # refused: then some row is refused alone too
        assert any(isinstance(a, str) for a in alone), together
        return
    assert len(together) == len(texts)
    assert not any(isinstance(a, str) for a in alone), alone
    probs = [c for c in together.columns if c.startswith("prob_")]
    for i, row in enumerate(alone):
        assert np.allclose(together.loc[i, probs].to_numpy(float),
                           row.loc[0, probs].to_numpy(float), atol=1e-5), (i, texts[i])
        margin = np.sort(row.loc[0, probs].to_numpy(float))[-2:]
        if margin[1] - margin[0] > 1e-4:  # a near tie may flip by rounding
            assert together.loc[i, "prediction"] == row.loc[0, "prediction"]


@pytest.mark.skipif(cpu_kernel() is None, reason="the C++ kernel could not be built")
@pytest.mark.parametrize("value", [float("inf"), float("nan"), 1e30])
def test_one_extreme_row_leaves_the_other_rows_alone(value):
    """The kernel level of the same rule, for a numeric input (a series model's)."""
    torch.manual_seed(0)
    gru = FastGRU(4, 16)
    x = torch.randn(30, 6, 4)  # [T, B, C]
    clean = gru(x)[0].detach()
    x[7, 4, 2] = value
    out = gru(x)[0].detach()
    others = [0, 1, 2, 3, 5]
    assert torch.equal(out[:, others], clean[:, others])
