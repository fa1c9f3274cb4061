"""GPU check: grutune's throughput, populations and time to quality on one device, one JSON line.

The ready script for a session that is lent a GPU: run it there, put its figures (and the
card's name, which it prints) in bench/RESULTS.md. Until then the GPU path is untested
on a real GPU. On the CPU, ``--quick`` is CI's smoke test of the same code.

    python bench/gpu_check.py --device cuda                # ~5 minutes on one GPU
    python bench/gpu_check.py --device cuda --precision bf16
    python bench/gpu_check.py --device cpu --quick         # the smoke test: seconds

Three parts, each on ``--device`` (and ``--precision``):

1. Throughput, training sequences per second (the training passes only, the first epoch
   left out as warm-up), grutune's trainer (``trainer.fit``: length-bucketed batches
   over tensors copied to the device once; on a GPU its recurrent layers are cuDNN's
   ``nn.GRU``) against the stock model written the obvious way (padded batches,
   ``pack_padded_sequence``, ``nn.GRU(batch_first=True)``, mean of the valid steps,
   Adam), on two synthetic sets shaped like grutune's data: text-like (token ids of a
   20,000-word vocabulary, lengths 100-400 like BBC News with stop words kept, 5
   classes; embedding 128, hidden 64) and forecast-like (windows of 96 values, 24
   outputs, L1 loss; input width 32, hidden 64). On CUDA the text set is also run under
   bf16 autocast.
2. Populations: K in ``--sizes`` (1 4 8 16) configurations of one architecture
   (``bench/population.py``'s) trained as one stacked model (``fit_population``; on a
   GPU its recurrence is plain PyTorch, K members per batched product) against the same
   K trained one after another (``trainer.fit``: cuDNN on a GPU); aggregate sequences
   per second and their ratio, which decides whether ``--population`` should default
   above 1 on a GPU.
3. Time to quality: ``grutune tune --dataset bbc-news --device DEVICE`` with a fixed
   budget (default workers: one per GPU), as a subprocess; the wall time until the
   first validation accuracy >= 0.97 (from the study's epoch records), the best
   validation accuracy, the test accuracy and the finished trials.

Human lines go to standard error; standard output gets exactly one JSON line: the
device's name, torch's version and every figure. A part that raises is recorded under
``errors`` and the others still run.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import torch
from population import configs, models  # bench/population.py: the same K configurations
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from grutune.config import ModelConfig, TrainConfig, parse_duration
from grutune.data.cache import SequenceData
from grutune.nn.device import current, placed, resolve_device
from grutune.nn.model import SequenceModel
from grutune.nn.population import fit_population
from grutune.nn.trainer import fit, seed_everything

TARGET = 0.97  # bench/time_to_quality.py's target on BBC News


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class Classes:
    """Scoring of the text-like set: cross-entropy, accuracy."""

    direction = "maximize"

    def loss(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(outputs, y)

    def val_metric(self, outputs: torch.Tensor, y: torch.Tensor) -> float:
        return float((outputs.argmax(-1) == y).float().mean())


class Values:
    """Scoring of the forecast-like set: L1, mean absolute error."""

    direction = "minimize"

    def loss(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return nn.functional.l1_loss(outputs, y)

    def val_metric(self, outputs: torch.Tensor, y: torch.Tensor) -> float:
        return float((outputs - y).abs().mean())


def text_like(rows: int, max_len: int, vocab: int, seed: int) -> SequenceData:
    """Token ids right-padded to ``max_len``, lengths from max_len/4 to max_len, 5 classes."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(max_len // 4, max_len + 1, rows)
    x = rng.integers(2, vocab, (rows, max_len))
    x[np.arange(max_len)[None, :] >= lengths[:, None]] = 0
    return SequenceData(torch.as_tensor(x), torch.as_tensor(lengths),
                        torch.as_tensor(rng.integers(0, 5, rows)))


def forecast_like(rows: int, window: int, horizon: int, seed: int) -> SequenceData:
    """Windows of a random walk (``window`` steps, one channel) and the next ``horizon``."""
    rng = np.random.default_rng(seed)
    walk = rng.normal(size=(rows, window + horizon)).cumsum(1)
    walk = (walk - walk.mean(1, keepdims=True)) / walk.std(1, keepdims=True)
    x = torch.as_tensor(walk[:, :window, None], dtype=torch.float32)
    return SequenceData(x, torch.full((rows,), window),
                        torch.as_tensor(walk[:, window:], dtype=torch.float32))


class Reference(nn.Module):
    """The stock model: embedding or linear -> packed nn.GRU -> mean of valid steps -> head."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.embed = (nn.Embedding(cfg.vocab_size, cfg.embed_dim, padding_idx=0)
                      if cfg.vocab_size else nn.Linear(cfg.input_dim, cfg.embed_dim))
        self.gru = nn.GRU(cfg.embed_dim, cfg.hidden_size, batch_first=True)
        self.head = nn.Linear(cfg.hidden_size, cfg.num_outputs)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        # lengths stay on the CPU: pack_padded_sequence wants them there
        packed = pack_padded_sequence(self.embed(x), lengths, batch_first=True,
                                      enforce_sorted=False)
        out, _ = self.gru(packed)
        padded, _ = pad_packed_sequence(out, batch_first=True)  # [B, T, H]
        mean = padded.sum(1) / lengths.to(padded.device).unsqueeze(1).to(padded.dtype)
        return self.head(mean)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reference_seconds(model: nn.Module, data: SequenceData, scorer: object, batch: int,
                      epochs: int, seed: int) -> float:
    """Training seconds of the stock loop over ``epochs`` epochs after one warm-up epoch."""
    place = current()
    device = place.device
    model.to(device).train()
    x, y, lengths = data.x.to(device), data.y.to(device), data.lengths
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    scaler = place.grad_scaler()
    generator = torch.Generator().manual_seed(seed)
    seconds = 0.0
    for epoch in range(epochs + 1):
        _sync(device)
        start = time.perf_counter()
        for index in torch.randperm(len(data), generator=generator).split(batch):
            on_device = index.to(device)
            with place.autocast(device):
                loss = scorer.loss(model(x[on_device], lengths[index]), y[on_device])
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        _sync(device)
        if epoch > 0:  # the first epoch warms up (cuDNN plans, allocator)
            seconds += time.perf_counter() - start
    return seconds


def throughput(name: str, cfg: ModelConfig, train: SequenceData, val: SequenceData,
               scorer: object, batch: int, epochs: int) -> dict:
    """grutune's trainer vs the stock loop on one set: sequences per second."""
    seed_everything(0)
    ours = SequenceModel(cfg)
    result = fit(ours, train, val, TrainConfig(optimizer="adam", lr=1e-3, batch_size=batch,
                                               max_epochs=epochs + 1, patience=epochs + 2),
                 scorer)
    ours_s = sum(e.train_seconds for e in result.history[1:])
    seed_everything(0)
    ref_s = reference_seconds(Reference(cfg), train, scorer, batch, epochs, 0)
    sequences = len(train) * epochs
    row = {"grutune_seq_per_s": round(sequences / ours_s, 1),
           "reference_seq_per_s": round(sequences / ref_s, 1),
           "ratio": round(ref_s / ours_s, 3), "rows": len(train), "epochs": epochs,
           "steps": int(train.x.shape[1]), "batch": batch}
    say(f"throughput {name:<10}: grutune {row['grutune_seq_per_s']:9.1f} seq/s, stock "
        f"nn.GRU {row['reference_seq_per_s']:9.1f} seq/s -> {row['ratio']:.2f}x")
    return row


def population_rows(sizes: list[int], train: SequenceData, val: SequenceData,
                    cfg: ModelConfig, epochs: int) -> list[dict]:
    """K members as one stacked model vs K separate trainings, for each K."""
    rows = []
    for k in sizes:
        cfgs = configs(k, epochs + 1, 0)  # + 1: the first epoch warms up
        alone = models(k, cfg, 0)
        joint = fit_population(copy.deepcopy(alone), cfgs, train, val, Classes())
        pop_s = sum(e.train_seconds for e in joint[0].history[1:])
        solo = [fit(m, train, val, c, Classes()) for m, c in zip(alone, cfgs, strict=True)]
        sep_s = sum(e.train_seconds for r in solo for e in r.history[1:])
        sequences = len(train) * epochs * k
        row = {"k": k, "population_seq_per_s": round(sequences / pop_s, 1),
               "separate_seq_per_s": round(sequences / sep_s, 1),
               "ratio": round(sep_s / pop_s, 3)}
        say(f"population K={k:>2}: stacked {row['population_seq_per_s']:9.1f} seq/s, "
            f"{k} separate {row['separate_seq_per_s']:9.1f} seq/s -> {row['ratio']:.2f}x")
        rows.append(row)
    return rows


def _open_study(run_dir: Path):
    import optuna

    if (run_dir / "study.db").exists():
        storage = f"sqlite:///{run_dir / 'study.db'}"
    else:
        storage = optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(run_dir / "study.journal")))
    name = optuna.study.get_all_study_names(storage)[0]
    return optuna.load_study(study_name=name, storage=storage)


def first_reached(run_dir: Path, started: datetime.datetime, target: float) -> float | None:
    """Seconds from ``started`` to the first epoch of any trial at or above ``target``
    (its trial's start plus that trial's epoch times), or None."""
    best = None
    for trial in _open_study(run_dir).get_trials(deepcopy=False):
        if trial.datetime_start is None:
            continue
        at = (trial.datetime_start - started).total_seconds()
        for epoch in trial.user_attrs.get("history", []):
            at += epoch["seconds"]
            if epoch["val_metric"] >= target:
                best = at if best is None else min(best, at)
                break
    return best


def time_to_quality(spec: str, precision: str, budget: str, quick: bool) -> dict:
    """``grutune tune`` on BBC News on the device, as a subprocess; see the docstring."""
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        run_dir = Path(tmp) / "run"
        cmd = [sys.executable, "-m", "grutune", "tune", "--dataset", "bbc-news", "--device",
               spec, "--precision", precision, "--budget", budget, "--repeats", "1",
               "--no-baseline", "--no-refit", "--ensemble", "1", "--folds", "1", "--seed",
               "0", "--run-dir", str(run_dir), "--json", "-q"]
        cmd += (["--sample", "60", "--max-len", "32", "--trials", "1", "--max-epochs", "1",
                 "--workers", "1"] if quick else ["--trials", "100000"])
        started = datetime.datetime.now()
        start = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - start
        if done.returncode != 0:
            raise RuntimeError(f"grutune tune exited {done.returncode}: "
                               f"{done.stderr.strip()[-500:]}")
        summary = json.loads(done.stdout)
        config = json.loads((run_dir / "config.json").read_text())
        reached = first_reached(run_dir, started, TARGET)
        trials = _open_study(run_dir).get_trials(deepcopy=False)
        row = {"target": TARGET, "first_target_s": round(reached, 1) if reached else None,
               "best_val_accuracy": summary["best_value"],
               "test_accuracy": summary["test_metrics"].get("accuracy"),
               "finished_trials": sum(t.state.name in ("COMPLETE", "PRUNED") for t in trials),
               "workers": config["study"]["workers"], "wall_s": round(wall, 1),
               "budget_s": parse_duration(budget),
               "command": " ".join(cmd[2:]).replace(str(run_dir), "RUN_DIR")}
    say(f"time to quality: {row['finished_trials']} trials in {row['wall_s']} s, best "
        f"validation accuracy {row['best_val_accuracy']:.4f}, test {row['test_accuracy']:.4f}, "
        f"first >= {TARGET}: {row['first_target_s']} s")
    return row


def _part(errors: dict, name: str, run) -> object:
    try:
        return run()
    except Exception as err:  # noqa: BLE001 - one failed part must not hide the others
        errors[name] = f"{type(err).__name__}: {err}"
        say(f"{name} failed:\n{traceback.format_exc()}")
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N, mps")
    parser.add_argument("--precision", default="fp32", help="fp32, bf16, fp16 (CUDA)")
    parser.add_argument("--quick", action="store_true", help="every part tiny (CI smoke)")
    parser.add_argument("--sizes", type=int, nargs="+", default=None,
                        help="population sizes (default 1 4 8 16; --quick: 1 2)")
    parser.add_argument("--budget", default="3m", help="time to quality's search budget")
    args = parser.parse_args()
    spec = resolve_device(args.device, args.precision)
    quick = args.quick
    rows, max_len, vocab, epochs = (96, 40, 500, 1) if quick else (4096, 400, 20_000, 3)
    sizes = args.sizes or ([1, 2] if quick else [1, 4, 8, 16])
    text_cfg = ModelConfig(num_outputs=5, vocab_size=vocab, embed_dim=128, hidden_size=64,
                           pooling="mean")
    series_cfg = ModelConfig(num_outputs=24, input_dim=1, embed_dim=32, hidden_size=64,
                             pooling="mean")
    text, text_val = text_like(rows, max_len, vocab, 0), text_like(rows // 8, max_len, vocab, 1)
    window = 24 if quick else 96
    series, series_val = forecast_like(rows, window, 24, 0), forecast_like(rows // 8, window, 24, 1)
    errors: dict[str, str] = {}
    begin = time.perf_counter()
    with placed(spec, args.precision) as place:
        device = place.device
        name = (torch.cuda.get_device_name(device) if device.type == "cuda" else
                "Apple GPU (mps)" if device.type == "mps" else "cpu")
        say(f"device {spec}: {name}; torch {torch.__version__}, precision {args.precision}"
            f"{', quick' if quick else ''}")
        speed = {
            "text": _part(errors, "throughput_text", lambda: throughput(
                "text", text_cfg, text, text_val, Classes(), 64, epochs)),
            "forecast": _part(errors, "throughput_forecast", lambda: throughput(
                "forecast", series_cfg, series, series_val, Values(), 64, epochs))}
        pop_rows = rows // 2 if not quick else rows
        populations = _part(errors, "population", lambda: population_rows(
            sizes, text_like(pop_rows, max_len, vocab, 2), text_val, text_cfg, epochs))
    if device.type == "cuda" and args.precision == "fp32":
        with placed(spec, "bf16"):
            speed["text_bf16"] = _part(errors, "throughput_text_bf16", lambda: throughput(
                "text bf16", text_cfg, text, text_val, Classes(), 64, epochs))
    quality = _part(errors, "time_to_quality",
                    lambda: time_to_quality(spec, args.precision, args.budget, quick))
    print(json.dumps({
        "device": spec, "device_name": name,
        "cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
        "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version()
        if device.type == "cuda" else None, "precision": args.precision, "quick": quick,
        "throughput": speed, "population": populations, "time_to_quality": quality,
        "seconds": round(time.perf_counter() - begin, 1), "errors": errors}))


if __name__ == "__main__":
    main()
