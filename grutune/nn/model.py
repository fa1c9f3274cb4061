"""SequenceModel: input -> stacked GRU/LSTM -> pooling -> dropout -> linear head.

The model only moves tensors. Sequences arrive right-padded with their lengths; padding
never changes a sequence's output:

- the forward direction reads a sequence left to right, so its states at valid steps
  never see padding (padding comes after);
- the backward direction reads each sequence *reversed within its own length* (a gather,
  built once per batch), so it too starts at the sequence's real last token;
- pooling (last state, mean, max, attention) only looks at valid steps.

This keeps cuDNN/oneDNN-friendly dense ``nn.GRU`` layers (no ``pack_padded_sequence``,
which is slow on the CPU) and lets batches be bucketed by length instead.

>>> import torch
>>> from grutune.config import ModelConfig
>>> m = SequenceModel(ModelConfig(num_outputs=3, vocab_size=50, embed_dim=8, hidden_size=4))
>>> m(torch.randint(1, 50, (2, 7)), torch.tensor([7, 3])).shape
torch.Size([2, 3])
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn

from grutune.config import ModelConfig
from grutune.exceptions import ConfigError
from grutune.nn.recurrence import FastGRU


def reverse_index(lengths: Tensor, steps: int) -> Tensor:
    """Time indices that reverse each sequence within its length; padding stays in place.

    >>> reverse_index(torch.tensor([3, 1]), 4).T.tolist()
    [[2, 1, 0, 3], [0, 1, 2, 3]]
    """
    t = torch.arange(steps, device=lengths.device).unsqueeze(1)  # [T, 1]
    lens = lengths.unsqueeze(0)  # [1, B]
    return torch.where(t < lens, lens - 1 - t, t)  # [T, B]


def _gather_time(h: Tensor, index: Tensor) -> Tensor:
    """h[index[t, b], b, :] for every (t, b); h: [T, B, D], index: [T, B]."""
    return torch.gather(h, 0, index.unsqueeze(-1).expand(-1, -1, h.size(-1)))


class RecurrentLayer(nn.Module):
    """One recurrent layer, one or two directions, padding-safe."""

    def __init__(self, cell: str, input_size: int, hidden_size: int, bidirectional: bool):
        super().__init__()
        rnn = FastGRU if cell == "gru" else nn.LSTM
        self.fwd = rnn(input_size, hidden_size)
        self.bwd = rnn(input_size, hidden_size) if bidirectional else None

    def forward(self, h: Tensor, rev: Tensor | None) -> Tensor:
        # h: [T, B, D_in] -> [T, B, H * directions]
        out = self.fwd(h)[0]  # [T, B, H]
        if self.bwd is None:
            return out
        back = self.bwd(_gather_time(h, rev))[0]  # [T, B, H], in reversed time
        return torch.cat([out, _gather_time(back, rev)], dim=-1)  # [T, B, 2H]


def znormalize(x: Tensor, valid: Tensor, eps: float = 1e-6) -> Tensor:
    """Each series and channel to mean 0, std 1 over its valid steps; padding stays 0.

    x: [B, T, F] values, valid: [B, T] bool -> [B, T, F]

    >>> x = torch.tensor([[[1.0], [3.0], [9.0]]])
    >>> znormalize(x, torch.tensor([[True, True, False]])).squeeze(-1)
    tensor([[-1.,  1.,  0.]])
    """
    m = valid.unsqueeze(-1).to(x.dtype)  # [B, T, 1]
    n = m.sum(1, keepdim=True).clamp_min(1.0)  # [B, 1, 1]
    mean = (x * m).sum(1, keepdim=True) / n  # [B, 1, F]
    var = (((x - mean) * m) ** 2).sum(1, keepdim=True) / n
    return (x - mean) / var.sqrt().clamp_min(eps) * m


class SequenceModel(nn.Module):
    """Embedding (token ids) or linear projection (numbers) -> recurrent stack -> head."""

    # population.py may train K of these as one stacked model (its forward is this one's)
    stackable: ClassVar[bool] = True

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        c = config
        if c.vocab_size > 0:
            self.embed: nn.Module = nn.Embedding(c.vocab_size, c.embed_dim, padding_idx=0)
        else:
            self.embed = nn.Linear(c.input_dim, c.embed_dim)
        width = c.hidden_size * (2 if c.bidirectional else 1)
        self.layers = nn.ModuleList(
            RecurrentLayer(c.cell, c.embed_dim if i == 0 else width, c.hidden_size,
                           c.bidirectional)
            for i in range(c.num_layers)
        )
        self.attention = nn.Linear(width, 1) if c.pooling == "attention" else None
        self.dropout = nn.Dropout(c.dropout)
        self.layer_dropout = nn.Dropout(c.layer_dropout)
        self.head = nn.Linear(width, c.num_outputs)
        init_weights(self, c.init)

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        """x: [B, T] token ids or [B, T, F] values; lengths: [B] -> outputs [B, num_outputs]."""
        return self.head(self.dropout(self.features(x, lengths)))  # [B, num_outputs]

    def features(self, x: Tensor, lengths: Tensor) -> Tensor:
        """The pooled recurrent state: [B, T(, F)], [B] -> [B, W]."""
        if self.config.series_norm:
            valid = torch.arange(x.size(1), device=x.device).unsqueeze(0) < lengths.unsqueeze(1)
            x = znormalize(x, valid)  # [B, T, F]
        h, lengths = self._embed(x, lengths)  # [T, B, E]
        return self._recurrent(self.dropout(h), lengths)  # [B, W]

    def _embed(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """The recurrent stack's inputs and their lengths: [B, T(, F)] -> [T, B, E]."""
        return self.embed(x.transpose(0, 1)), lengths

    def _recurrent(self, h: Tensor, lengths: Tensor) -> Tensor:
        """The recurrent stack and pooling: [T, B, E], [B] -> [B, W]."""
        steps = h.size(0)
        mask = torch.arange(steps, device=h.device).unsqueeze(1) < lengths.unsqueeze(0)  # [T, B]
        rev = reverse_index(lengths, steps) if self.config.bidirectional else None
        for i, layer in enumerate(self.layers):
            if i > 0:
                h = self.layer_dropout(h)
            h = layer(h, rev)  # [T, B, W]
        return self._pool(h, mask, lengths)  # [B, W]

    def _pool(self, h: Tensor, mask: Tensor, lengths: Tensor) -> Tensor:
        # h: [T, B, W], mask: [T, B] -> [B, W]
        kind = self.config.pooling
        if kind == "mean":
            return (h * mask.unsqueeze(-1)).sum(0) / lengths.unsqueeze(-1).to(h.dtype)
        if kind == "max":
            return h.masked_fill(~mask.unsqueeze(-1), float("-inf")).amax(0)
        if kind == "attention":
            scores = self.attention(torch.tanh(h)).squeeze(-1)  # [T, B]
            weights = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=0)
            return (weights.unsqueeze(-1) * h).sum(0)
        # "last": the forward state at each sequence's last valid step; the backward
        # direction's final state sits at step 0 (it read the sequence reversed).
        hidden = self.config.hidden_size
        last = h[lengths - 1, torch.arange(h.size(1), device=h.device)]  # [B, W]
        if not self.config.bidirectional:
            return last
        return torch.cat([last[:, :hidden], h[0, :, hidden:]], dim=-1)


def baseline_forecast(past: Tensor, kind: str, horizon: int, season: int) -> Tensor:
    """Naive (last value) or seasonal-naive (same step one season back) forecasts.

    past: [B, L, T] -> [B, horizon, T]

    >>> past = torch.arange(6.0).view(1, 6, 1)
    >>> baseline_forecast(past, "seasonal", 3, 2).flatten().tolist()
    [4.0, 5.0, 4.0]
    """
    steps = past.size(1)
    if kind == "naive" or season <= 1:
        return past[:, -1:].expand(-1, horizon, -1)
    m = min(season, steps)
    index = steps - m + torch.arange(horizon, device=past.device) % m  # [horizon]
    return past[:, index]


SMOOTH_START = -0.85  # the logit a "smooth" anchor starts at: alpha = sigmoid(-0.85) = 0.3


def smoothed_forecast(past: Tensor, logit: Tensor, horizon: int, season: int) -> Tensor:
    """Exponential smoothing of the seasonally adjusted window, its seasonal profile added
    back: the level and season of Holt-Winters without a trend, computed from the window
    alone (the hybrid of exponential smoothing and a recurrent net, as in Smyl's ES-RNN,
    2020). The profile is each phase's mean deviation from its season's mean over the
    window's whole seasons; the level is the exponentially weighted mean of the adjusted
    values (weight alpha = sigmoid(``logit``) on the newest), so alpha near 1 is the last
    adjusted value and near 0 their mean. The weights are a softmax of age x log(1 - alpha),
    finite for every logit (alpha itself rounds to 1 in float32 beyond a logit of 17).

    past: [B, L, T], logit: [T] -> [B, horizon, T]

    >>> past = torch.tensor([0.0, 2.0, 0.0, 2.0, 1.0, 3.0]).view(1, 6, 1)
    >>> smoothed_forecast(past, torch.tensor([7.0]), 3, 2).flatten().round(decimals=2).tolist()
    [1.0, 3.0, 1.0]
    """
    steps = past.size(1)
    k = steps // season if season > 1 else 0
    if k >= 1:
        seasons = past[:, steps - k * season:].unflatten(1, (k, season))  # [B, k, m, T]
        profile = (seasons - seasons.mean(2, keepdim=True)).mean(1)  # [B, m, T]
        adjusted = past - profile[:, (torch.arange(steps, device=past.device) - steps)
                                  % season]  # [B, L, T]
        ahead = profile[:, torch.arange(horizon, device=past.device) % season]  # [B, H, T]
    else:
        adjusted, ahead = past, torch.zeros_like(past[:, :1]).expand(-1, horizon, -1)
    age = torch.arange(steps - 1, -1, -1, device=past.device, dtype=past.dtype)  # [L]
    # alpha (1 - alpha)^age, normalized: alpha cancels, log(1 - alpha) = logsigmoid(-logit)
    weights = torch.softmax(age[:, None] * nn.functional.logsigmoid(-logit), dim=0)  # [L, T]
    level = (adjusted * weights).sum(1, keepdim=True)  # [B, 1, T]
    return level + ahead


class ForecastModel(SequenceModel):
    """A window of past values -> the next ``horizon`` values of each target at once.

    Targets are the first ``targets`` input channels (covariates follow). Options, each a
    hyperparameter: the GRU reads only the last ``lookback`` steps; ``window_norm``
    standardizes each window's targets by their own mean and std (undone on the output,
    so a level the training part never saw is no problem); ``baseline`` makes the head
    predict the residual over the naive or seasonal-naive forecast. The head starts at
    zero, so an untrained model *is* its baseline (or the window mean).

    >>> cfg = ModelConfig(num_outputs=6, input_dim=2, embed_dim=4, hidden_size=3, horizon=3,
    ...                   targets=2, baseline="naive")
    >>> x = torch.randn(5, 8, 2)
    >>> torch.equal(ForecastModel(cfg)(x, torch.full((5,), 8)), x[:, -1:].expand(-1, 3, -1))
    True
    """

    stackable = False  # its own forward: a population would compute another model

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        if config.baseline == "smooth":  # the smoothing weight's logit, learned
            self.smoothing = nn.Parameter(torch.full((config.targets,), SMOOTH_START))

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        """x: [B, L, F] windows (all of length L); lengths: [B] -> [B, horizon, targets]."""
        c = self.config
        past = x[..., : c.targets]  # [B, L, T]
        if c.window_norm:
            level = past.mean(1, keepdim=True)  # [B, 1, T]
            spread = (past.var(1, unbiased=False, keepdim=True) + 1e-4).sqrt()  # [B, 1, T]
            x = torch.cat([(past - level) / spread, x[..., c.targets:]], dim=-1)
        else:
            level, spread = torch.zeros_like(past[:, :1]), torch.ones_like(past[:, :1])
        if c.lookback:
            x = x[:, -c.lookback:]  # [B, lookback, F]
        pooled = self.features(x, lengths.clamp(max=x.size(1)))  # [B, W]
        out = self.head(self.dropout(pooled)).view(-1, c.horizon, c.targets)  # [B, H, T]
        if c.baseline == "smooth":
            anchor = smoothed_forecast(past, self.smoothing, c.horizon, c.season)
        elif c.baseline != "none":
            anchor = baseline_forecast(past, c.baseline, c.horizon, c.season)
        else:
            anchor = level
        return anchor + spread * out


class StemModel(SequenceModel):
    """Long numeric series: a strided convolutional stem, then the recurrent stack.

    A GRU over hundreds of raw steps learns poorly from a few dozen series; two 1-d
    convolutions (kernel 8 stride 4, then kernel 5) turn local shapes into ``embed_dim``
    features and the sequence 4x shorter, as in the GRU/LSTM-FCN line of work (Karim et
    al. 2017). Padding still never changes an output: a stem step is kept only if its
    whole receptive field lies inside the series, and steps past the new length are
    zeroed before the second convolution reads them.

    >>> from grutune.config import ModelConfig
    >>> m = StemModel(ModelConfig(num_outputs=3, input_dim=2, embed_dim=8, hidden_size=4,
    ...                           kind="conv_stem"))
    >>> m(torch.randn(5, 40, 2), torch.tensor([40, 39, 12, 8, 3])).shape
    torch.Size([5, 3])
    >>> stem_lengths(torch.tensor([40, 12, 8, 3]))
    tensor([9, 2, 1, 1])
    """

    stackable: ClassVar[bool] = False  # its forward is not the stacked GRU's

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        c = config
        self.embed = nn.Identity()  # the stem makes the recurrent stack's inputs
        self.stem1 = nn.Conv1d(c.input_dim, c.embed_dim, STEM_KERNEL, stride=STEM_STRIDE)
        self.stem2 = nn.Conv1d(c.embed_dim, c.embed_dim, 5, padding=2)

    def _embed(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """The stem: [B, T, F] -> [T', B, E] and the shorter lengths."""
        valid = torch.arange(x.size(1), device=x.device).unsqueeze(0) < lengths.unsqueeze(1)
        x = x * valid.unsqueeze(-1)  # padding is zero, whatever the caller put there
        if x.size(1) < STEM_KERNEL:  # one stem step still needs a whole kernel
            x = nn.functional.pad(x, (0, 0, 0, STEM_KERNEL - x.size(1)))
        short = stem_lengths(lengths)  # [B]
        h = torch.relu(self.stem1(x.transpose(1, 2)))  # [B, E, T']
        keep = torch.arange(h.size(2), device=x.device).unsqueeze(0) < short.unsqueeze(1)
        h = torch.relu(self.stem2(h * keep.unsqueeze(1))) * keep.unsqueeze(1)  # [B, E, T']
        return h.permute(2, 0, 1), short  # [T', B, E]


STEM_KERNEL, STEM_STRIDE = 8, 4


def stem_lengths(lengths: Tensor) -> Tensor:
    """Stem steps whose receptive field lies inside a series of each length (at least 1:
    a series shorter than the kernel is read whole, zero-padded)."""
    return ((lengths - STEM_KERNEL).clamp(min=0) // STEM_STRIDE + 1)


class FCNModel(SequenceModel):
    """GRU-FCN: the recurrent stack and a fully convolutional branch side by side.

    The FCN branch (Wang et al. 2017; beside a recurrent one in LSTM-FCN, Karim et al.
    2017, and GRU-FCN, Elsayed et al. 2018) is three 1-d convolutions of 128, 256 and 128
    filters (kernels 8, 5, 3, "same" padding), each with batch normalization and a ReLU,
    then the average over the series' valid steps; its [B, 128] joins the recurrent
    stack's pooled [B, W] before the head. On few, long series the convolutions learn
    the local shapes a GRU over hundreds of raw steps cannot (PROBES.md: 80% against the
    stem's 75% on a UCR problem of 36 series). Padding never changes an output in
    evaluation: every layer's output is zeroed past the series' end, so a convolution
    reads there the zeros it would read past the end of the series alone (in training,
    batch normalization's statistics do include the padded steps of a ragged batch).

    >>> from grutune.config import ModelConfig
    >>> m = FCNModel(ModelConfig(num_outputs=3, input_dim=2, embed_dim=8, hidden_size=4,
    ...                          kind="gru_fcn")).eval()
    >>> m(torch.randn(5, 40, 2), torch.tensor([40, 39, 12, 8, 3])).shape
    torch.Size([5, 3])
    """

    stackable: ClassVar[bool] = False  # its forward is not the stacked GRU's

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        c = config
        inputs = (c.input_dim, *FCN_FILTERS[:-1])
        self.convs = nn.ModuleList(nn.Conv1d(a, b, k) for a, b, k in
                                   zip(inputs, FCN_FILTERS, FCN_KERNELS, strict=True))
        self.norms = nn.ModuleList(nn.BatchNorm1d(b) for b in FCN_FILTERS)
        width = c.hidden_size * (2 if c.bidirectional else 1)
        self.head = nn.Linear(width + FCN_FILTERS[-1], c.num_outputs)
        # the convolutions keep PyTorch's He-uniform start (as the FCN papers), the
        # normalizations their (1, 0); the recurrent stack and the head follow ``init``
        init_weights(self, c.init, skip=("convs", "norms"))

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        """[B, T, F], [B] -> [B, num_outputs]. ``dropout`` acts on the recurrent branch's
        pooled state alone, where LSTM-FCN puts it: the GRU reads the series whole and
        the FCN's features reach the head whole (dropout 0.8 on both, as the plain
        model's place for it gives, held ArrowHead at 59% where the recipe reaches 80%)."""
        recurrent, pooled = self._branches(x, lengths)
        return self.head(torch.cat([self.dropout(recurrent), pooled], dim=1))

    def features(self, x: Tensor, lengths: Tensor) -> Tensor:
        """Both branches, pooled and joined: [B, T, F], [B] -> [B, W + 128]."""
        return torch.cat(self._branches(x, lengths), dim=1)

    def _branches(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """The recurrent stack's pooled state [B, W] and the FCN's [B, 128]."""
        valid = torch.arange(x.size(1), device=x.device).unsqueeze(0) < lengths.unsqueeze(1)
        if self.config.series_norm:
            x = znormalize(x, valid)  # [B, T, F]
        recurrent = self._recurrent(*self._embed(x, lengths))  # [B, W]
        keep = valid.unsqueeze(1).to(x.dtype)  # [B, 1, T]
        h = x.transpose(1, 2) * keep  # [B, F, T]
        for conv, norm in zip(self.convs, self.norms, strict=True):
            k = conv.kernel_size[0]  # "same" padding, the odd one on the right
            h = nn.functional.pad(h, ((k - 1) // 2, k // 2))  # [B, C, T + k - 1]
            h = torch.relu(norm(conv(h))) * keep  # [B, C', T]
        pooled = h.sum(2) / lengths.unsqueeze(1).to(h.dtype)  # [B, 128]
        return recurrent, pooled


FCN_FILTERS, FCN_KERNELS = (128, 256, 128), (8, 5, 3)


# model families by name: a task's model_config names one (ModelConfig.kind)
MODEL_KINDS: dict[str, type[SequenceModel]] = {"sequence": SequenceModel,
                                               "forecast": ForecastModel,
                                               "conv_stem": StemModel,
                                               "gru_fcn": FCNModel}


def make_model(config: ModelConfig) -> SequenceModel:
    """The model of ``config.kind`` (``MODEL_KINDS``).

    >>> type(make_model(ModelConfig(num_outputs=2, input_dim=3))).__name__
    'SequenceModel'
    """
    if config.kind not in MODEL_KINDS:
        raise ConfigError(f"model kind: must be one of {', '.join(MODEL_KINDS)}; got "
                          f"{config.kind!r}")
    return MODEL_KINDS[config.kind](config)


class Ensemble(nn.Module):
    """The final model: one or more SequenceModels whose outputs are averaged.

    ``combine="probability"`` averages class probabilities and returns their log (so the
    result is still a valid logit input for softmax/cross-entropy); ``"mean"`` averages
    raw outputs (regression). One member behaves exactly like that member.

    >>> from grutune.config import ModelConfig
    >>> m = SequenceModel(ModelConfig(num_outputs=2, vocab_size=9, embed_dim=4, hidden_size=3))
    >>> e = Ensemble([m, m], "probability")
    >>> x, n = torch.randint(1, 9, (2, 5)), torch.tensor([5, 2])
    >>> torch.allclose(e(x, n).softmax(-1), m(x, n).softmax(-1), atol=1e-6)
    True
    """

    def __init__(self, members: list[SequenceModel], combine: str):
        super().__init__()
        if combine not in ("probability", "mean"):
            raise ValueError(f"combine: must be probability or mean; got {combine!r}")
        self.members = nn.ModuleList(members)
        self.combine = combine

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        outputs = [member(x, lengths) for member in self.members]  # K x [B, C]
        if len(outputs) == 1:
            return outputs[0]
        if self.combine == "mean":
            return torch.stack(outputs).mean(0)
        probs = torch.stack([o.softmax(-1) for o in outputs]).mean(0)  # [B, C]
        return probs.clamp_min(1e-12).log()


def init_weights(model: SequenceModel, scheme: str, skip: tuple[str, ...] = ()) -> None:
    """Initialize recurrent and linear weights by ``scheme``; biases to zero. Submodules
    named in ``skip`` keep their own initialization.

    ``default`` keeps PyTorch's uniform(-1/sqrt(H), 1/sqrt(H)). ``xavier`` and ``he`` use
    the Glorot / Kaiming uniform rule on every weight matrix (per gate block for the
    recurrent ones). ``orthogonal`` makes each recurrent gate block orthogonal (keeps the
    recurrence norm-preserving at start) and uses Xavier for input weights.
    """
    if scheme == "default":
        return
    for name, param in model.named_parameters():
        if name.split(".")[0] in skip:
            continue
        if name.startswith("embed.") and model.config.vocab_size > 0:
            continue  # embedding tables keep their N(0, 1) rows (and the zero <pad> row)
        if param.dim() == 1:
            nn.init.zeros_(param)
            continue
        for block in _gate_blocks(name, param, model.config):
            if scheme == "orthogonal" and "weight_hh" in name:
                nn.init.orthogonal_(block)
            elif scheme == "he":
                nn.init.kaiming_uniform_(block, nonlinearity="relu")
            else:  # xavier, and the input weights of "orthogonal"
                nn.init.xavier_uniform_(block)


def _gate_blocks(name: str, param: Tensor, config: ModelConfig) -> list[Tensor]:
    """Views of a recurrent weight split per gate (3 for GRU, 4 for LSTM), else [param]."""
    if "weight_ih" in name or "weight_hh" in name:
        gates = 3 if config.cell == "gru" else 4
        return list(param.data.chunk(gates, dim=0))
    return [param.data]


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
