"""Cost growth: seconds per epoch and peak memory against training rows and sequence length.

Two axes, each point in fresh processes (so each peak is its own):

- **rows**: 1,000, 10,000 and 100,000 training texts. BBC News's 2,225 real articles
  (the built-in dataset) repeated, each further copy with its words shuffled (the same
  words and lengths in a new order, so no copy is a duplicate that preparation drops),
  prepared by grutune's text task (cleaning, vocabulary of the training split, max
  length 400, stop words kept: mean about 316 tokens) with enough rows that the 70%
  training split has the point's size; a 1-layer GRU (embedding 128, hidden 64, mean
  pooling), AdamW, batch 64.
- **length**: series of 100, 500, 1,000 and 2,000 steps: 512 windows of that length at
  seeded random places of the built-in half-hourly electricity demand series (taylor,
  4,032 values, standardized), each labelled by whether the next day's mean is above
  the window's last day's; a GRU (input width 32, hidden 64, mean pooling), batch 64.

Each point runs in two processes. The first prepares the data and saves the tensors
(safetensors): preparation seconds and its peak memory growth (VmHWM over the resident
set before it, the raw texts already in memory). The second loads them and trains
``--epochs`` epochs (the last one is timed: the first warms up): seconds per epoch
(the training pass; validation apart), the resident memory of the tensor cache, and
the training's peak memory growth over that (activations, weights, optimizer state).
The growth exponent of each column against the axis is the slope of a least-squares
line through the points in log-log space (1: linear).

Then the workers check: the largest rows point's tensors are loaded once (into
anonymous memory, as preparation leaves them in ``grutune tune``) and 2 trial workers
are forked as ``grutune tune --workers 2`` forks them
(``tuning.workers.run_workers``); each trains one epoch on the shared tensors and
reports which of the cache's memory pages it shares with the parent (Linux
``/proc/self/pagemap``: present and not exclusively mapped) and its private memory.

    python bench/scaling.py            # every point: ~15 minutes on a 2-core CPU
    python bench/scaling.py --quick    # the two smallest points of each axis (~1 minute)
    python bench/scaling.py --smoke    # a few seconds: tiny points, one epoch (a check)

Prints a table per axis and the command that reproduces it; the last line is a JSON
object.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROWS = [1_000, 10_000, 100_000]
LENGTHS = [100, 500, 1_000, 2_000]
LENGTH_ROWS = 512  # windows per length point
SMOKE = {"rows": [300, 1_000], "lengths": [50, 100], "length_rows": 128, "epochs": 1}
TRAIN_SHARE = 0.7  # the text task's training split
MB = 2**20


def vm(field: str) -> float:
    """A /proc/self/status figure (VmRSS, VmHWM) in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024 / MB
    raise RuntimeError(f"no {field} in /proc/self/status")


def reset_peak() -> None:
    """Make VmHWM the current resident set (Linux: clear_refs 5)."""
    Path("/proc/self/clear_refs").write_text("5")


# --- the first process: prepare and save ----------------------------------------------

def shuffled_bbc(total: int, seed: int) -> pd.DataFrame:
    """``total`` rows: BBC News's articles (in a seeded order), then copies with their
    words shuffled."""
    from grutune.data.datasets import get_dataset

    bbc = get_dataset("bbc-news").loader()[0].sample(frac=1.0, random_state=seed)
    rng = np.random.default_rng(seed)
    texts, topics = list(bbc["text"]), list(bbc["topic"])
    while len(texts) < total:
        i = len(texts) % len(bbc)
        words = bbc["text"].iat[i].split()
        texts.append(" ".join(words[j] for j in rng.permutation(len(words))))
        topics.append(bbc["topic"].iat[i])
    return pd.DataFrame({"text": texts[:total], "topic": topics[:total]})


def prepare_rows(rows: int, folder: Path) -> dict:
    from grutune.config import DataConfig
    from grutune.tasks import get_task

    frame = shuffled_bbc(math.ceil(rows / TRAIN_SHARE) + 2, seed=0)
    path = folder / "texts.parquet"
    frame.to_parquet(path)
    reset_peak()
    before = vm("VmRSS")
    start = time.perf_counter()
    prepared = get_task("text").prepare(DataConfig(
        path=str(path), text_column="text", target_column="topic", max_len=400,
        stop_words=False))
    seconds = time.perf_counter() - start
    model = {"num_outputs": len(prepared.state["labels"]),
             "vocab_size": len(prepared.state["vocab"]), "embed_dim": 128, "hidden_size": 64,
             "pooling": "mean"}
    return _save(folder, prepared.train, prepared.val, model, seconds,
                 vm("VmHWM") - before, [prepared.test])


def prepare_length(steps: int, folder: Path, windows: int = LENGTH_ROWS) -> dict:
    from grutune.data.cache import SequenceData
    from grutune.data.datasets import get_dataset

    series = get_dataset("taylor").loader()[0]["value"].to_numpy(np.float32)
    series = (series - series.mean()) / series.std()
    day = 48  # half-hours
    reset_peak()
    before = vm("VmRSS")
    start = time.perf_counter()
    rng = np.random.default_rng(0)
    starts = rng.integers(0, len(series) - steps - day, windows + windows // 4)
    x = np.stack([series[s:s + steps] for s in starts])[..., None]
    nxt = np.stack([series[s + steps:s + steps + day].mean() for s in starts])
    y = (nxt > x[:, -day:, 0].mean(1)).astype(np.int64)
    data = SequenceData(torch.as_tensor(x), torch.full((len(x),), steps), torch.as_tensor(y))
    train, val = data.subset(np.arange(windows)), data.subset(np.arange(windows, len(x)))
    model = {"num_outputs": 2, "input_dim": 1, "embed_dim": 32, "hidden_size": 64,
             "pooling": "mean"}
    return _save(folder, train, val, model, time.perf_counter() - start,
                 vm("VmHWM") - before, [])


def _save(folder: Path, train, val, model: dict, seconds: float, peak: float,
          others: list) -> dict:
    from safetensors.torch import save_file

    tensors = {f"{name}.{part}": getattr(data, part).contiguous()
               for name, data in (("train", train), ("val", val))
               for part in ("x", "lengths", "y")}
    save_file(tensors, str(folder / "data.safetensors"))
    cache = sum(t.numel() * t.element_size() for d in (train, val, *others)
                for t in (d.x, d.lengths, d.y))
    record = {"train_rows": len(train), "mean_length": round(float(train.lengths.float()
                                                                    .mean()), 1),
              "steps": int(train.x.shape[1]), "prep_s": round(seconds, 2),
              "prep_peak_mb": round(peak, 1), "cache_mb": round(cache / MB, 1)}
    (folder / "model.json").write_text(json.dumps(model))
    return record


# --- the second process: load and train --------------------------------------------------

class Classes:
    direction = "maximize"

    def loss(self, outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(outputs, y)

    def val_metric(self, outputs: torch.Tensor, y: torch.Tensor) -> float:
        return float((outputs.argmax(-1) == y).float().mean())


def load(folder: Path):
    from safetensors.torch import load_file

    from grutune.data.cache import SequenceData

    t = load_file(str(folder / "data.safetensors"))
    return tuple(SequenceData(t[f"{n}.x"], t[f"{n}.lengths"], t[f"{n}.y"])
                 for n in ("train", "val"))


def train_point(folder: Path, epochs: int) -> dict:
    from grutune.config import ModelConfig, TrainConfig
    from grutune.nn.model import SequenceModel
    from grutune.nn.recurrence import cpu_kernel
    from grutune.nn.trainer import fit, seed_everything

    cpu_kernel()  # loaded (and glibc set to keep freed memory) before the baseline
    before = vm("VmRSS")
    train, val = load(folder)
    cache = vm("VmRSS") - before
    seed_everything(0)
    model = SequenceModel(ModelConfig(**json.loads((folder / "model.json").read_text())))
    reset_peak()
    loaded = vm("VmRSS")
    result = fit(model, train, val, TrainConfig(lr=1e-3, batch_size=64, max_epochs=epochs,
                                                patience=epochs + 1), Classes())
    last = result.history[-1]
    return {"epoch_s": round(last.train_seconds, 3),
            "eval_s": round(last.seconds - last.train_seconds, 3),
            "cache_rss_mb": round(cache, 1), "train_peak_mb": round(vm("VmHWM") - loaded, 1)}


# --- the workers check ---------------------------------------------------------------------

PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def page_sharing(tensor: torch.Tensor) -> tuple[int, int, int]:
    """(pages, present, shared) of the tensor's memory: shared = present and not
    exclusively mapped (pagemap bit 56), i.e. another process maps the same page."""
    first = tensor.data_ptr() // PAGE
    last = (tensor.data_ptr() + tensor.numel() * tensor.element_size() - 1) // PAGE
    with open("/proc/self/pagemap", "rb") as f:
        f.seek(first * 8)
        raw = f.read((last - first + 1) * 8)
    entries = struct.unpack(f"{last - first + 1}Q", raw)
    present = [e for e in entries if e >> 63 & 1]
    return len(entries), len(present), sum(1 for e in present if not e >> 56 & 1)


def smaps(field: str) -> float:
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024 / MB
    return float("nan")


def workers_check(folder: Path, workers: int = 2) -> dict:
    """Fork ``workers`` trial workers over tensors loaded once; what each shares."""
    from grutune.config import ModelConfig, TrainConfig
    from grutune.data.cache import SequenceData
    from grutune.nn.model import SequenceModel
    from grutune.nn.recurrence import cpu_kernel
    from grutune.nn.trainer import fit
    from grutune.tuning.workers import run_workers

    cpu_kernel()
    # as `grutune tune` holds them: anonymous memory that preparation made (torch's
    # allocator), not views of the safetensors file's private mapping, whose pages the
    # page cache shares whatever fork does
    train, val = (SequenceData(d.x.clone(), d.lengths.clone(), d.y.clone())
                  for d in load(folder))
    config = ModelConfig(**json.loads((folder / "model.json").read_text()))
    cache = [t for d in (train, val) for t in (d.x, d.lengths, d.y)]

    def work(index: int) -> int:
        fit(SequenceModel(config), train, val, TrainConfig(batch_size=64, max_epochs=1),
            Classes())
        pages = [page_sharing(t) for t in cache]
        record = {"worker": index, "cache_pages": sum(p[0] for p in pages),
                  "present": sum(p[1] for p in pages), "shared": sum(p[2] for p in pages),
                  "private_mb": round(smaps("Private_Dirty") + smaps("Private_Clean"), 1),
                  "shared_mb": round(smaps("Shared_Dirty") + smaps("Shared_Clean"), 1),
                  "anon_huge_mb": round(smaps("AnonHugePages"), 1)}
        (folder / f"worker-{index}.json").write_text(json.dumps(record))
        return 0

    codes = run_workers(workers, work, poll=lambda: None, interval=0.2)
    if any(codes):
        raise RuntimeError(f"workers exited with {codes}")
    rows = [json.loads((folder / f"worker-{i}.json").read_text()) for i in range(workers)]
    cache_mb = sum(t.numel() * t.element_size() for t in cache) / MB
    for row in rows:
        row["shared_fraction"] = round(row["shared"] / max(row["present"], 1), 4)
    return {"cache_mb": round(cache_mb, 1), "workers": rows}


# --- the driver ----------------------------------------------------------------------------

def run_self(*args: str) -> dict:
    """This script in a fresh process; its last line's JSON."""
    done = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: exit {done.returncode}\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def slope(xs: list[float], ys: list[float]) -> float | None:
    """Least-squares slope of log(y) against log(x): the growth exponent.

    >>> round(slope([1, 10, 100], [2, 20, 200]), 3)
    1.0
    """
    pairs = [(x, y) for x, y in zip(xs, ys, strict=True) if x > 0 and y > 0]
    if len(pairs) < 2:
        return None
    lx, ly = np.log([p[0] for p in pairs]), np.log([p[1] for p in pairs])
    return float(np.polyfit(lx, ly, 1)[0])


COLUMNS = ("prep_s", "epoch_s", "eval_s", "prep_peak_mb", "cache_mb", "train_peak_mb")


def axis(kind: str, points: list[int], epochs: int, root: Path, windows: int) -> dict:
    rows = []
    for n in points:
        folder = root / f"{kind}-{n}"
        folder.mkdir()
        record = {kind: n, **run_self("--prepare", kind, str(n), str(folder),
                                      "--length-rows", str(windows))}
        record.update(run_self("--train", str(folder), str(epochs)))
        rows.append(record)
        print(f"  {kind} {n:>7}: " + ", ".join(f"{k} {record[k]}" for k in
                                                 ("train_rows", "steps", *COLUMNS)),
              file=sys.stderr, flush=True)
    growth = {c: (round(s, 2) if (s := slope([r[kind] for r in rows], [r[c] for r in rows]))
                  is not None else None) for c in COLUMNS}
    return {"points": rows, "growth": growth}


def table(kind: str, result: dict) -> str:
    head = f"| {kind} | training rows | steps | " + " | ".join(COLUMNS) + " |"
    lines = [head, "|" + " --- |" * (3 + len(COLUMNS))]
    for r in result["points"]:
        lines.append(f"| {r[kind]:,} | {r['train_rows']:,} | {r['steps']} | "
                     + " | ".join(str(r[c]) for c in COLUMNS) + " |")
    lines.append("| growth exponent | | | " + " | ".join(
        str(result["growth"][c]) for c in COLUMNS) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="the two smallest points of each axis")
    parser.add_argument("--smoke", action="store_true",
                        help=f"a few seconds: rows {SMOKE['rows']}, lengths {SMOKE['lengths']} "
                             f"({SMOKE['length_rows']} windows), {SMOKE['epochs']} epoch")
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs per point; the last is timed (default 2)")
    parser.add_argument("--rows", type=int, nargs="+", default=None)
    parser.add_argument("--lengths", type=int, nargs="+", default=None)
    parser.add_argument("--length-rows", type=int, default=None,
                        help=f"windows per length point (default {LENGTH_ROWS})")
    parser.add_argument("--prepare", nargs=3, metavar=("KIND", "N", "FOLDER"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--train", nargs=2, metavar=("FOLDER", "EPOCHS"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--workers-check", metavar="FOLDER", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.prepare:
        kind, n, folder = args.prepare
        print(json.dumps(prepare_rows(int(n), Path(folder)) if kind == "rows" else
                         prepare_length(int(n), Path(folder), args.length_rows or LENGTH_ROWS)))
        return
    if args.train:
        print(json.dumps(train_point(Path(args.train[0]), int(args.train[1]))))
        return
    if args.workers_check:
        print(json.dumps(workers_check(Path(args.workers_check))))
        return

    smoke = SMOKE if args.smoke else {}
    rows = args.rows or smoke.get("rows") or (ROWS[:2] if args.quick else ROWS)
    lengths = args.lengths or smoke.get("lengths") or (LENGTHS[:2] if args.quick else LENGTHS)
    windows = args.length_rows or smoke.get("length_rows") or LENGTH_ROWS
    epochs = args.epochs or smoke.get("epochs") or 2
    command = " ".join(["python bench/scaling.py", *sys.argv[1:]])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} "
          f"cores; {epochs} epoch(s) per point, the last timed", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="grutune-scaling-") as tmp:
        root = Path(tmp)
        by_rows = axis("rows", rows, epochs, root, windows)
        by_length = axis("length", lengths, epochs, root, windows)
        shared = run_self("--workers-check", str(root / f"rows-{rows[-1]}"))
    print(f"\nAgainst training rows (BBC News repeated with shuffled words):\n"
          f"{table('rows', by_rows)}\n\nAgainst sequence length ({windows} windows of "
          f"the taylor series):\n{table('length', by_length)}\n")
    for w in shared["workers"]:
        print(f"worker {w['worker']}: {w['shared']:,} of the {w['present']:,} resident pages of "
              f"the {shared['cache_mb']} MB tensor cache shared with the parent "
              f"({100 * w['shared_fraction']:.1f}%); private memory {w['private_mb']} MB")
    print(f"\nreproduce: {command}")
    print(json.dumps({"epochs": epochs, "threads": torch.get_num_threads(),
                      "rows": by_rows, "length": by_length, "workers_check": shared,
                      "command": command}))


if __name__ == "__main__":
    main()
