"""Every error grutune raises is a specific one: callers catch what they mean."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import grutune
from grutune.config import DataConfig
from grutune.exceptions import ConfigError, DataError, GrutuneError


def _raised_names(path: Path) -> list[tuple[int, str]]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
            func = node.exc.func
            names.append((node.lineno, getattr(func, "id", getattr(func, "attr", ""))))
    return names


def test_no_module_raises_the_bare_base_class():
    package = Path(grutune.__file__).parent
    bare = [f"{path.relative_to(package)}:{line}" for path in sorted(package.rglob("*.py"))
            for line, name in _raised_names(path) if name == "GrutuneError"]
    assert bare == []


def test_config_and_data_errors_are_value_errors_too():
    """As KerasTuner's are: ``except ValueError`` works for a caller who knows no grutune."""
    with pytest.raises(ValueError, match="val_fraction"):
        DataConfig(val_fraction=2.0)
    assert issubclass(DataError, ValueError) and issubclass(ConfigError, GrutuneError)
