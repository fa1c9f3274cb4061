"""Property tests: random bytes and random tables reach the readers and the data
preparation; the only failure allowed is a clear ``GrutuneError`` naming the file."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grutune.config import DataConfig
from grutune.exceptions import GrutuneError
from grutune.readers import read_table
from grutune.tasks import get_task

SETTINGS = settings(max_examples=120, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def _check_clear(err: GrutuneError, path: Path) -> None:
    message = str(err)
    assert message and "\n" not in message.strip()
    assert str(path) in message or path.name in message


@SETTINGS
@given(data=st.binary(max_size=3000), ext=st.sampled_from([".csv", ".parquet", ".jsonl"]))
def test_random_bytes_never_crash_the_readers(data, ext):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"f{ext}"
        path.write_bytes(data)
        try:
            frame = read_table(path)
        except GrutuneError as err:
            _check_clear(err, path)
        else:
            assert isinstance(frame, pd.DataFrame) and len(frame) > 0


cells = st.one_of(st.none(), st.text(max_size=30), st.integers(-5, 5),
                  st.floats(allow_nan=True, allow_infinity=True))


@SETTINGS
@given(rows=st.lists(st.tuples(cells, cells), min_size=0, max_size=60),
       names=st.sampled_from([("text", "label"), ("body", "label"), ("text", "text2")]))
def test_random_tables_prepare_or_fail_clearly(rows, names):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.csv"
        pd.DataFrame(rows, columns=list(names)).to_csv(path, index=False)
        try:
            prepared = get_task("text").prepare(DataConfig(path=str(path), task="text"))
        except GrutuneError as err:
            _check_clear(err, path)
        else:
            sizes = [len(prepared.train), len(prepared.val), len(prepared.test)]
            assert min(sizes) > 0
