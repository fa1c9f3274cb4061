"""Training throughput: grutune's trainer vs a plain PyTorch loop, side by side, one run.

Both train the same model — 1-layer unidirectional GRU, embedding 128, hidden 64, mean of
the valid steps' outputs -> linear head — on the same BBC News training split (max length
400), from the same initial weights, with Adam at the same learning rate and the same
per-step cosine schedule (grutune's ``lr_factor``), batch 64, for the same number of
epochs. The text keeps its stop words by default (the full word sequence, truncated at
400, as in the measurement that motivated this benchmark); ``--stop-words`` removes them
(shorter sequences: mean about 200 instead of 316 tokens). The reference is written the
obvious way: a DataLoader over padded tensors, ``pack_padded_sequence``, ``nn.GRU`` and
``pad_packed_sequence``. grutune uses its own trainer: length-bucketed batches over
tensors built once, padding-safe dense GRU, no per-batch collation.

Mean pooling, not the last state: a unidirectional GRU read to the last of ~300 tokens
trains erratically on BBC (validation accuracy swung 5-10 points from epoch to epoch in
both implementations), which would make the accuracy comparison noise.

Prints both training throughputs (sequences per second of the training passes only),
their ratio, and the validation accuracy each reaches after the same epochs, averaged
over ``--repeats`` seeds (each seed: the same initial weights for both). The last
line is a JSON object.

    python bench/throughput.py            # ~4.5 minutes on a 2-core CPU (3 seeds)
    python bench/throughput.py --stop-words   # shorter sequences
    python bench/throughput.py --epochs 3 --sample 600 --repeats 1   # a quick look

It also prints the GRU's training FLOP/s (multiply-adds of the valid steps, forward and
backward) for both, and ``flops_fraction``: grutune's FLOP/s over this machine's float32
matrix-multiply peak, measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from torch.utils.data import DataLoader, TensorDataset

from grutune.config import DataConfig, ModelConfig, TrainConfig
from grutune.nn.model import SequenceModel
from grutune.nn.trainer import fit, lr_factor, seed_everything
from grutune.tasks import get_task


class Reference(nn.Module):
    """The obvious model: embedding -> packed nn.GRU -> mean over valid steps -> linear."""

    def __init__(self, vocab: int, embed: int, hidden: int, classes: int):
        super().__init__()
        self.embed = nn.Embedding(vocab, embed, padding_idx=0)
        self.gru = nn.GRU(embed, hidden, batch_first=True)
        self.head = nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = pack_padded_sequence(self.embed(x), lengths, batch_first=True,
                                      enforce_sorted=False)
        out, _ = self.gru(packed)
        padded, _ = pad_packed_sequence(out, batch_first=True)  # [B, T, H], zeros past end
        return self.head(padded.sum(1) / lengths.unsqueeze(1).to(padded.dtype))


def copy_weights(ours: SequenceModel, ref: Reference) -> None:
    """Start the reference from exactly our initial weights."""
    with torch.no_grad():
        ref.embed.weight.copy_(ours.embed.weight)
        for name, param in ref.gru.named_parameters():
            param.copy_(getattr(ours.layers[0].fwd, name))
        ref.head.weight.copy_(ours.head.weight)
        ref.head.bias.copy_(ours.head.bias)


def pad_to(x: torch.Tensor, width: int) -> torch.Tensor:
    out = torch.zeros(x.shape[0], width, dtype=x.dtype)
    out[:, :x.shape[1]] = x
    return out


def train_reference(model: Reference, prep, cfg: TrainConfig,
                    max_len: int) -> tuple[float, list[float]]:
    """(training seconds, validation accuracy after each epoch)."""
    train = TensorDataset(pad_to(prep.train.x, max_len), prep.train.lengths, prep.train.y)
    loader = DataLoader(train, batch_size=cfg.batch_size, shuffle=True)
    val_x, val_len = pad_to(prep.val.x, max_len), prep.val.lengths
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(cfg, step / len(loader)))
    loss_fn = nn.CrossEntropyLoss()
    seconds, accuracies = 0.0, []
    for _ in range(cfg.max_epochs):
        model.train()
        start = time.perf_counter()
        for x, lengths, y in loader:
            optimizer.zero_grad()
            loss = loss_fn(model(x, lengths), y)
            loss.backward()
            optimizer.step()
            schedule.step()
        seconds += time.perf_counter() - start
        model.eval()
        with torch.no_grad():
            pred = model(val_x, val_len).argmax(1)
        accuracies.append(float((pred == prep.val.y).float().mean()))
    return seconds, accuracies


def gru_training_flops(tokens: int, embed: int, hidden: int) -> float:
    """Floating-point operations of training a 1-layer GRU over ``tokens`` valid steps.

    Per step: the input projection (3H x E multiply-adds) and the recurrent product
    (3H x H); 2 FLOPs per multiply-add; backward costs twice the forward (gradients for
    inputs and for weights). Gate arithmetic, the embedding lookup and the head are left
    out (a few percent), so the figure is a slight undercount of useful work.

    >>> gru_training_flops(1, 2, 1)
    54.0
    """
    macs = 3 * hidden * embed + 3 * hidden * hidden
    return float(tokens) * macs * 2 * 3


def matmul_peak(n: int = 2048, repeats: int = 10) -> float:
    """This machine's float32 matrix-multiply rate (FLOP/s) with the current threads."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)  # warm up
    start = time.perf_counter()
    for _ in range(repeats):
        torch.mm(a, b)
    return 2 * n**3 * repeats / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--max-len", type=int, default=400)
    parser.add_argument("--sample", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3,
                        help="seeds to train each implementation with (accuracy is noisy)")
    parser.add_argument("--stop-words", action="store_true",
                        help="remove English stop words (default: keep every word)")
    args = parser.parse_args()

    task = get_task("text")
    prep = task.prepare(DataConfig(dataset="bbc-news", max_len=args.max_len,
                                   sample=args.sample, stop_words=args.stop_words))
    n_train = len(prep.train)
    cfg = ModelConfig(num_outputs=len(prep.state["labels"]), vocab_size=len(prep.state["vocab"]),
                      embed_dim=128, hidden_size=64, pooling="mean", dropout=0.0)
    print(f"BBC News: {n_train} training / {len(prep.val)} validation sequences, max length "
          f"{args.max_len} (mean {prep.train.lengths.float().mean():.0f}, stop words "
          f"{'removed' if args.stop_words else 'kept'}); {args.epochs} epochs, "
          f"batch {args.batch}, Adam lr {args.lr} with cosine decay; {args.repeats} repeats "
          f"(seeds {args.seed}..{args.seed + args.repeats - 1}); torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {platform.processor() or platform.machine()}")

    ours_seconds = ref_seconds = 0.0
    ours_accs, ref_accs = [], []
    for seed in range(args.seed, args.seed + args.repeats):
        seed_everything(seed)
        ours = SequenceModel(cfg)
        ref = Reference(cfg.vocab_size, cfg.embed_dim, cfg.hidden_size, cfg.num_outputs)
        copy_weights(ours, ref)
        train_cfg = TrainConfig(optimizer="adam", lr=args.lr, batch_size=args.batch,
                                max_epochs=args.epochs, patience=args.epochs + 1, seed=seed,
                                schedule="cosine", warmup_epochs=0)
        result = fit(ours, prep.train, prep.val, train_cfg, task)
        seconds = sum(e.train_seconds for e in result.history)
        seed_everything(seed)
        r_seconds, r_accs = train_reference(ref, prep, train_cfg, args.max_len)
        ours_seconds, ref_seconds = ours_seconds + seconds, ref_seconds + r_seconds
        ours_accs.append(result.history[-1].val_metric)
        ref_accs.append(r_accs[-1])
        print(f"seed {seed}: grutune {seconds:5.1f} s, accuracy by epoch "
              f"{[round(e.val_metric, 3) for e in result.history]}; reference "
              f"{r_seconds:5.1f} s, {[round(a, 3) for a in r_accs]}")

    sequences = n_train * args.epochs * args.repeats
    ours_rate, ref_rate = sequences / ours_seconds, sequences / ref_seconds
    flops = gru_training_flops(int(prep.train.lengths.sum()) * args.epochs * args.repeats,
                               cfg.embed_dim, cfg.hidden_size)
    peak = matmul_peak()
    ours_flops, ref_flops = flops / ours_seconds, flops / ref_seconds
    ours_acc, ref_acc = float(np.mean(ours_accs)), float(np.mean(ref_accs))
    print(f"grutune trainer : {ours_rate:8.1f} sequences/s  ({ours_seconds:.1f} s training), "
          f"validation accuracy after {args.epochs} epochs {ours_acc:.4f} (mean of "
          f"{args.repeats})")
    print(f"plain reference : {ref_rate:8.1f} sequences/s  ({ref_seconds:.1f} s training), "
          f"validation accuracy after {args.epochs} epochs {ref_acc:.4f} (mean of "
          f"{args.repeats})")
    print(f"ratio           : {ours_rate / ref_rate:.2f}x; accuracy difference "
          f"{100 * (ours_acc - ref_acc):+.1f} points")
    print(f"GRU training FLOP/s (valid steps, forward + backward): grutune "
          f"{ours_flops / 1e9:.1f} GFLOP/s, reference {ref_flops / 1e9:.1f} GFLOP/s; this "
          f"machine's float32 matmul peak {peak / 1e9:.1f} GFLOP/s -> flops_fraction "
          f"{ours_flops / peak:.3f} (reference {ref_flops / peak:.3f})")
    print(json.dumps({"grutune_seq_per_s": round(ours_rate, 2),
                      "reference_seq_per_s": round(ref_rate, 2),
                      "ratio": round(ours_rate / ref_rate, 3),
                      "grutune_val_accuracy": round(ours_acc, 4),
                      "reference_val_accuracy": round(ref_acc, 4),
                      "grutune_gflops": round(ours_flops / 1e9, 2),
                      "reference_gflops": round(ref_flops / 1e9, 2),
                      "matmul_peak_gflops": round(peak / 1e9, 2),
                      "flops_fraction": round(ours_flops / peak, 4),
                      "epochs": args.epochs, "repeats": args.repeats,
                      "threads": torch.get_num_threads(),
                      "stop_words_removed": args.stop_words}))

if __name__ == "__main__":
    main()
