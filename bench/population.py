"""Population training vs the same configurations trained one after another.

For each K in ``--sizes`` (default 1 4 8 16): K configurations of one architecture
(BBC News, 1-layer GRU, embedding 128, hidden 64, mean pooling, batch 64, max length 400,
stop words kept) that differ in everything a population lets members differ in —
learning rate, schedule (cosine / step / exponential, warm-up), weight decay or L2
penalty, gradient clipping, initialization — are trained for ``--epochs`` epochs

- together, with ``population.fit_population`` (one stacked model), and
- one after another with the single-trial trainer (``trainer.fit``),

from the same initial weights and the same batches. Dropout is 0 in both, so each member
and its sequential twin compute the same thing and their accuracies must agree (checked
per member: within one point). Prints the aggregate training throughput (sequences per
second, training passes only), trials per hour at this epoch count (whole wall time,
validation included) and the ratio; the last line is a JSON object.

    python bench/population.py                 # ~5 minutes on a 2-core CPU
    python bench/population.py --threads 1     # as one single-thread worker would run
    python bench/population.py --sizes 4 --epochs 1 --sample 400   # a quick look
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import time

import numpy as np
import torch

from grutune.config import DataConfig, ModelConfig, TrainConfig
from grutune.nn.model import SequenceModel
from grutune.nn.population import fit_population
from grutune.nn.recurrence import cpu_kernel
from grutune.nn.trainer import fit, seed_everything
from grutune.tasks import get_task

INITS = ("default", "xavier", "orthogonal", "he")
SCHEDULES = ("cosine", "step", "exponential", "constant")


def configs(k: int, epochs: int, seed: int) -> list[TrainConfig]:
    """K training configurations drawn at random (the same K for the same seed)."""
    rng = np.random.default_rng(seed + k)
    out = []
    for i in range(k):
        decay = bool(rng.random() < 0.5)
        out.append(TrainConfig(
            optimizer="adamw", lr=float(10 ** rng.uniform(-3, -2)),
            weight_decay=float(10 ** rng.uniform(-4, -1)) if decay else 0.0,
            l2_penalty=0.0 if decay else float(10 ** rng.uniform(-6, -4)),
            schedule=SCHEDULES[i % len(SCHEDULES)], warmup_epochs=float(rng.integers(0, 2)),
            step_size=1, gamma=0.7, grad_clip=float(rng.choice([0.0, 1.0, 5.0])),
            batch_size=64, max_epochs=epochs, patience=epochs + 1, seed=seed))
    return out


def models(k: int, model_cfg: ModelConfig, seed: int) -> list[SequenceModel]:
    out = []
    for i in range(k):
        seed_everything(seed + i)
        cfg = ModelConfig(**{**model_cfg.__dict__, "init": INITS[i % len(INITS)]})
        out.append(SequenceModel(cfg))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--sample", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: torch's own, one per core)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cpu_kernel()

    task = get_task("text")
    prep = task.prepare(DataConfig(dataset="bbc-news", max_len=400, sample=args.sample,
                                   stop_words=False))
    model_cfg = ModelConfig(num_outputs=len(prep.state["labels"]),
                            vocab_size=len(prep.state["vocab"]), embed_dim=128,
                            hidden_size=64, pooling="mean", dropout=0.0)
    n_train = len(prep.train)
    print(f"BBC News: {n_train} training / {len(prep.val)} validation sequences, max length "
          f"400; {args.epochs} epochs per configuration; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {platform.processor() or platform.machine()}")
    rows = []
    for k in args.sizes:
        cfgs = configs(k, args.epochs, args.seed)
        alone = models(k, model_cfg, args.seed)
        together = copy.deepcopy(alone)
        start = time.perf_counter()
        joint = fit_population(together, cfgs, prep.train, prep.val, task)
        pop_wall = time.perf_counter() - start
        pop_train = sum(e.train_seconds for e in joint[0].history)  # shared epochs
        start = time.perf_counter()
        solo = [fit(m, prep.train, prep.val, c, task) for m, c in zip(alone, cfgs, strict=True)]
        seq_wall = time.perf_counter() - start
        seq_train = sum(e.train_seconds for r in solo for e in r.history)
        sequences = n_train * args.epochs * k
        diffs = [100 * (a.history[-1].val_metric - b.history[-1].val_metric)
                 for a, b in zip(joint, solo, strict=True)]
        row = {"k": k, "population_seq_per_s": round(sequences / pop_train, 1),
               "sequential_seq_per_s": round(sequences / seq_train, 1),
               "throughput_ratio": round(seq_train / pop_train, 3),
               "population_trials_per_h": round(k / pop_wall * 3600, 1),
               "sequential_trials_per_h": round(k / seq_wall * 3600, 1),
               "trials_per_h_ratio": round(seq_wall / pop_wall, 3),
               "max_accuracy_diff_points": round(max(abs(d) for d in diffs), 2),
               "accuracy_within_one_point": all(abs(d) <= 1.0 for d in diffs)}
        rows.append(row)
        print(f"K={k:>2}: population {row['population_seq_per_s']:7.1f} seq/s "
              f"({row['population_trials_per_h']:6.1f} trials/h), sequential "
              f"{row['sequential_seq_per_s']:7.1f} seq/s ({row['sequential_trials_per_h']:6.1f} "
              f"trials/h) -> {row['throughput_ratio']:.2f}x throughput, "
              f"{row['trials_per_h_ratio']:.2f}x trials/h; validation accuracy per member "
              f"population - sequential: {[round(d, 2) for d in diffs]} points "
              f"({'all within 1 point' if row['accuracy_within_one_point'] else 'NOT within 1'})",
              flush=True)
    print(json.dumps({"epochs": args.epochs, "threads": torch.get_num_threads(),
                      "results": rows}))


if __name__ == "__main__":
    main()
