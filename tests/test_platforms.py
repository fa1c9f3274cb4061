"""Where grutune runs: compiler flags that suit the compiler found, and trial workers
that fall back to one process where fork is not safe (macOS, Windows)."""

from __future__ import annotations

import logging
import platform
import shutil
import stat
from pathlib import Path

import pytest

from grutune.cli import app
from grutune.nn import recurrence
from grutune.nn.recurrence import compile_flags
from grutune.tuning import search, workers
from grutune.tuning.workers import usable_workers

from .conftest import finished_trials

# --- compiler flags --------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("c++") is None, reason="no C++ compiler on this machine")
def test_this_machines_compiler_gets_every_flag_the_kernel_wants():
    """GCC on x86 (CI) takes them all, in the order the kernel cache was built with."""
    flags = compile_flags("c++", "Linux")
    assert flags[0] == "-O3" and "-ffast-math" in flags
    assert "-march=native" in flags or "-mcpu=native" in flags
    if platform.machine() in ("x86_64", "AMD64"):  # exact division: saturated gates are 1
        assert "-mno-recip" in flags


def _fake_compiler(folder: Path, refuses: tuple[str, ...]) -> str:
    """A compiler that refuses the flags ``refuses`` (as an older clang on Arm would)."""
    path = folder / "fakecc"
    cases = "".join(f'    {flag}) exit 1 ;;\n' for flag in refuses)
    path.write_text(f'#!/bin/sh\nfor a in "$@"; do\n  case "$a" in\n{cases}  esac\ndone\n'
                    'exit 0\n')
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_flags_a_compiler_refuses_are_left_out(tmp_path):
    cc = _fake_compiler(tmp_path, ("-march=native", "-mno-recip", "-fopenmp-simd"))
    assert compile_flags(cc, "Darwin") == ["-O3", "-mcpu=native", "-ffast-math"]


def test_no_compiler_means_no_flags_and_no_crash(tmp_path):
    assert compile_flags(str(tmp_path / "no-such-compiler"), "Linux") == []


def test_windows_gets_msvc_flags():
    assert compile_flags(system="Windows") == ["/O2", "/fp:fast"]
    assert all(not f.startswith("-") for f in compile_flags(system="Windows"))


def test_the_kernel_is_built_with_the_probed_flags(monkeypatch):
    """``_build`` hands torch the probed flags, not a fixed list."""
    seen = {}

    def load(**kwargs):
        seen.update(kwargs)
        return None

    monkeypatch.setattr("torch.utils.cpp_extension.load", load)
    monkeypatch.setattr(recurrence, "compile_flags", lambda: ["-O3", "-probed"])
    monkeypatch.delenv("GRUTUNE_NO_KERNEL", raising=False)
    recurrence._build()
    assert seen["extra_cflags"] == ["-O3", "-probed"]


# --- workers ---------------------------------------------------------------------------


@pytest.mark.parametrize(("system", "requested", "expected", "warned"), [
    ("Linux", 3, 3, False),
    ("Linux", None, workers.default_workers(), False),
    ("Darwin", 4, 1, True),
    ("Windows", 2, 1, True),
    ("Windows", None, 1, False),  # the default: no warning for what nobody asked
    ("Darwin", 1, 1, False),
])
def test_workers_fall_back_to_one_where_fork_is_unsafe(system, requested, expected, warned,
                                                       caplog):
    with caplog.at_level(logging.WARNING, logger="grutune"):
        assert usable_workers(requested, system) == expected
    assert bool(caplog.records) == warned
    if warned:
        assert "fork" in caplog.text and system in caplog.text


def test_a_run_asking_for_workers_on_such_a_platform_runs_in_one_process(
        texts_csv, tmp_path, runner, monkeypatch):
    monkeypatch.setattr(workers, "fork_safe", lambda system=None: False)
    forked = []
    monkeypatch.setattr(search, "run_workers", lambda *a, **k: forked.append(1) or [0])
    run_dir = tmp_path / "run"
    result = runner.invoke(app, ["tune", str(texts_csv), "--run-dir", str(run_dir),
                                 "--workers", "2", "--trials", "2", "--max-epochs", "1",
                                 "--folds", "1", "--repeats", "1"])
    assert result.exit_code == 0, (result.output, result.exception)
    assert "Traceback" not in result.output
    assert "trial workers need fork" in result.output
    assert not forked and finished_trials(run_dir) == 2
