"""Train one model: optimizer, schedule, clipping, L2, early stopping. No Optuna here.

The task supplies what is task-specific (loss, validation metric and its direction); the
objective supplies callbacks (report/prune, stop on Ctrl-C or budget). The loop itself is
plain PyTorch over length-bucketed batches from ``cache.SequenceData``, on the process's
placement (``device.current()``: the CPU unless a run chose a GPU): the model and the
training split go there, the model comes back on the CPU.

>>> lr_factor(TrainConfig(schedule="step", step_size=2, gamma=0.5), epoch=4.0)
0.25
"""

from __future__ import annotations

import contextlib
import copy
import math
import random
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Protocol

import numpy as np
import torch
from torch import Tensor, nn

from grutune.compat import scale_
from grutune.config import TrainConfig
from grutune.data.cache import SequenceData
from grutune.exceptions import TrialFailure
from grutune.nn.device import current, full_precision, module_device

MIN_COSINE_FACTOR = 0.01  # cosine annealing ends at 1% of the peak rate, not at zero
WARMUP_START = 0.1  # warm-up starts at 10% of the peak rate


class Scorer(Protocol):
    """What the trainer needs from a task."""

    direction: str  # "maximize" or "minimize" the validation metric

    def loss(self, outputs: Tensor, y: Tensor) -> Tensor: ...

    def val_metric(self, outputs: Tensor, y: Tensor) -> float: ...


@dataclass
class EpochLog:
    epoch: int  # 1-based
    train_loss: float
    val_loss: float
    val_metric: float
    lr: float  # at the end of the epoch
    seconds: float  # the whole epoch, validation included
    train_seconds: float  # the training pass alone


@dataclass
class FitResult:
    best_epoch: int
    best_metric: float
    stopped: str  # early_stopping | max_epochs | callback | interrupted | budget
    seconds: float
    history: list[EpochLog] = field(default_factory=list)

    @property
    def best_val_loss(self) -> float:
        """The validation loss of the best epoch (breaks ties between equal metrics)."""
        return self.history[self.best_epoch - 1].val_loss

    def history_dicts(self) -> list[dict]:
        return [asdict(e) for e in self.history]


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def lr_factor(cfg: TrainConfig, epoch: float) -> float:
    """Multiplier of the peak learning rate after ``epoch`` (fractional) epochs.

    Linear warm-up from WARMUP_START to 1 over ``warmup_epochs``, then the schedule,
    whose clock starts when warm-up ends.
    """
    if epoch < cfg.warmup_epochs:
        return WARMUP_START + (1 - WARMUP_START) * epoch / cfg.warmup_epochs
    t = epoch - cfg.warmup_epochs
    if cfg.schedule == "step":
        return cfg.gamma ** math.floor(t / cfg.step_size)
    if cfg.schedule == "exponential":
        return cfg.gamma**t
    if cfg.schedule == "cosine":
        horizon = max(cfg.max_epochs - cfg.warmup_epochs, 1e-9)
        cos = 0.5 * (1 + math.cos(math.pi * min(t / horizon, 1.0)))
        return MIN_COSINE_FACTOR + (1 - MIN_COSINE_FACTOR) * cos
    return 1.0


def epoch_size(cfg: TrainConfig, rows: int) -> int:
    """Training rows one epoch visits: all, or ``cfg.epoch_rows`` drawn at random."""
    return min(cfg.epoch_rows or rows, rows)


def _param_groups(model: nn.Module) -> tuple[list[Tensor], list[Tensor]]:
    """(matrices that L2 applies to, vectors that it does not: biases)."""
    params = [p for p in model.parameters() if p.requires_grad]
    return [p for p in params if p.dim() >= 2], [p for p in params if p.dim() < 2]


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """The optimizer; weight decay is decoupled for every optimizer (see decoupled_decay)."""
    decay, no_decay = _param_groups(model)
    wd = cfg.weight_decay if cfg.optimizer in ("adamw", "adam") else 0.0
    groups = [{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}]
    # fused kernels: one pass over each parameter instead of a dozen (measured ~8% of a
    # small GRU's epoch on the CPU, where the embedding's update is a large share)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, fused=True)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr, decoupled_weight_decay=True, fused=True)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum,
                               nesterov=cfg.nesterov and cfg.momentum > 0, fused=True)
    return torch.optim.RMSprop(groups, lr=cfg.lr, momentum=cfg.momentum)


def decoupled_decay(optimizer: torch.optim.Optimizer, cfg: TrainConfig) -> None:
    """W <- W * (1 - lr * wd) for SGD/RMSprop, whose own weight_decay is coupled L2."""
    if cfg.weight_decay == 0 or cfg.optimizer in ("adamw", "adam"):
        return
    group = optimizer.param_groups[0]
    with torch.no_grad():
        scale_(group["params"], 1 - group["lr"] * cfg.weight_decay)


def l2_term(model: nn.Module, strength: float) -> Tensor | float:
    """0.5 * strength * sum of squared weights (matrices only), added to the loss."""
    if strength == 0:
        return 0.0
    decay, _ = _param_groups(model)
    return 0.5 * strength * sum((p * p).sum() for p in decay)


@torch.inference_mode()
def predict(model: nn.Module, data: SequenceData, batch_size: int = 256,
            row_dim: int = 0) -> Tensor:
    """Model outputs for every row of ``data``, in row order, on the CPU; no autograd.

    Runs where the model is (``data`` is copied there once, ``SequenceData.on``).
    ``row_dim``: the outputs' row axis (1 for a population's [K, B, C]).
    """
    model.eval()
    device = module_device(model)
    data = data.on(device)
    parts, rows = [], []
    with current().autocast(device):
        for index, batch in data.eval_batches(batch_size):
            parts.append(model(batch.x, batch.lengths))
            rows.append(torch.as_tensor(index))
    outputs = full_precision(torch.cat(parts, dim=row_dim)).cpu()
    result = torch.empty_like(outputs)
    return result.index_copy_(row_dim, torch.cat(rows), outputs)


class EarlyStopping:
    """Tracks the best validation metric (ties broken by the lower loss) and its weights."""

    def __init__(self, direction: str, patience: int):
        self.sign = 1.0 if direction == "maximize" else -1.0
        self.patience = patience
        self.best: tuple[float, float] | None = None  # (signed metric, -loss)
        self.best_epoch = 0
        self.best_state: dict[str, Tensor] | None = None

    def update(self, epoch: int, metric: float, loss: float,
               weights: Callable[[], dict[str, Tensor]]) -> bool:
        """Record the epoch (``weights()`` copies the current weights, called only on an
        improvement); True when patience has run out."""
        key = (self.sign * metric, -loss)
        if self.best is None or key > self.best:
            self.best, self.best_epoch = key, epoch
            self.best_state = weights()
        return epoch - self.best_epoch >= self.patience


class WeightWindow:
    """The last ``size`` epochs' weights and their average: a trailing checkpoint average,
    as stochastic weight averaging keeps over the end of training (``TrainConfig.average``;
    measured on the text built-ins in bench/RESULTS.md). Floating tensors are averaged,
    integer buffers (counters) taken from the latest epoch. Size 1 copies nothing.

    >>> model = nn.Linear(1, 1, bias=False)
    >>> window = WeightWindow(2)
    >>> for w in (1.0, 3.0):
    ...     _ = model.weight.data.fill_(w)
    ...     window.add(model)
    >>> with window.applied(model):
    ...     model.weight.item()
    2.0
    >>> model.weight.item()
    3.0
    """

    def __init__(self, size: int):
        self.size = size
        self.states: deque[dict[str, Tensor]] = deque(maxlen=size)

    def add(self, model: nn.Module) -> None:
        """Keep the model's weights after an epoch."""
        if self.size > 1:
            self.states.append({k: v.detach().clone() for k, v in model.state_dict().items()})

    def average(self) -> dict[str, Tensor]:
        """The kept epochs' weights averaged."""
        latest = self.states[-1]
        return {k: torch.stack([s[k] for s in self.states]).mean(0)
                if v.is_floating_point() else v.clone() for k, v in latest.items()}

    @contextlib.contextmanager
    def applied(self, model: nn.Module) -> Iterator[None]:
        """``model`` holds the average inside the block and its own (latest) weights after
        it; loading copies into the parameters, so the optimizer's state stays theirs."""
        if len(self.states) < 2:
            yield
            return
        model.load_state_dict(self.average())
        try:
            yield
        finally:
            model.load_state_dict(self.states[-1])

    def keep(self, index: list[int]) -> None:
        """Only rows ``index`` of every kept tensor stay (a population's members that
        train on, as ``Population.keep``)."""
        rows = torch.tensor(index)
        self.states = deque(({k: v[rows] for k, v in state.items()} for state in self.states),
                            maxlen=self.size)

    def finish(self, model: nn.Module) -> None:
        """Leave the average in ``model`` (the end of a fit with no held-out rows)."""
        if len(self.states) >= 2:
            model.load_state_dict(self.average())


def finite_loss(which: str, value: float, epoch: int) -> None:
    """TrialFailure unless the epoch's ``which`` ("training"/"validation") loss is finite."""
    if not math.isfinite(value):
        raise TrialFailure(f"{which} loss became {value} in epoch {epoch}")


class EpochBook:
    """One model's epoch bookkeeping, the same for ``fit`` and ``fit_population``: the
    epoch log, early stopping with the best weights, the callback's verdict and why the
    training stopped."""

    def __init__(self, direction: str, patience: int,
                 on_epoch: Callable[[EpochLog], bool] | None = None):
        self.stopper = EarlyStopping(direction, patience)
        self.on_epoch = on_epoch
        self.history: list[EpochLog] = []
        self.stopped = ""  # "" while it trains: callback | early_stopping | a stop reason

    def record(self, log: EpochLog, weights: Callable[[], dict[str, Tensor]]) -> bool:
        """Add a finished epoch (``weights()`` copies the current weights, called only on
        an improvement); True when the model stops here (callback or patience)."""
        self.history.append(log)
        patience_out = self.stopper.update(log.epoch, log.val_metric, log.val_loss, weights)
        if self.on_epoch is not None and self.on_epoch(log):
            self.stopped = "callback"
        elif patience_out:
            self.stopped = "early_stopping"
        return bool(self.stopped)

    def result(self, model: nn.Module, seconds: float) -> FitResult:
        """Load the best epoch's weights into ``model``; the fit's result."""
        model.load_state_dict(self.stopper.best_state)
        best = self.history[self.stopper.best_epoch - 1]
        return FitResult(self.stopper.best_epoch, best.val_metric, self.stopped or "max_epochs",
                         seconds, self.history)


def fit(
    model: nn.Module,
    train: SequenceData,
    val: SequenceData,
    cfg: TrainConfig,
    scorer: Scorer,
    on_epoch: Callable[[EpochLog], bool] | None = None,
    should_stop: Callable[[], str | None] | None = None,
) -> FitResult:
    """Train ``model`` in place; on return it holds the weights of its best epoch, on
    the CPU (it trains on the process's device, ``device.current()``). With
    ``cfg.average`` N > 1 an epoch's model is its weights averaged with the N - 1 epochs
    before (``WeightWindow``): validation scores, and early stopping keeps, that average.

    ``on_epoch`` returns True to stop (a pruner's verdict). ``should_stop`` returns a
    reason ("interrupted", "budget") to stop after the current epoch.
    """
    start = time.perf_counter()
    rng = np.random.default_rng(cfg.seed)
    with _on_device(model, train) as rows:
        optimizer, schedule, scaler = _optimizer_schedule(model, len(train), cfg)
        book = EpochBook(scorer.direction, cfg.patience, on_epoch)
        window = WeightWindow(cfg.average)
        for epoch in range(1, cfg.max_epochs + 1):
            epoch_start = time.perf_counter()
            train_loss = _train_epoch(model, rows, cfg, scorer, optimizer, schedule, rng,
                                      scaler)
            train_seconds = time.perf_counter() - epoch_start
            finite_loss("training", train_loss, epoch)
            window.add(model)
            with window.applied(model):
                val_out = predict(model, val)
                val_loss = float(scorer.loss(val_out, val.y))
                metric = scorer.val_metric(val_out, val.y)
                finite_loss("validation", val_loss, epoch)
                log = EpochLog(epoch, train_loss, val_loss, metric,
                               optimizer.param_groups[0]["lr"],
                               time.perf_counter() - epoch_start, train_seconds)
                if book.record(log, lambda: copy.deepcopy(model.state_dict())):
                    break
            reason = should_stop() if should_stop is not None else None
            if reason and epoch < cfg.max_epochs:
                book.stopped = reason
                break
        return book.result(model, time.perf_counter() - start)


def fit_epochs(model: nn.Module, train: SequenceData, cfg: TrainConfig, scorer: Scorer,
               epochs: int, should_stop: Callable[[], str | None] | None = None) -> str:
    """Train ``model`` in place for exactly ``epochs`` epochs, with no held-out rows, and
    keep the last epoch's weights (a refit: ``epochs`` came from an early-stopped run of
    the same configuration and seed), averaged with the ``cfg.average`` - 1 epochs before
    as ``fit`` averages them. The learning-rate schedule is laid out over
    ``cfg.max_epochs`` as in ``fit``, so epoch k sees the rates it saw there.

    Returns "" when every epoch ran, or ``should_stop``'s reason when it cut the fit short
    (checked after each epoch). A non-finite training loss is a ``TrialFailure``.
    """
    rng = np.random.default_rng(cfg.seed)
    with _on_device(model, train) as rows:
        optimizer, schedule, scaler = _optimizer_schedule(model, len(train), cfg)
        window = WeightWindow(cfg.average)
        for epoch in range(1, epochs + 1):
            finite_loss("training", _train_epoch(model, rows, cfg, scorer, optimizer,
                                                 schedule, rng, scaler), epoch)
            window.add(model)
            reason = should_stop() if should_stop is not None else None
            if reason and epoch < epochs:
                return reason
        window.finish(model)
    return ""


@contextlib.contextmanager
def _on_device(model: nn.Module, train: SequenceData) -> Iterator[SequenceData]:
    """The model on the process's device inside the block, back on the CPU after it
    (also after an error: a failed trial leaves nothing on a GPU); the training split's
    tensors there."""
    device = current().device
    model.to(device)
    try:
        yield train.on(device)
    finally:
        model.cpu()


def _optimizer_schedule(model: nn.Module, rows: int, cfg: TrainConfig
                        ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR,
                                   torch.amp.GradScaler]:
    """The optimizer, its per-step schedule laid out in epochs of ``rows`` rows, and the
    placement's loss scaler (fp16; a pass-through otherwise)."""
    optimizer = make_optimizer(model, cfg)
    steps_per_epoch = math.ceil(epoch_size(cfg, rows) / cfg.batch_size)
    return optimizer, torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(cfg, step / steps_per_epoch)), \
        current().grad_scaler()


def _train_epoch(model: nn.Module, data: SequenceData, cfg: TrainConfig, scorer: Scorer,
                 optimizer: torch.optim.Optimizer, schedule: torch.optim.lr_scheduler.LRScheduler,
                 rng: np.random.Generator, scaler: torch.amp.GradScaler) -> float:
    """One pass over the training split; returns the mean training loss."""
    model.train()
    total = torch.zeros((), device=data.x.device)
    autocast = current().autocast(data.x.device)  # a no-op in fp32; entered per batch
    for batch in data.train_batches(cfg.batch_size, rng, rows=cfg.epoch_rows):
        with autocast:
            loss = scorer.loss(model(batch.x, batch.lengths), batch.y)
        total += loss.detach() * batch.y.shape[0]
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss + l2_term(model, cfg.l2_penalty)).backward()
        if cfg.grad_clip > 0:
            scaler.unscale_(optimizer)  # clip the true gradients (fp16)
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        decoupled_decay(optimizer, cfg)
        scaler.step(optimizer)
        scaler.update()
        schedule.step()
    return float(total) / epoch_size(cfg, len(data))
