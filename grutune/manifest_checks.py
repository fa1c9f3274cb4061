"""Checks of a bundle's manifest, shared by the bundle reader and each task's
``check_state``: a manifest may be damaged or forged, so every field is checked for
type and range before it is used, and the first broken rule is one BundleError line.

>>> Checker(Path("m/bundle.json")).require(is_int(3), "state.max_len", "a whole number")
>>> short("x" * 100)[-5:]
'xx...'
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from grutune.exceptions import BundleError, short


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def is_number_list(value: Any, n: int) -> bool:
    return isinstance(value, list) and len(value) == n and all(map(is_number, value))


class Checker:
    """Collects the first broken rule as a BundleError naming the manifest and the field."""

    def __init__(self, path: Path):
        self.path = path

    def require(self, ok: bool, field: str, rule: str, value: Any = ...) -> None:
        if not ok:
            got = "" if value is ... else f"; got {short(value)}"
            raise BundleError(f"{self.path}: corrupted manifest ({field} must be {rule}{got})")
