"""Training throughput: grutune's trainer vs a plain PyTorch loop, side by side, one run.

Both train the same model — 1-layer unidirectional GRU, embedding 128, hidden 64, last
state -> linear head — on the same BBC News training split (max length 400), from the
same initial weights, with Adam at the same learning rate, batch 64, for the same number
of epochs. The reference is written the obvious way: a DataLoader over padded tensors,
``pack_padded_sequence`` and ``nn.GRU``. grutune uses its own trainer: length-bucketed
batches over tensors built once, padding-safe dense GRU, no per-batch collation.

Prints both training throughputs (sequences per second of the training passes only),
their ratio, and the validation accuracy each reaches after the same epochs. The last
line is a JSON object.

    python bench/throughput.py            # ~4 minutes on a 2-core CPU
    python bench/throughput.py --epochs 3 --sample 600   # a quick look
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence
from torch.utils.data import DataLoader, TensorDataset

from grutune.config import DataConfig, ModelConfig, TrainConfig
from grutune.model import SequenceModel
from grutune.tasks import get_task
from grutune.trainer import fit, seed_everything


class Reference(nn.Module):
    """The obvious model: embedding -> packed nn.GRU -> final hidden state -> linear."""

    def __init__(self, vocab: int, embed: int, hidden: int, classes: int):
        super().__init__()
        self.embed = nn.Embedding(vocab, embed, padding_idx=0)
        self.gru = nn.GRU(embed, hidden, batch_first=True)
        self.head = nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = pack_padded_sequence(self.embed(x), lengths, batch_first=True,
                                      enforce_sorted=False)
        _, h = self.gru(packed)  # h: [1, B, H]
        return self.head(h[-1])


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


def train_reference(model: Reference, prep, epochs: int, lr: float, batch: int,
                    max_len: int) -> tuple[float, list[float]]:
    """(training seconds, validation accuracy after each epoch)."""
    train = TensorDataset(pad_to(prep.train.x, max_len), prep.train.lengths, prep.train.y)
    loader = DataLoader(train, batch_size=batch, shuffle=True)
    val_x, val_len = pad_to(prep.val.x, max_len), prep.val.lengths
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    seconds, accuracies = 0.0, []
    for _ in range(epochs):
        model.train()
        start = time.perf_counter()
        for x, lengths, y in loader:
            optimizer.zero_grad()
            loss = loss_fn(model(x, lengths), y)
            loss.backward()
            optimizer.step()
        seconds += time.perf_counter() - start
        model.eval()
        with torch.no_grad():
            pred = model(val_x, val_len).argmax(1)
        accuracies.append(float((pred == prep.val.y).float().mean()))
    return seconds, accuracies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--max-len", type=int, default=400)
    parser.add_argument("--sample", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    task = get_task("text")
    prep = task.prepare(DataConfig(dataset="bbc-news", max_len=args.max_len,
                                   sample=args.sample))
    n_train = len(prep.train)
    cfg = ModelConfig(num_outputs=len(prep.state["labels"]), vocab_size=len(prep.state["vocab"]),
                      embed_dim=128, hidden_size=64, pooling="last")
    seed_everything(args.seed)
    ours = SequenceModel(cfg)
    ref = Reference(cfg.vocab_size, cfg.embed_dim, cfg.hidden_size, cfg.num_outputs)
    copy_weights(ours, ref)
    print(f"BBC News: {n_train} training / {len(prep.val)} validation sequences, max length "
          f"{args.max_len} (mean {prep.train.lengths.float().mean():.0f}); {args.epochs} epochs, "
          f"batch {args.batch}, Adam lr {args.lr}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {platform.processor() or platform.machine()}")

    train_cfg = TrainConfig(optimizer="adam", lr=args.lr, batch_size=args.batch,
                            max_epochs=args.epochs, patience=args.epochs + 1, seed=args.seed)
    result = fit(ours, prep.train, prep.val, train_cfg, task)
    ours_seconds = sum(e.train_seconds for e in result.history)
    ours_acc = result.history[-1].val_metric
    seed_everything(args.seed)
    ref_seconds, ref_accs = train_reference(ref, prep, args.epochs, args.lr, args.batch,
                                            args.max_len)
    ours_rate = n_train * args.epochs / ours_seconds
    ref_rate = n_train * args.epochs / ref_seconds
    print(f"grutune trainer : {ours_rate:8.1f} sequences/s  ({ours_seconds:.1f} s training), "
          f"validation accuracy after {args.epochs} epochs {ours_acc:.4f}")
    print(f"plain reference : {ref_rate:8.1f} sequences/s  ({ref_seconds:.1f} s training), "
          f"validation accuracy after {args.epochs} epochs {ref_accs[-1]:.4f}")
    print(f"ratio           : {ours_rate / ref_rate:.2f}x; accuracy difference "
          f"{100 * (ours_acc - ref_accs[-1]):+.1f} points")
    print("per-epoch validation accuracy: grutune",
          [round(e.val_metric, 4) for e in result.history], "reference",
          [round(a, 4) for a in ref_accs])
    print(json.dumps({"grutune_seq_per_s": round(ours_rate, 2),
                      "reference_seq_per_s": round(ref_rate, 2),
                      "ratio": round(ours_rate / ref_rate, 3),
                      "grutune_val_accuracy": round(ours_acc, 4),
                      "reference_val_accuracy": round(ref_accs[-1], 4),
                      "epochs": args.epochs, "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
