"""Trials per hour: one worker using both threads vs one single-thread worker per core.

Runs ``grutune tune`` twice on the same data, search space, seed and wall-time budget,
one run after the other on an otherwise idle machine:

- ``--workers 1``: one process; PyTorch uses every core for each trial (its default);
- ``--workers N`` (N = cores): N forked processes sharing one study, one thread each.

Prints, for each run, the finished (complete or pruned) trials and the training epochs
in the budget, both per hour, and the ratios. The sampled configurations differ between
the runs (each worker has its own sampler stream), so trial sizes differ: epochs per
hour is the steadier throughput figure, trials per hour the one a user feels. The last
line is a JSON object.

    python bench/workers.py                          # bbc-news, 2 x 4 minutes
    python bench/workers.py --dataset gas --budget 2m
    python bench/workers.py --trials 12              # wall time for a fixed 12 trials

With ``--trials N`` both runs finish the same N trials (no budget) and the figure is
their wall time, start to end of the command (data preparation and the final
evaluation included).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from grutune.config import parse_duration
from grutune.tuning.workers import default_workers


def run(dataset: str, workers: int, budget: str, seed: int, root: Path,
        trials: int | None = None) -> dict:
    run_dir = root / f"workers-{workers}"
    cmd = [sys.executable, "-m", "grutune", "tune", "--dataset", dataset, "--workers",
           str(workers), "--budget", budget if trials is None else "24h", "--trials",
           str(trials or 100000), "--seed", str(seed), "--run-dir", str(run_dir),
           "--ensemble", "1", "--repeats", "1"]
    start = time.monotonic()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.monotonic() - start
    trials = pd.read_csv(run_dir / "trials.csv")
    finished = trials[trials["state"].isin(["COMPLETE", "PRUNED"])]
    hours = parse_duration(budget) / 3600
    return {"workers": workers, "finished_trials": len(finished),
            "epochs": int(trials["epochs"].fillna(0).sum()), "wall_s": round(wall, 1),
            "trials_per_hour": round(len(finished) / hours, 1),
            "epochs_per_hour": round(trials["epochs"].fillna(0).sum() / hours, 1),
            "best_value": float(finished["value"].max())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="bbc-news")
    parser.add_argument("--budget", default="4m")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--trials", type=int, default=None,
                        help="finish this many trials in each run and compare wall times")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        one = run(args.dataset, 1, args.budget, args.seed, Path(tmp), args.trials)
        many = run(args.dataset, args.workers, args.budget, args.seed, Path(tmp), args.trials)
    if args.trials:
        for r in (one, many):
            print(f"--workers {r['workers']}: {r['finished_trials']} trials, {r['epochs']} "
                  f"epochs in {r['wall_s']} s (best validation {r['best_value']:.4f})")
        ratio = round(one["wall_s"] / many["wall_s"], 2)
        print(f"ratio ({args.workers} workers / 1): {ratio}x faster to {args.trials} trials")
        print(json.dumps({"dataset": args.dataset, "trials": args.trials, "one": one,
                          "many": many, "wall_ratio": ratio}))
        return
    for r in (one, many):
        print(f"--workers {r['workers']}: {r['finished_trials']} trials, {r['epochs']} epochs "
              f"in {args.budget} -> {r['trials_per_hour']} trials/h, "
              f"{r['epochs_per_hour']} epochs/h (best validation {r['best_value']:.4f})")
    result = {"dataset": args.dataset, "budget": args.budget, "one": one, "many": many,
              "trials_ratio": round(many["trials_per_hour"] / max(one["trials_per_hour"], 1e-9),
                                    2),
              "epochs_ratio": round(many["epochs_per_hour"] / max(one["epochs_per_hour"], 1e-9),
                                    2)}
    print(f"ratio ({args.workers} workers / 1): trials {result['trials_ratio']}x, "
          f"epochs {result['epochs_ratio']}x")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
