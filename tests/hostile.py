"""The bad-input contract, checked the same way for every command and every case.

A refused input gives exit code 2, exactly one ``error:`` line that contains the
expected words (other stderr lines may only be ``warning:`` lines), no traceback, and
leaves no new file or folder behind: every root given is walked before and after.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from typer.testing import CliRunner

from grutune.cli import app


def snapshot(*roots: Path) -> set[str]:
    """Every path under ``roots`` (recursively), and each root's own existence."""
    seen: set[str] = set()
    for root in roots:
        root = Path(root)
        if not root.exists():
            continue
        seen.add(str(root))
        for parent, dirs, files in os.walk(root):
            seen.update(os.path.join(parent, name) for name in dirs + files)
    return seen


def assert_refused(args: Sequence[str], message: str, roots: Sequence[Path],
                   runner: CliRunner | None = None) -> str:
    """Run ``grutune ARGS`` and check the contract above; returns the error line."""
    runner = runner or CliRunner()
    before = snapshot(*roots)
    result = runner.invoke(app, [str(a) for a in args])
    stderr = result.stderr
    assert result.exit_code == 2, (result.exit_code, stderr, result.output,
                                   result.exception)
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, stderr
    assert message in errors[0], (message, stderr)
    assert all(line.startswith(("error: ", "warning: ")) for line in lines), stderr
    assert "Traceback" not in result.output + stderr
    after = snapshot(*roots)
    assert after == before, f"left behind: {sorted(after - before)}"
    return errors[0]
