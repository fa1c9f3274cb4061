"""grutune: tune, evaluate and ship GRU sequence models from one command.

>>> import grutune
>>> callable(grutune.tune) and callable(grutune.load_bundle)
True

Importing ``grutune`` is cheap: the public names below are resolved on first use
(PEP 562), so ``grutune --help`` and ``import grutune`` load neither PyTorch nor
scikit-learn until a name that needs them is touched.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from grutune.exceptions import (
    BundleError,
    ConfigError,
    DataError,
    ExportError,
    GrutuneError,
    SearchError,
)

__version__ = "0.1.0"

# public name -> the submodule that defines it, imported on first use. One line per name;
# a name must not be a submodule's name too (``import grutune.X`` would replace it).
_LAZY: dict[str, str] = {
    "Bundle": "bundle",
    "load_bundle": "bundle",
    "TuneResult": "workflows.tune",
    "predict_file": "workflows.predict",
    "tune": "api",
    "load": "api",
    "Run": "api",
    "Model": "api",
    "compare": "api",
    "report": "api",
    "datasets": "api",
    "GRUTextClassifier": "estimators",
    "GRUSeriesClassifier": "estimators",
}

if TYPE_CHECKING:  # what type checkers and IDEs see; nothing is imported at run time
    from grutune.api import Model, Run, compare, datasets, load, report, tune
    from grutune.bundle import Bundle, load_bundle
    from grutune.estimators import GRUSeriesClassifier, GRUTextClassifier
    from grutune.workflows.predict import predict_file
    from grutune.workflows.tune import TuneResult


def __getattr__(name: str) -> Any:
    """Resolve a public name on first use, then keep it as a module global."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "Bundle",
    "BundleError",
    "ConfigError",
    "DataError",
    "ExportError",
    "GRUSeriesClassifier",
    "GRUTextClassifier",
    "GrutuneError",
    "Model",
    "Run",
    "SearchError",
    "TuneResult",
    "__version__",
    "compare",
    "datasets",
    "load",
    "load_bundle",
    "predict_file",
    "report",
    "tune",
]
