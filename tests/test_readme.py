"""The README's quick start is what CI runs: keep the two in step."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _quick_start_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", section)


def test_quick_start_has_exactly_two_commands():
    commands = _quick_start_commands()
    assert len(commands) == 2
    run, test = commands
    assert run.endswith("grutune tune")
    # CI fails on a kernel that does not build, runs a test process per core (keeping a
    # module's tests together), and shows skip reasons and slow tests
    assert test.endswith("&& GRUTUNE_REQUIRE_KERNEL=1 pytest -n auto --dist loadscope "
                         "-rs --durations=15")
    assert "dev" in re.search(r"pip install -e '\.\[(.+?)\]'", test).group(1).split(",")
    for command in commands:  # the pinned CPU torch goes in before the package
        assert command.index("pip install torch==2.13.0") < command.index("pip install -e")


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert _quick_start_commands()[1] in ci
