"""grutune: tune, evaluate and ship GRU sequence models from one command.

>>> import grutune
>>> callable(grutune.tune) and callable(grutune.load_bundle)
True
"""

from __future__ import annotations

__version__ = "0.1.0"

from .bundle import Bundle, load_bundle  # noqa: E402
from .exceptions import (  # noqa: E402
    BundleError,
    ConfigError,
    DataError,
    ExportError,
    GrutuneError,
    SearchError,
)
from .pipeline import TuneResult, predict_file, tune  # noqa: E402

__all__ = [
    "Bundle",
    "BundleError",
    "ConfigError",
    "DataError",
    "ExportError",
    "GrutuneError",
    "SearchError",
    "TuneResult",
    "__version__",
    "load_bundle",
    "predict_file",
    "tune",
]
