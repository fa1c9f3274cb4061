"""Time to quality: how soon a search first reaches 97% validation accuracy on BBC News.

Two searches over the same default text search space, one after the other, each capped
at ``--cap`` (30 minutes):

1. ``grutune tune --dataset bbc-news --workers 1 --population 1`` (the defaults otherwise:
   TPE, median pruner, warm start from the default configuration) as a subprocess; its
   SQLite study is polled read-only every second for the first validation accuracy
   (any trial, any epoch) at or above ``--target``.
2. A plain Optuna study (TPE and the median pruner, same seeds and pruner settings, no
   warm start) whose objective is the loop a user writes by hand: a DataLoader over
   padded tensors, ``pack_padded_sequence`` into ``nn.GRU`` (layers, direction, dropout
   between layers), the same pooling choices, dropout, head, optimizer, schedule, weight
   decay or L2, clipping, initialization and early stopping the space describes. It
   trains on the same prepared tensors (grutune's cleaning, vocabulary and split) and its
   time includes that preparation, as grutune's includes its own. ``--warm-start`` gives
   it grutune's first trial too (the space's defaults), so the two differ only in the
   trainer and what follows.

Prints both times (wall clock from the start of each search, data preparation included)
and their ratio; a search that never reaches the target counts as the cap (a lower bound,
marked ``reached: false``). The last line is a JSON object.

    python bench/time_to_quality.py                 # up to ~1 hour on a 2-core CPU
    python bench/time_to_quality.py --warm-start    # the reference starts from our defaults
    python bench/time_to_quality.py --cap 5m --target 0.9   # a quick look
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from torch.utils.data import DataLoader, TensorDataset

from grutune.config import DataConfig, parse_duration
from grutune.nn.trainer import lr_factor, seed_everything
from grutune.render import format_seconds
from grutune.search_space import train_config
from grutune.tasks import default_space, get_task
from grutune.tuning.study import STARTUP_TRIALS, WARMUP_EPOCHS

MAX_EPOCHS = 20  # grutune's text default


def grutune_time(target: float, cap_s: float, seed: int) -> tuple[float, bool, str]:
    """(seconds to the first epoch at or above target, reached?, what ran)."""
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        cmd = [sys.executable, "-m", "grutune", "tune", "--dataset", "bbc-news", "--workers",
               "1", "--population", "1", "--budget", f"{int(cap_s)}s", "--trials", "100000",
               "--seed", str(seed), "--run-dir", str(run_dir)]
        start = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        reached = False
        try:
            while time.monotonic() - start < cap_s and proc.poll() is None:
                time.sleep(1.0)
                best = _best_intermediate(run_dir / "study.db")
                if best is not None and best >= target:
                    reached = True
                    break
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        return time.monotonic() - start, reached, " ".join(cmd[2:])


def _best_intermediate(db: Path) -> float | None:
    if not db.exists():
        return None
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
            row = con.execute("select max(intermediate_value) from "
                              "trial_intermediate_values").fetchone()
        return row[0]
    except sqlite3.Error:  # tables not created yet
        return None


class Reference(nn.Module):
    """The hand-written model: embedding -> packed nn.GRU -> pooling -> dropout -> head."""

    def __init__(self, p: dict, vocab: int, classes: int):
        super().__init__()
        self.p = p
        self.embed = nn.Embedding(vocab, p["embed_dim"], padding_idx=0)
        layers = p["num_layers"]
        self.gru = nn.GRU(p["embed_dim"], p["hidden_size"], num_layers=layers,
                          bidirectional=p["bidirectional"], batch_first=True,
                          dropout=p["layer_dropout"] if layers > 1 else 0.0)
        width = p["hidden_size"] * (2 if p["bidirectional"] else 1)
        self.attention = nn.Linear(width, 1) if p["pooling"] == "attention" else None
        self.dropout = nn.Dropout(p["dropout"])
        self.head = nn.Linear(width, classes)
        for name, w in self.gru.named_parameters():
            if "bias" in name:
                nn.init.zeros_(w) if p["init"] != "default" else None
            elif p["init"] == "xavier" or (p["init"] == "orthogonal" and "ih" in name):
                nn.init.xavier_uniform_(w)
            elif p["init"] == "orthogonal":
                for block in w.data.chunk(3, 0):
                    nn.init.orthogonal_(block)
            elif p["init"] == "he":
                nn.init.kaiming_uniform_(w, nonlinearity="relu")

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = pack_padded_sequence(self.dropout(self.embed(x)), lengths, batch_first=True,
                                      enforce_sorted=False)
        out, h_n = self.gru(packed)
        out, _ = pad_packed_sequence(out, batch_first=True)  # [B, T, W], zeros past the end
        mask = (torch.arange(out.size(1)).unsqueeze(0) < lengths.unsqueeze(1)).unsqueeze(-1)
        kind = self.p["pooling"]
        if kind == "mean":
            pooled = out.sum(1) / lengths.unsqueeze(1).to(out.dtype)
        elif kind == "max":
            pooled = out.masked_fill(~mask, float("-inf")).amax(1)
        elif kind == "attention":
            scores = self.attention(torch.tanh(out)).masked_fill(~mask, float("-inf"))
            pooled = (torch.softmax(scores, dim=1) * out).sum(1)
        else:  # last: the final states of the top layer (both directions)
            top = h_n[-2:] if self.p["bidirectional"] else h_n[-1:]
            pooled = torch.cat(list(top), dim=-1)
        return self.head(self.dropout(pooled))


def _optimizer(model: nn.Module, p: dict) -> torch.optim.Optimizer:
    wd = p["weight_decay"] if p["regularization"] == "weight_decay" else 0.0
    if p["optimizer"] == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=p["lr"], weight_decay=wd)
    if p["optimizer"] == "sgd":
        return torch.optim.SGD(model.parameters(), lr=p["lr"], momentum=p["momentum"],
                               nesterov=p["nesterov"], weight_decay=wd)
    return torch.optim.RMSprop(model.parameters(), lr=p["lr"], momentum=p["momentum"],
                               weight_decay=wd)


def reference_time(target: float, cap_s: float, seed: int,
                   warm_start: bool = False) -> tuple[float, bool, int]:
    """(seconds to the first epoch at or above target, reached?, trials run)."""
    start = time.monotonic()
    task = get_task("text")
    prep = task.prepare(DataConfig(dataset="bbc-news", seed=seed))
    width = int(prep.train.lengths.max())
    train = TensorDataset(prep.train.x[:, :width], prep.train.lengths, prep.train.y)
    val_x, val_len, val_y = prep.val.x, prep.val.lengths, prep.val.y
    vocab, classes = len(prep.state["vocab"]), len(prep.state["labels"])
    space = default_space("text")
    reached = {"at": None}

    def objective(trial: optuna.Trial) -> float:
        p = space.sample(trial)
        seed_everything(seed + trial.number)
        model = Reference(p, vocab, classes)
        loader = DataLoader(train, batch_size=p["batch_size"], shuffle=True)
        optimizer = _optimizer(model, p)
        cfg = train_config(p, MAX_EPOCHS, 0)  # the schedule's settings, for lr_factor
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: lr_factor(cfg, step / len(loader)))
        l2 = p["l2_penalty"] if p["regularization"] == "l2_penalty" else 0.0
        best, since = -math.inf, 0
        for epoch in range(1, MAX_EPOCHS + 1):
            model.train()
            for x, lengths, y in loader:
                optimizer.zero_grad()
                loss = nn.functional.cross_entropy(model(x, lengths), y)
                if l2:
                    loss = loss + 0.5 * l2 * sum((w * w).sum() for w in model.parameters()
                                                 if w.dim() >= 2)
                loss.backward()
                if p["grad_clip"] > 0:
                    nn.utils.clip_grad_norm_(model.parameters(), p["grad_clip"])
                optimizer.step()
                schedule.step()
            model.eval()
            with torch.no_grad():
                accuracy = float((model(val_x, val_len).argmax(1) == val_y).float().mean())
            if accuracy >= target and reached["at"] is None:
                reached["at"] = time.monotonic() - start
                trial.study.stop()
                return accuracy
            if time.monotonic() - start > cap_s:
                trial.study.stop()
                return max(best, accuracy)
            trial.report(accuracy, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()
            best, since = (accuracy, 0) if accuracy > best else (best, since + 1)
            if since >= p["patience"]:
                break
        return best

    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=STARTUP_TRIALS),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=STARTUP_TRIALS,
                                           n_warmup_steps=WARMUP_EPOCHS))
    if warm_start:  # grutune's first trial: the space's defaults
        study.enqueue_trial(space.defaults())
    study.optimize(objective, timeout=max(cap_s - (time.monotonic() - start), 1.0))
    at = reached["at"]
    return (at if at is not None else cap_s), at is not None, len(study.trials)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", type=float, default=0.97)
    parser.add_argument("--cap", default="30m", help="cap per search: 30m, 90s, ...")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--warm-start", action="store_true",
                        help="start the reference study from grutune's default configuration "
                             "too (separates the trainer's speed from the warm start)")
    args = parser.parse_args()
    cap_s = parse_duration(args.cap)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    print(f"target: validation accuracy >= {args.target} on BBC News; cap {args.cap} per "
          f"search; torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)
    ours, ours_ok, cmd = grutune_time(args.target, cap_s, args.seed)
    print(f"grutune   : {format_seconds(ours)} ({ours:.0f} s){'' if ours_ok else ' NOT reached'}"
          f"  [{cmd}]", flush=True)
    ref, ref_ok, ref_trials = reference_time(args.target, cap_s, args.seed, args.warm_start)
    start = "warm-started from grutune's defaults" if args.warm_start else "no warm start"
    print(f"reference : {format_seconds(ref)} ({ref:.0f} s){'' if ref_ok else ' NOT reached'}"
          f"  [plain Optuna study, {start}, {ref_trials} trials]", flush=True)
    ratio = ref / ours
    print(f"ratio     : {ratio:.2f}x{'' if ref_ok else ' (at least: the reference hit the cap)'}")
    print(json.dumps({"target": args.target, "cap_s": cap_s,
                      "grutune_s": round(ours, 1), "grutune_reached": ours_ok,
                      "reference_s": round(ref, 1), "reference_reached": ref_ok,
                      "reference_trials": ref_trials, "reference_warm_start": args.warm_start,
                      "ratio": round(ratio, 2),
                      "ratio_is_lower_bound": not ref_ok}))


if __name__ == "__main__":
    main()
