"""Read the UCR/UEA ``.ts`` time-series classification format.

A ``.ts`` file has ``@key value`` header lines, then ``@data`` and one series per line:
channels separated by ``:``, values by ``,``, the class label last. ``?`` marks a missing
value. Every line must have the same number of channels; within a line every channel the
same length (lengths may differ between lines when ``@equalLength false``).

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

from .exceptions import DataError


def read_ts(path: str | Path) -> tuple[list[np.ndarray], list[str]]:
    """(series as float32 arrays [T, C], labels as strings), or a DataError with the line."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    raw = path.read_bytes()
    if not raw.strip():
        raise DataError(f"{path}: the file is empty")
    if b"\x00" in raw[:65536]:
        raise DataError(f"{path}: looks like binary data (NUL bytes), not a .ts file")
    text = raw.decode("utf-8", errors="replace")
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
        columns = [_values(p, path, number) for p in parts]
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


def _values(field: str, path: Path, number: int) -> np.ndarray:
    out = np.empty(field.count(",") + 1, dtype=np.float32)
    for i, value in enumerate(field.split(",")):
        value = value.strip()
        if value == "?":
            out[i] = np.nan
            continue
        try:
            out[i] = float(value)
        except ValueError:
            raise DataError(f"{path}: line {number}: value {value!r} is not a number") from None
    return out
