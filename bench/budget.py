"""Does a run keep its announced time on a busy machine?

Starts ``--hogs`` CPU hogs (processes that spin on one core each), then runs
``grutune tune`` with the given arguments beside them, and prints the phases' times
read from the run's ``tune.log`` (search start, seed repeats, end) against what the
plan announces: the ``--budget`` of search, then at most 40% of it for seed repeats.
The README's promise is the default run (``grutune tune``: 10 minutes of search, at
most 4 minutes of seed repeats, a few seconds of evaluation), so the check is
``wall <= budget x 1.4 + 60 s``. The last line is a JSON object.

    python bench/budget.py                          # the README's run beside 2 hogs
    python bench/budget.py --hogs 1 -- --dataset gunpoint --budget 2m

Run it alone: another benchmark or a test run beside it is load it does not count.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import re
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from grutune.config import parse_duration
from grutune.tuning.repeats import REPEAT_SHARE

STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \w+ (.*)$")


def _spin() -> None:
    while True:
        pass


def _log_times(path: Path) -> list[tuple[float, str]]:
    """(seconds since the epoch, message) of every line of tune.log."""
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        match = STAMP.match(line)
        if match:
            stamp = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f")
            out.append((stamp.timestamp(), match.group(2)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hogs", type=int, default=2, help="busy processes beside the run")
    parser.add_argument("args", nargs="*", help="grutune tune arguments (after --)")
    opts = parser.parse_args()
    budget = "10m"
    for i, arg in enumerate(opts.args):
        if arg == "--budget":
            budget = opts.args[i + 1]
    search_s = parse_duration(budget)
    announced = search_s * (1 + REPEAT_SHARE)
    run_dir = Path(tempfile.mkdtemp(prefix="grutune-budget-")) / "run"
    command = ["grutune", "tune", *opts.args, "--run-dir", str(run_dir)]
    hogs = [mp.Process(target=_spin, daemon=True) for _ in range(opts.hogs)]
    for hog in hogs:
        hog.start()
    try:
        start = time.time()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        wall = time.time() - start
    finally:
        for hog in hogs:
            hog.terminate()
    lines = _log_times(run_dir / "tune.log")
    search_start = next((t for t, m in lines if m.startswith("search:")), start)
    repeats = [t for t, m in lines if m.startswith("seed repeat")]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    result = {
        "command": " ".join(command), "hogs": opts.hogs, "cpus": mp.cpu_count(),
        "announced_s": round(announced, 1), "wall_s": round(wall, 1),
        "within_announced_plus_60s": wall <= announced + 60,
        "search_started_at_s": round(search_start - start, 1),
        "first_seed_repeat_at_s": round(repeats[0] - start, 1) if repeats else None,
        "last_seed_repeat_at_s": round(repeats[-1] - start, 1) if repeats else None,
        "seed_repeat_note": metrics.get("seed_repeats", {}).get("note"),
        "test_accuracy": metrics.get("accuracy"),
    }
    print(f"announced {announced / 60:.1f} min (search {search_s / 60:.1f} + seed repeats "
          f"at most {search_s * REPEAT_SHARE / 60:.1f}); took {wall / 60:.1f} min beside "
          f"{opts.hogs} CPU hog(s)")
    print(json.dumps(result))
    sys.exit(0 if result["within_announced_plus_60s"] else 1)


if __name__ == "__main__":
    main()
