"""Hostile files and hostile conditions: the --space YAML file, file modes under a
umask, and running out of memory in a trial."""

from __future__ import annotations

import errno
import json
import os
import re
import stat
from pathlib import Path

import pandas as pd
import pytest
import torch

from grutune.cli import app
from grutune.exceptions import ConfigError, TrialFailure
from grutune.files import atomic_path, current_umask, write_json, write_text
from grutune.nn.oom import is_oom
from grutune.search_space import MAX_SPACE_BYTES, load_space
from grutune.tasks import default_space
from grutune.tuning import fitting, population

from .hostile import assert_refused

# --- the --space file --------------------------------------------------------------------

LAUGHS = "\n".join(
    [f'a0: &a0 [{", ".join(["lol"] * 9)}]']
    + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    + ["lr: *a9"]) + "\n"  # ~600 bytes that expand to 9**10 = 3.5 billion strings

SPACES = {
    "billion laughs": (LAUGHS, "YAML anchors and aliases (&name, *name) are not allowed"),
    "one anchor": ("hidden_size: &h [32, 64]\n", "anchors and aliases"),
    "an alias": ("x: &h [32, 64]\nhidden_size: *h\n", "anchors and aliases"),
    "a merge key": ("base: &b {low: 0.001, high: 0.01}\nlr:\n  <<: *b\n",
                    "anchors and aliases"),
    "too large": ("# padding\n" * (MAX_SPACE_BYTES // 10 + 1), "a space file is at most 64 KB"),
    "deep nesting": ("lr: " + "[" * 5000 + "]" * 5000 + "\n", "nested more than 8 deep"),
    "zero": ("0\n", "expected a mapping of parameter names"),
    "false": ("false\n", "expected a mapping of parameter names"),
    "empty string": ('""\n', "expected a mapping of parameter names"),
    "empty list": ("[]\n", "expected a mapping of parameter names"),
    "empty mapping": ("{}\n", ""),  # accepted: see test_empty_space_files_mean_no_overrides
    "a bare string": ("hidden_size\n", "expected a mapping of parameter names"),
    "a number": ("42\n", "expected a mapping of parameter names"),
    "a list": ("- lr\n- dropout\n", "expected a mapping of parameter names"),
    "a huge integer": ("hidden_size: " + "9" * 5000 + "\n", "not valid YAML"),
    "not UTF-8": (b"lr: \xff\xfe\n", "not valid YAML"),
    "log not a bool": ('lr: {low: 0.001, high: 0.01, log: "no"}\n',
                       "lr: log must be true or false; got 'no'"),
    "infinite": ("lr: [1e999]\n", "lr: expected a finite number"),
    "mixed range keys": ("lr: {1: 2, a: 3}\n", "a range needs exactly low, high"),
    "long value": ("cell: " + "x" * 5000 + "\n", "cell: must be one of gru, lstm; got 'xxx"),
    "long name": ("y" * 1000 + ": 1\n", "unknown parameter 'yyy"),
    "long list value": ("hidden_size: [" + ", ".join(["abc"] * 2000) + "]\n",
                        "hidden_size: expected a number; got 'abc'"),
}


@pytest.mark.parametrize("how", [k for k in SPACES if k != "empty mapping"])
def test_hostile_space_files_are_refused(texts_csv, tmp_path, how):
    text, message = SPACES[how]
    space = tmp_path / "bad.yaml"
    space.write_bytes(text if isinstance(text, bytes) else text.encode())
    run_dir = tmp_path / "run"
    line = assert_refused(["tune", texts_csv, "--space", space, "--run-dir", run_dir,
                           "--trials", "1", "--max-epochs", "1", "--workers", "1"],
                          message, [tmp_path])
    # values are quoted short (SHORT characters), never whole
    assert len(line) < 800 and not re.search(r"(.)\1{60}", line), line
    assert line.count("abc") < 20, line
    assert not run_dir.exists()


def test_billion_laughs_is_refused_before_expanding(tmp_path):
    space = tmp_path / "laughs.yaml"
    space.write_text(LAUGHS)
    assert len(LAUGHS) < 1000
    with pytest.raises(ConfigError, match="anchors and aliases"):
        load_space(default_space("text"), str(space))  # returns at once: nothing is expanded


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "---\n", "{}\n"])
def test_empty_space_files_mean_no_overrides(tmp_path, text):
    space = tmp_path / "space.yaml"
    space.write_text(text)
    default = default_space("text")
    assert load_space(default, str(space)).describe() == default.describe()


def test_a_normal_space_file_still_works(tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text("# tiny\nlr: {low: 1.0e-4, high: 1.0e-2, log: true}\n"
                     "hidden_size: [16, 32]\ncell: gru\ndropout: 0.1\n")
    got = load_space(default_space("text"), str(space))
    assert got["lr"].low == 1e-4 and got["hidden_size"].choices == (16, 32)
    assert got["dropout"].kind == "fixed" and got.named >= {"lr", "hidden_size", "cell"}


# --- file modes under a umask --------------------------------------------------------------

@pytest.fixture
def umask():
    """Set a umask for the test; the old one comes back after."""
    old = os.umask(0o022)
    os.umask(old)
    yield lambda mask: os.umask(mask)
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_follow_the_umask(tmp_path, umask, mask, mode):
    umask(mask)
    assert current_umask() == mask
    write_json(tmp_path / "a.json", {"a": 1})
    write_text(tmp_path / "b.txt", "b")
    with atomic_path(tmp_path / "c.csv") as tmp:
        pd.DataFrame({"x": [1]}).to_csv(tmp, index=False)
    (tmp_path / "d.txt").write_text("old")
    os.chmod(tmp_path / "d.txt", 0o600)
    write_text(tmp_path / "d.txt", "new")  # a replaced file gets the new file's mode
    for name in ("a.json", "b.txt", "c.csv", "d.txt"):
        assert _mode(tmp_path / name) == mode, (name, oct(_mode(tmp_path / name)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.txt", "c.csv", "d.txt"]


@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o077, 0o600)])
def test_bundle_files_follow_the_umask(tmp_path, umask, mask, mode):
    from grutune.bundle import save_bundle
    from grutune.config import ModelConfig
    from grutune.nn.model import Ensemble, SequenceModel

    umask(mask)
    cfg = ModelConfig(num_outputs=2, vocab_size=4, embed_dim=2, hidden_size=2)
    save_bundle(tmp_path / "model", Ensemble([SequenceModel(cfg)], "probability"),
                {"task": "text", "labels": ["a", "b"], "vocab": list("abcd")}, {})
    for path in (tmp_path / "model").iterdir():
        assert _mode(path) == mode, (path.name, oct(_mode(path)))


# --- out of memory -------------------------------------------------------------------------

# What torch's CPU allocator raises (torch 2.x): a plain RuntimeError.
CPU_OOM = ("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate "
           "memory: you tried to allocate 24000000000 bytes. Error code 12 (Cannot allocate "
           "memory)")


def _real_cpu_oom() -> BaseException:
    """A genuine allocator failure: 2**60 bytes exceed any address space, so nothing is
    ever allocated."""
    try:
        torch.empty(2**60, dtype=torch.uint8)
    except RuntimeError as err:
        return err
    raise AssertionError("a 2**60-byte tensor was allocated")


def _caused(cause: BaseException) -> BaseException:
    err = RuntimeError("the worker failed")
    err.__cause__ = cause
    return err


OOMS = {
    "torch.OutOfMemoryError": lambda: torch.OutOfMemoryError("CUDA out of memory. Tried to "
                                                             "allocate 2.00 GiB"),
    "torch.cuda.OutOfMemoryError": lambda: torch.cuda.OutOfMemoryError("out of memory"),
    "MemoryError": MemoryError,
    "OSError ENOMEM": lambda: OSError(errno.ENOMEM, "Cannot allocate memory"),
    "CPU allocator (real)": _real_cpu_oom,
    "CPU allocator (message)": lambda: RuntimeError(CPU_OOM),
    "CPU allocator (not enough memory)": lambda: RuntimeError(
        "DefaultCPUAllocator: not enough memory: you tried to allocate 24000000000 bytes."),
    "CUDA error": lambda: RuntimeError("CUDA error: out of memory\nCUDA kernel errors might "
                                       "be asynchronously reported"),
    "MPS": lambda: RuntimeError("MPS backend out of memory (MPS allocated: 17.00 GB, other "
                                "allocations: 1.00 GB, max allowed: 18.13 GB)."),
    "HIP": lambda: RuntimeError("HIP out of memory. Tried to allocate 2.00 GiB"),
    "cuBLAS": lambda: RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling "
                                   "`cublasCreate(handle)`"),
    "raised from an OOM": lambda: _caused(MemoryError()),
}
NOT_OOMS = {
    "shape error": lambda: RuntimeError("mat1 and mat2 shapes cannot be multiplied (4x3 and 5x2)"),
    "a ValueError's words": lambda: ValueError("out of memory"),
    "other OSError": lambda: OSError(errno.ENOSPC, "No space left on device"),
    "NaN loss": lambda: TrialFailure("training loss became nan in epoch 2"),
    "KeyboardInterrupt": KeyboardInterrupt,
}


@pytest.mark.parametrize("kind", list(OOMS))
def test_is_oom_knows_every_allocator(kind):
    assert is_oom(OOMS[kind]())


@pytest.mark.parametrize("kind", list(NOT_OOMS))
def test_is_oom_leaves_other_errors_alone(kind):
    assert not is_oom(NOT_OOMS[kind]())


def _study(run_dir: Path) -> pd.DataFrame:
    return pd.read_csv(run_dir / "trials.csv")


def test_cpu_oom_fails_one_trial_and_the_study_goes_on(texts_csv, tmp_path, runner,
                                                        monkeypatch):
    calls = []
    real_fit = fitting.fit

    def fit(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # the second trial: the CPU allocator gives up
            raise RuntimeError(CPU_OOM)
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(fitting, "fit", fit)
    run_dir = tmp_path / "run"
    result = runner.invoke(app, ["tune", str(texts_csv), "--run-dir", str(run_dir),
                                 "--trials", "3", "--max-epochs", "1", "--workers", "1",
                                 "--folds", "1", "--repeats", "1", "--ensemble", "1"])
    assert result.exit_code == 0, (result.output, result.exception)
    trials = _study(run_dir)
    failed = trials[trials["state"] == "FAIL"]
    assert len(failed) == 1 and (trials["state"] == "COMPLETE").sum() == 2
    assert failed["fail_reason"].iloc[0].startswith("out of memory: [enforce fail")
    assert "can't allocate memory" in failed["fail_reason"].iloc[0]
    assert "Traceback" not in result.output
    assert json.loads((run_dir / "metrics.json").read_text())["split"] == "test"


def test_oom_in_a_population_fails_its_members_and_the_study_goes_on(texts_csv, tmp_path,
                                                                      runner, monkeypatch):
    calls = []
    real = population.fit_population

    def fit_population(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError(CPU_OOM)
        return real(*args, **kwargs)

    monkeypatch.setattr(population, "fit_population", fit_population)
    space = tmp_path / "space.yaml"
    space.write_text("optimizer: adamw\nhidden_size: 8\nembed_dim: 8\nbatch_size: 32\n")
    run_dir = tmp_path / "run"
    result = runner.invoke(app, ["tune", str(texts_csv), "--run-dir", str(run_dir),
                                 "--trials", "4", "--max-epochs", "1", "--workers", "1",
                                 "--folds", "1", "--repeats", "1", "--ensemble", "1",
                                 "--population", "2", "--space", str(space)])
    assert result.exit_code == 0, (result.output, result.exception)
    assert calls, "no population was trained"
    trials = _study(run_dir)
    failed = trials[trials["state"] == "FAIL"]
    assert len(failed) == 2 and (trials["state"] == "COMPLETE").sum() >= 1
    assert all(r.startswith("out of memory (population of 2): [enforce fail")
               for r in failed["fail_reason"])


def test_oom_retraining_a_final_member_is_one_error_line(texts_csv, tmp_path, runner,
                                                         monkeypatch):
    from grutune.tuning import evaluate, fitting

    def fit(*args, **kwargs):
        raise RuntimeError(CPU_OOM)

    def restore_models(*args, **kwargs):  # the search trained; the retraining runs out
        monkeypatch.setattr(fitting, "fit", fit)
        return real_restore(*args, **kwargs)

    # no checkpoint (a study filled elsewhere): the member is retrained, and runs out
    real_restore = fitting.restore_models
    monkeypatch.setattr(evaluate, "checkpoint_paths",
                        lambda run_dir, number, folds: [tmp_path / "none.safetensors"])
    monkeypatch.setattr(evaluate, "restore_models", restore_models)
    run_dir = tmp_path / "run"
    result = runner.invoke(app, ["tune", str(texts_csv), "--run-dir", str(run_dir),
                                 "--trials", "1", "--max-epochs", "1", "--workers", "1",
                                 "--folds", "1", "--repeats", "1", "--ensemble", "1"])
    assert result.exit_code == 2, (result.output, result.exception)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in result.output
    assert ("trial 0: retraining it for the final model failed (out of memory: [enforce"
            in errors[0]), errors
