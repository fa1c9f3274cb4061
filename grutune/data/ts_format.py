"""Read the UCR/UEA ``.ts`` time-series classification format.

A ``.ts`` file has ``@key value`` header lines, then ``@data`` and one series per line:
channels separated by ``:``, values by ``,``, the class label last. ``?`` marks a missing
value; every other value must be a finite number within float32's range (the models
compute in float32), so ``nan``, ``inf`` or ``1e40`` are refused naming the line,
dimension and time step, and so is a dimension whose values are all missing. Every line
must have the same number of channels; within a line every channel the same length
(lengths may differ between lines when ``@equalLength false``). The file is decoded by
its byte-order mark (UTF-8, UTF-16, UTF-32), else as UTF-8.

>>> import tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "x.ts"
>>> _ = p.write_text("@problemName x\\n@classLabel true a b\\n@data\\n1,2,3:4,5,6:a\\n7,8:9,0:b\\n")
>>> series, labels = read_ts(p)
>>> [s.shape for s in series], labels
([(3, 2), (2, 2)], ['a', 'b'])
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from grutune.data.readers import check_file, decode_text, show
from grutune.exceptions import DataError

FLOAT32_MAX = float(np.finfo(np.float32).max)


def read_ts(path: str | Path) -> tuple[list[np.ndarray], list[str]]:
    """(series as float32 arrays [T, C], labels as strings), or a DataError with the line."""
    path = Path(path)
    check_file(path)
    raw = path.read_bytes()
    if not raw.strip():
        raise DataError(f"{path}: the file is empty")
    text = decode_text(path, raw, "a .ts file")
    series: list[np.ndarray] = []
    labels: list[str] = []
    in_data = False
    channels = None
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not in_data:
            if line.lower().startswith("@data"):
                in_data = True
            elif line.lower().startswith("@timestamps true"):
                raise DataError(f"{path}: line {number}: timestamped .ts data is not "
                                "supported; give the values only")
            continue
        *parts, label = line.split(":")
        if not parts:
            raise DataError(f"{path}: line {number}: expected values:...:label, got no ':'")
        if channels is None:
            channels = len(parts)
        elif len(parts) != channels:
            raise DataError(f"{path}: line {number} has {len(parts)} dimensions; the first "
                            f"series has {channels} (inconsistent dimensions)")
        columns = [_values(p, path, number, d) for d, p in enumerate(parts, start=1)]
        lengths = {len(c) for c in columns}
        if len(lengths) != 1:
            raise DataError(f"{path}: line {number}: its dimensions have different lengths "
                            f"{sorted(lengths)}; each must have the same length")
        series.append(np.stack(columns, axis=1))  # [T, C]
        labels.append(label.strip())
    if not in_data:
        raise DataError(f"{path}: no @data line; not a .ts file")
    if not series:
        raise DataError(f"{path}: no series after @data")
    return series, labels


def _values(field: str, path: Path, number: int, dimension: int) -> np.ndarray:
    """One dimension's values ("?" missing: NaN); DataError naming line, dimension, step."""
    out = np.empty(field.count(",") + 1, dtype=np.float32)
    for i, value in enumerate(field.split(",")):
        value = value.strip()
        if value == "?":
            out[i] = np.nan
            continue
        where = f"{path}: line {number}, dimension {dimension}, time step {i + 1}"
        try:
            number_ = float(value)
        except ValueError:
            raise DataError(f"{where}: value {show(value)} is not a number") from None
        if not np.isfinite(number_):
            raise DataError(f"{where}: value {show(value)} is not a finite number; series "
                            "values must be finite (write ? for a missing value)")
        if abs(number_) > FLOAT32_MAX:
            raise DataError(f"{where}: value {show(value)} overflows float32 (largest "
                            f"magnitude {FLOAT32_MAX:.7g}); series values must fit in float32")
        out[i] = number_
    if len(out) and np.isnan(out).all():
        raise DataError(f"{path}: line {number}, dimension {dimension} has no values (all "
                        "missing, ?); every dimension of a series needs at least one value")
    return out
