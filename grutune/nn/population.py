"""Population training: K configurations of one architecture trained as one computation.

Members share what fixes the shapes and the batches — cell (GRU), embedding size, hidden
size, layers, direction, pooling, batch size — and each keeps its own learning rate and
schedule, weight decay, L2 penalty, dropout, initialization and gradient clipping. Their
parameters are stacked along a leading member axis (``[K, ...]``): every matrix product
is one batched product, the recurrence is ``recurrence.gru_recurrence`` over K members,
and one optimizer step updates every member with its own settings.

A population is built *from* K ordinary ``SequenceModel``s (so each member starts from
exactly the weights its single-trial twin would) and gives them back at the end with
each member's best-epoch weights, so checkpoints, ensembles and bundles are unchanged.
Each member is early-stopped or pruned on its own and then leaves the stack.

The stack trains on the process's device (``device.current()``). On a GPU there is no
cuDNN form of K members with their own weights, so the recurrence is the plain PyTorch
one there (``recurrence.reference_recurrence``: one batched product over the K members
per step); fp16 needs a loss scaler that this optimizer does not take, so under
``--precision fp16`` trials train one at a time (``population_key``).

>>> import torch
>>> from grutune.config import ModelConfig
>>> from grutune.nn.model import SequenceModel
>>> cfg = ModelConfig(num_outputs=3, vocab_size=20, embed_dim=4, hidden_size=5)
>>> models = [SequenceModel(cfg) for _ in range(2)]
>>> pop = Population(models)
>>> x, n = torch.randint(1, 20, (6, 7)), torch.tensor([7, 5, 3, 7, 1, 2])
>>> out = pop.eval()(x, n)
>>> out.shape
torch.Size([2, 6, 3])
>>> torch.allclose(out[1], models[1].eval()(x, n), atol=1e-5)
True
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from grutune.compat import fused_adamw_
from grutune.config import ModelConfig, TrainConfig
from grutune.data.cache import SequenceData
from grutune.exceptions import TrialFailure
from grutune.nn.device import current
from grutune.nn.model import MODEL_KINDS, SequenceModel, reverse_index, znormalize
from grutune.nn.recurrence import gru_recurrence
from grutune.nn.trainer import (
    EpochBook,
    EpochLog,
    FitResult,
    Scorer,
    WeightWindow,
    epoch_size,
    finite_loss,
    lr_factor,
    predict,
)

# ModelConfig fields that fix the stacked shapes: members must agree on all of them.
SHARED_MODEL = ("num_outputs", "vocab_size", "input_dim", "embed_dim", "hidden_size",
                "num_layers", "bidirectional", "pooling", "cell", "series_norm", "kind")
# TrainConfig fields that fix the batches, the optimizer's kind and the weight window.
SHARED_TRAIN = ("batch_size", "max_epochs", "epoch_rows", "average")
OPTIMIZERS = ("adam", "adamw")  # both decoupled-decay Adam in grutune (see trainer)
# Search-space parameters that decide the above: fixed across one population's trials.
POPULATION_PARAMS = ("cell", "embed_dim", "hidden_size", "num_layers", "bidirectional",
                     "pooling", "batch_size", "optimizer", "average")


def population_key(model: ModelConfig, train: TrainConfig) -> tuple | None:
    """What members of one population must share; None if the pair cannot join one."""
    if (model.cell != "gru" or not MODEL_KINDS[model.kind].stackable
            or train.optimizer not in OPTIMIZERS or current().precision == "fp16"):
        return None
    return (tuple(getattr(model, f) for f in SHARED_MODEL)
            + tuple(getattr(train, f) for f in SHARED_TRAIN))


def _dropout(h: Tensor, p: Tensor, training: bool) -> Tensor:
    """Inverted dropout with member k's rate p[k]; h: [K, ...], p: [K]."""
    if not training or not bool((p > 0).any()):
        return h
    keep = (1 - p).view(-1, *([1] * (h.dim() - 1)))  # [K, 1, ...]
    return h * (torch.rand_like(h) < keep) / keep


class Population(nn.Module):
    """K SequenceModels of one architecture as stacked parameters (GRU, classification)."""

    def __init__(self, models: Sequence[SequenceModel]):
        super().__init__()
        first = models[0].config
        for m in models:
            if any(getattr(m.config, f) != getattr(first, f) for f in SHARED_MODEL):
                raise ValueError("population members must share the architecture")
        if first.cell != "gru" or not MODEL_KINDS[first.kind].stackable:
            raise ValueError("populations train GRU models of a stackable kind (SequenceModel)")
        self.config = first
        self.names = [name for name, _ in models[0].named_parameters()]
        self.stacked = nn.ParameterList(
            nn.Parameter(torch.stack([dict(m.named_parameters())[n].detach() for m in models]))
            for n in self.names)
        self._index = {n: i for i, n in enumerate(self.names)}
        self.register_buffer("dropout_p", torch.tensor([m.config.dropout for m in models]))
        self.register_buffer("layer_dropout_p",
                             torch.tensor([m.config.layer_dropout for m in models]))

    @property
    def size(self) -> int:
        return int(self.stacked[0].shape[0])

    def p(self, name: str) -> Tensor:
        return self.stacked[self._index[name]]

    def member_state(self, k: int) -> dict[str, Tensor]:
        """Member k's weights as a SequenceModel state dict (copies)."""
        return {n: self.p(n)[k].detach().clone() for n in self.names}

    def keep(self, index: list[int]) -> None:
        """Only members ``index`` (in that order) stay in the stack."""
        idx = torch.tensor(index)
        for i, param in enumerate(self.stacked):
            self.stacked[i] = nn.Parameter(param.detach()[idx].clone())
        self.dropout_p = self.dropout_p[idx]
        self.layer_dropout_p = self.layer_dropout_p[idx]

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        """x: [B, T] token ids or [B, T, F] values; lengths: [B] -> [K, B, num_outputs]."""
        c, k = self.config, self.size
        steps, batch = x.size(1), x.size(0)
        mask = torch.arange(steps, device=x.device).unsqueeze(1) < lengths.unsqueeze(0)  # [T, B]
        if c.series_norm:
            x = znormalize(x, mask.t())
        if c.vocab_size > 0:  # member k's rows of the [K * V, E] table: ids + k * V
            table = self.p("embed.weight")  # [K, V, E]
            offsets = torch.arange(k, device=x.device).view(k, 1, 1) * c.vocab_size
            h = nn.functional.embedding(x.t().unsqueeze(0) + offsets,
                                        table.view(k * c.vocab_size, -1))  # [K, T, B, E]
        else:
            flat = x.transpose(0, 1).reshape(1, steps * batch, -1).expand(k, -1, -1)
            h = torch.baddbmm(self.p("embed.bias").unsqueeze(1), flat,
                              self.p("embed.weight").transpose(1, 2))  # [K, T*B, E]
            h = h.view(k, steps, batch, -1)
        h = _dropout(h, self.dropout_p, self.training)
        rev = reverse_index(lengths, steps) if c.bidirectional else None
        for i in range(c.num_layers):
            if i > 0:
                h = _dropout(h, self.layer_dropout_p, self.training)
            h = self._layer(i, h, rev)  # [K, T, B, W]
        pooled = _dropout(self._pool(h, mask, lengths), self.dropout_p, self.training)
        return torch.baddbmm(self.p("head.bias").unsqueeze(1), pooled,
                             self.p("head.weight").transpose(1, 2))  # [K, B, C]

    def _direction(self, prefix: str, h: Tensor) -> Tensor:
        # h: [K, T, B, D] -> [K, T, B, H]
        k, steps, batch, width = h.shape
        gi = torch.baddbmm(self.p(prefix + "bias_ih_l0").unsqueeze(1),
                           h.reshape(k, steps * batch, width),
                           self.p(prefix + "weight_ih_l0").transpose(1, 2))  # [K, T*B, 3H]
        return gru_recurrence(gi.view(k, steps, batch, -1), self.p(prefix + "weight_hh_l0"),
                              self.p(prefix + "bias_hh_l0"))

    def _layer(self, i: int, h: Tensor, rev: Tensor | None) -> Tensor:
        out = self._direction(f"layers.{i}.fwd.", h)  # [K, T, B, H]
        if rev is None:
            return out
        back = self._direction(f"layers.{i}.bwd.", _gather_time(h, rev))
        return torch.cat([out, _gather_time(back, rev)], dim=-1)  # [K, T, B, 2H]

    def _pool(self, h: Tensor, mask: Tensor, lengths: Tensor) -> Tensor:
        # h: [K, T, B, W], mask: [T, B] -> [K, B, W]
        kind = self.config.pooling
        m = mask.unsqueeze(-1)  # [T, B, 1]
        if kind == "mean":
            return (h * m).sum(1) / lengths.unsqueeze(-1).to(h.dtype)
        if kind == "max":
            return h.masked_fill(~m, float("-inf")).amax(1)
        if kind == "attention":
            w, b = self.p("attention.weight")[:, 0], self.p("attention.bias")  # [K, W], [K, 1]
            scores = torch.einsum("ktbw,kw->ktb", torch.tanh(h), w) + b.view(-1, 1, 1)
            weights = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=1)
            return (weights.unsqueeze(-1) * h).sum(1)
        hidden = self.config.hidden_size
        last = h[:, lengths - 1, torch.arange(h.size(2), device=h.device)]  # [K, B, W]
        if not self.config.bidirectional:
            return last
        return torch.cat([last[..., :hidden], h[:, 0, :, hidden:]], dim=-1)


def _gather_time(h: Tensor, index: Tensor) -> Tensor:
    """h[k, index[t, b], b, :]; h: [K, T, B, D], index: [T, B]."""
    k, _, _, d = h.shape
    return torch.gather(h, 1, index.view(1, *index.shape, 1).expand(k, -1, -1, d))


class PopulationAdam:
    """Adam with decoupled weight decay, each member with its own learning rate, weight
    decay and gradient clipping.

    The update is PyTorch's own fused AdamW kernel, called once per member on that
    member's slices of the stacked tensors (contiguous views), so a member's step is
    exactly the single-trial trainer's. Weight decay applies to matrices only (stacked
    dim >= 3), as there.
    """

    def __init__(self, params: nn.ParameterList, cfgs: Sequence[TrainConfig],
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        self.params = params
        self.cfgs = list(cfgs)
        self.betas, self.eps = betas, eps
        device = params[0].device
        # one shared step count (the kernel reads it, on the parameters' device)
        self.steps = torch.zeros((), device=device)
        self.exp_avg = [torch.zeros_like(p) for p in params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in params]
        # (decayed matrices, undecayed vectors): parameter indices, fixed for the run
        self.groups = [[i for i, p in enumerate(params) if p.dim() >= 3],
                       [i for i, p in enumerate(params) if p.dim() < 3]]
        self.clip = torch.tensor([c.grad_clip for c in self.cfgs], device=device)

    def keep(self, index: list[int]) -> None:
        idx = torch.tensor(index)
        self.cfgs = [self.cfgs[i] for i in index]
        self.clip = self.clip[idx]
        self.exp_avg = [m[idx].clone() for m in self.exp_avg]
        self.exp_avg_sq = [v[idx].clone() for v in self.exp_avg_sq]

    @torch.no_grad()
    def step(self, lrs: list[float]) -> None:
        """One update; ``lrs``: each member's learning rate for this step."""
        grads = [p.grad for p in self.params]
        clip = self.clip  # per member; 0: no clipping
        if bool((clip > 0).any()):  # per-member global norm, as clip_grad_norm_ computes it
            norm = torch.stack([g.flatten(1).pow(2).sum(1) for g in grads]).sum(0).sqrt()
            scale = torch.where(clip > 0, (clip / (norm + 1e-6)).clamp(max=1.0),
                                torch.ones_like(clip))
            for g in grads:
                g.mul_(_per_member(scale.to(g.dtype), g))
        self.steps += 1
        beta1, beta2 = self.betas
        for k, cfg in enumerate(self.cfgs):
            for matrices, chosen in zip((True, False), self.groups, strict=True):
                if not chosen:
                    continue
                fused_adamw_(
                    [self.params[i][k] for i in chosen], [grads[i][k] for i in chosen],
                    [self.exp_avg[i][k] for i in chosen], [self.exp_avg_sq[i][k] for i in chosen],
                    [self.steps] * len(chosen), lr=lrs[k], beta1=beta1, beta2=beta2,
                    weight_decay=cfg.weight_decay if matrices else 0.0, eps=self.eps)


def _per_member(values: Tensor, like: Tensor) -> Tensor:
    """[K] -> [K, 1, ...] broadcastable against ``like``."""
    return values.view(-1, *([1] * (like.dim() - 1)))


def fit_population(
    models: Sequence[SequenceModel],
    cfgs: Sequence[TrainConfig],
    train: SequenceData,
    val: SequenceData,
    scorer: Scorer,
    on_epoch: Sequence[Callable[[EpochLog], bool] | None] | None = None,
    should_stop: Callable[[], str | None] | None = None,
) -> list[FitResult | TrialFailure]:
    """Train ``models`` together; on return each holds the weights of its best epoch.

    Like ``trainer.fit`` for every member: ``on_epoch[k]`` returning True stops member k
    (a pruner's verdict), each member's own patience runs out, ``should_stop`` stops them all.
    The batches (order and rows) come from the first member's seed and are the same for
    all. A member whose loss becomes NaN or infinite leaves with a ``TrialFailure``.
    """
    start = time.perf_counter()
    shared = cfgs[0]
    for c in cfgs:
        if any(getattr(c, f) != getattr(shared, f) for f in SHARED_TRAIN):
            raise ValueError("population members must share " + ", ".join(SHARED_TRAIN))
    place = current()
    if place.precision == "fp16":
        raise ValueError("populations train in fp32 or bf16 (fp16 needs a loss scaler)")
    device = place.device
    pop = Population(models).to(device)
    optimizer = PopulationAdam(pop.stacked, cfgs)
    rows = train.on(device)
    rng = np.random.default_rng(shared.seed)
    steps_per_epoch = math.ceil(epoch_size(shared, len(train)) / shared.batch_size)
    books = [EpochBook(scorer.direction, c.patience, on_epoch[k] if on_epoch else None)
             for k, c in enumerate(cfgs)]
    window = WeightWindow(shared.average)  # stacked: averaging the stack averages each member
    results: list[FitResult | TrialFailure | None] = [None] * len(models)
    active = list(range(len(models)))  # original member numbers, in stack order
    step = 0
    for epoch in range(1, shared.max_epochs + 1):
        epoch_start = time.perf_counter()
        pop.train()
        totals = torch.zeros(len(active), device=device)
        autocast = place.autocast(device)  # a no-op in fp32; entered per batch
        for batch in rows.train_batches(shared.batch_size, rng, rows=shared.epoch_rows):
            with autocast:
                out = pop(batch.x, batch.lengths)  # [K, B, C]
                losses = torch.stack([scorer.loss(out[k], batch.y)
                                      for k in range(len(active))])
            totals += losses.detach() * batch.y.shape[0]
            penalty = _l2(pop, [cfgs[m].l2_penalty for m in active])
            for p in pop.stacked:
                p.grad = None
            (losses.sum() + penalty).backward()
            optimizer.step([cfgs[m].lr * lr_factor(cfgs[m], step / steps_per_epoch)
                            for m in active])
            step += 1
        sums = totals.tolist()  # on a GPU: waits for the epoch's last step
        train_seconds = time.perf_counter() - epoch_start
        window.add(pop)
        leaving = []
        with window.applied(pop):  # the members' trailing averages, as fit() scores them
            val_out = predict(pop, val, row_dim=1)  # [K, N, C]
            for pos, m in enumerate(active):
                cfg = cfgs[m]
                train_loss = sums[pos] / epoch_size(shared, len(train))
                val_loss = float(scorer.loss(val_out[pos], val.y))
                try:
                    finite_loss("training", train_loss, epoch)
                    finite_loss("validation", val_loss, epoch)
                except TrialFailure as failure:
                    results[m] = failure
                    leaving.append(pos)
                    continue
                metric = scorer.val_metric(val_out[pos], val.y)
                lr_now = cfg.lr * lr_factor(cfg, step / steps_per_epoch)
                log = EpochLog(epoch, train_loss, val_loss, metric, lr_now,
                               time.perf_counter() - epoch_start, train_seconds)
                if books[m].record(log, lambda pos=pos: pop.member_state(pos)):
                    leaving.append(pos)
        reason = should_stop() if should_stop is not None else None
        if reason and epoch < shared.max_epochs:
            for pos, m in enumerate(active):
                if pos not in leaving:
                    books[m].stopped = reason
            break
        if leaving:
            stay = [pos for pos in range(len(active)) if pos not in leaving]
            active = [active[pos] for pos in stay]
            if not active:
                break
            pop.keep(stay)
            window.keep(stay)
            optimizer.params = pop.stacked
            optimizer.keep(stay)
    seconds = time.perf_counter() - start
    for m, book in enumerate(books):
        if results[m] is None:
            results[m] = book.result(models[m], seconds)
    return results  # type: ignore[return-value]


def _l2(pop: Population, strengths: list[float]) -> Tensor | float:
    """Each member's 0.5 * l2 * ||W||^2 over its matrices, summed over members."""
    if not any(strengths):
        return 0.0
    s = torch.tensor(strengths, device=pop.stacked[0].device)
    return sum((0.5 * s * p.flatten(1).pow(2).sum(1)).sum() for p in pop.stacked if p.dim() >= 3)

