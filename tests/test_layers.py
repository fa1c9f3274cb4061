"""The package's layers, checked: every import inside ``grutune`` points down.

Each module belongs to one layer (a subpackage, or a top-level module); a module may
import its own subpackage and any lower layer, never a higher one. Imports inside
functions count too: a lazy import is still an arrow. ``docs/architecture.md`` draws
the same table; a new module gets a row here and there.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "grutune"

# layers, low to high: a module imports its own unit (subpackage or module) and lower
# layers only. Units that share a layer do not import each other.
LAYERS: list[tuple[str, ...]] = [
    ("exceptions", "files", "compat", "urls"),  # foundation: no grutune imports
    ("config",),                         # frozen configs whose checks state the rule
    ("manifest_checks", "search_space"),  # bundle field checks; Param / Space
    ("data",),                           # readers, built-in datasets, tensors, folds
    ("metrics",),                        # scores and intervals: numbers in, numbers out
    ("render", "nn"),                    # how numbers are shown; models and the trainer
    ("tasks",),                          # everything task-specific
    ("bundle", "tracking"),              # saved models; MLflow
    ("tuning",),                         # Optuna: search, trial fit, repeats, evaluation
    ("reporting", "export"),             # report page and printed tables; ONNX
    ("workflows",),                      # the tune / predict / compare jobs
    ("api",),                            # grutune from Python
    ("estimators",),                     # scikit-learn estimators over the API
    ("cli",),                            # grutune from a shell
    ("__main__", "__init__"),            # entry points (__init__ resolves names lazily)
]
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}


def _unit(module: str) -> str:
    """grutune.tuning.search -> "tuning"; grutune.bundle -> "bundle"; grutune -> "__init__"."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py"))


def _name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    return ".".join(rel.parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, grutune module) for every import of the package in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            assert node.level == 0, f"{path}:{node.lineno}: relative import (use grutune.X)"
            if node.module == "grutune":  # from grutune import X: X may be a module
                found += [(node.lineno, f"grutune.{a.name}") for a in node.names]
            elif node.module.startswith("grutune."):
                found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("grutune")]
    return found


def test_every_module_has_a_layer() -> None:
    units = {_unit(_name(p)) for p in _modules()}
    assert units - RANK.keys() == set(), "give the new module a layer in LAYERS"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: _name(p))
def test_imports_point_down(path: Path) -> None:
    me = _unit(_name(path))
    bad = []
    for line, target in _imports(path):
        other = _unit(target)
        if target in ("grutune.__version__",):  # the version string, set in __init__
            continue
        if other not in RANK:  # a public name of grutune/__init__ (from grutune import X)
            other = "__init__"
        if other != me and RANK[other] >= RANK[me]:
            bad.append(f"line {line}: {target} (layer {RANK[other]}) from layer {RANK[me]}")
    assert not bad, f"{_name(path)} imports upward or sideways:\n" + "\n".join(bad)


def test_the_check_catches_an_upward_import(tmp_path: Path) -> None:
    """The parser sees lazy imports inside functions (the kind a layer check misses)."""
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from grutune.tuning.search import search\n")
    assert _imports(source) == [(2, "grutune.tuning.search")]
