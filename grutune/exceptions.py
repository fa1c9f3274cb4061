"""Errors, split by who must act.

``GrutuneError``'s subclasses are *fatal*: the user's configuration or data is wrong, or
the search found nothing to keep, and the run stops with one clear line (exit code 2);
every error grutune raises is one of the subclasses, so ``except ConfigError`` means it.
``TrialFailure`` is not fatal: one trial broke numerically and the study records it and
goes on.
"""

from __future__ import annotations

from typing import Any

SHORT = 60  # characters of a value quoted in an error message


def short(value: Any) -> str:
    """``repr`` of a value for an error message, cut to SHORT characters (a file may hold
    anything, a gigabyte string included).

    >>> short("x" * 100)[-5:]
    'xx...'
    """
    text = repr(value)
    return text if len(text) <= SHORT else text[: SHORT - 3] + "..."


class GrutuneError(Exception):
    """Base of the fatal errors; the CLI prints the message and exits with code 2."""


class ConfigError(GrutuneError, ValueError):
    """An option, a space file or a run directory breaks a rule (a ValueError too, as
    KerasTuner's are: ``except ValueError`` catches it)."""


class DataError(GrutuneError, ValueError):
    """An input file or column cannot be used; the message names file, column, value, rule."""


class SearchError(GrutuneError, RuntimeError):
    """The search gave nothing to evaluate: every trial failed or none finished, a worker
    process died, or the final model could not be rebuilt."""


class ExportError(GrutuneError, RuntimeError):
    """An exported model does not compute what its bundle computes."""


class BundleError(GrutuneError):
    """A saved model bundle is missing, corrupted or of an unknown format."""


class TrialFailure(Exception):
    """A trial that cannot go on (NaN/inf loss, out of memory); recorded, study continues."""


class Interrupted(Exception):
    """The user asked to stop (Ctrl-C / SIGTERM); raised after the current epoch."""
