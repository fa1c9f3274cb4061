"""bench/gpu_check.py, the script a session lent a GPU runs, smoke-tested on the CPU: it
runs every part through the same code and prints exactly one JSON line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.realdata
def test_gpu_check_quick_on_the_cpu_prints_one_json_line():
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_check.py"), "--device",
                           "cpu", "--quick"], capture_output=True, text=True, timeout=600,
                          cwd=ROOT, check=False)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, done.stdout
    record = json.loads(lines[0])
    assert record["errors"] == {}, record["errors"]
    assert (record["device"], record["device_name"]) == ("cpu", "cpu")
    assert record["torch"] == torch.__version__ and record["quick"] is True
    assert set(record) >= {"throughput", "population", "time_to_quality", "precision",
                           "cuda", "cudnn", "seconds"}
    for part in ("text", "forecast"):
        row = record["throughput"][part]
        assert min(row["grutune_seq_per_s"], row["reference_seq_per_s"], row["ratio"]) > 0
    assert [r["k"] for r in record["population"]] == [1, 2]
    for row in record["population"]:
        assert min(row["population_seq_per_s"], row["separate_seq_per_s"], row["ratio"]) > 0
    quality = record["time_to_quality"]
    assert quality["finished_trials"] >= 1 and quality["wall_s"] > 0
    assert 0 <= quality["best_val_accuracy"] <= 1 and 0 <= quality["test_accuracy"] <= 1
    assert "--device cpu" in quality["command"]
