"""Golden bundles: bundles written by earlier grutune versions still load and predict the same.

Each ``tests/golden/v<format>-<task>/`` holds a bundle (``model/``), an input file and
the predictions the grutune of that day gave for it (``tests/golden/make_golden.py``).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from grutune.bundle import FORMAT_VERSION, MANIFEST, load_bundle
from grutune.workflows.predict import predict_file

GOLDEN = Path(__file__).parent / "golden"
FOLDERS = sorted(p for p in GOLDEN.iterdir() if p.is_dir() and (p / "model").is_dir())


def test_every_task_has_a_version_1_bundle():
    assert {p.name for p in FOLDERS} >= {"v1-text", "v1-series", "v1-forecast"}


@pytest.mark.parametrize("folder", FOLDERS, ids=[p.name for p in FOLDERS])
def test_golden_bundle_predicts_as_saved(folder):
    manifest = json.loads((folder / "model" / MANIFEST).read_text())
    version = int(folder.name.split("-")[0][1:])
    assert manifest["format_version"] == version <= FORMAT_VERSION
    bundle = load_bundle(folder / "model")
    assert bundle.state["task"] == folder.name.split("-", 1)[1]
    got = predict_file(folder / "model", folder / "input.csv")
    # through CSV, as `grutune predict --out` writes it, so both sides have the same dtypes
    got = pd.read_csv(io.StringIO(got.to_csv(index=False)))
    expected = pd.read_csv(folder / "expected.csv")
    assert list(got.columns) == list(expected.columns)
    assert len(got) == len(expected) > 0
    for column in expected.columns:
        if pd.api.types.is_float_dtype(expected[column]):
            np.testing.assert_allclose(got[column].to_numpy(), expected[column].to_numpy(),
                                       rtol=0, atol=1e-6, err_msg=column)
        else:
            assert got[column].tolist() == expected[column].tolist(), column
