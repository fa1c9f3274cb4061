"""Atomic file writes: write a temporary file beside the target, then rename over it.

A reader (or a resumed run after SIGKILL) sees either the old file or the new one,
never half of one. The file gets the mode any other tool would give a new file,
``0666 & ~umask`` (the temporary file is private, 0600, until it is complete).

>>> import tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "x.json"
>>> write_json(p, {"a": 1}); p.read_text()
'{\\n  "a": 1\\n}\\n'
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path; on success it replaces ``path`` in one rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def current_umask() -> int:
    """The process's umask, read without changing it where Linux shows it (a set-and-
    restore elsewhere)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, default=_plain) + "\n")


def plain_json(data: Any) -> Any:
    """``data`` exactly as ``write_json`` then ``json.loads`` gives it back (NumPy scalars
    as numbers, tuples as lists, keys as strings).

    >>> plain_json({1: (2, 3)})
    {'1': [2, 3]}
    """
    return json.loads(json.dumps(data, default=_plain))


def _plain(value: Any) -> Any:
    """NumPy scalars and other simple types in JSON."""
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (set, tuple)):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON-serializable: {type(value).__name__}")
