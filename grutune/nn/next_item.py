"""NextItemModel: item ids -> GRU -> a score for every item of the catalog (GRU4Rec).

New beside ``SequenceModel`` because its output is not one vector per sequence: it
scores the next item after *every* step while it trains, and after the last step when
it predicts, with the items already seen excluded. The recurrent stack, the embedding
and the initialization are ``SequenceModel``'s.

- Training (``model.train()``): x [B, T] holds windows of a user's history; the GRU reads
  them in chunks of ``lookback`` steps (the history length: each chunk starts from a zero
  state, as a prediction from the last ``lookback`` items does) and the output is the
  logits of the next item at every step, [B, T, n_items], the window's items so far at
  -inf (they are excluded when it predicts too): full softmax cross-entropy.
- Prediction (``model.eval()``): x [B, T] is each user's whole history; the GRU reads its
  last ``lookback`` items and the output is log-probabilities over the items not in the
  history, [B, n_items] (a seen item gets ``-inf``).

``ModelConfig`` fields as this model reads them: ``vocab_size`` = items + 2 (0 is padding,
the last id an item outside the catalog), ``num_outputs`` = items, ``dropout`` on the item
embeddings, ``layer_dropout`` on the recurrent states (between layers and before
scoring), ``lookback`` the history length. The kind ``next_item_tied`` scores items with
the input embedding itself (through a projection of the state to its width).

>>> from grutune.config import ModelConfig
>>> cfg = ModelConfig(num_outputs=5, kind="next_item", vocab_size=7, embed_dim=4,
...                   hidden_size=3, pooling="last", lookback=2)
>>> m = NextItemModel(cfg).eval()
>>> out = m(torch.tensor([[1, 2, 3], [4, 0, 0]]), torch.tensor([3, 1]))
>>> out.shape, torch.isinf(out[0, :3]).all().item(), torch.isinf(out[1, 3]).item()
(torch.Size([2, 5]), True, True)
>>> m.train()(torch.tensor([[1, 2, 3]]), torch.tensor([3])).shape
torch.Size([1, 3, 5])
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn

from grutune.config import ModelConfig
from grutune.nn.model import MODEL_KINDS, SequenceModel


class NextItemModel(SequenceModel):
    """A history of item ids -> scores of the next item over the catalog."""

    stackable: ClassVar[bool] = False  # its forward is not the stacked GRU's

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        # small item vectors: with a tied head, N(0, 1) rows would start every logit huge
        nn.init.normal_(self.embed.weight, std=config.embed_dim ** -0.5)
        with torch.no_grad():
            self.embed.weight[0].zero_()

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        """x: [B, T] item ids (0 = padding), lengths: [B] -> [B, T, V] (training) or
        [B, V] log-probabilities with the history's items at -inf (prediction)."""
        if self.training:
            logits = self._score(self._chunked_states(x.long()))  # [B, T, V]
            return logits.masked_fill(self._seen_so_far(x.long()), float("-inf"))
        recent, recent_lengths = self._recent(x.long(), lengths)  # [B, L]
        states = self._states(recent.t())  # [L, B, H]
        last = states[recent_lengths - 1, torch.arange(x.size(0), device=x.device)]  # [B, H]
        logits = self._score(last)  # [B, V]
        return logits.masked_fill(self._seen(x.long()), float("-inf")).log_softmax(-1)

    def _states(self, ids: Tensor) -> Tensor:
        """The recurrent stack's states: [T, B] ids -> [T, B, H]."""
        h = self.dropout(self.embed(ids))  # [T, B, E]
        for i, layer in enumerate(self.layers):
            if i > 0:
                h = self.layer_dropout(h)
            h = layer(h, None)  # [T, B, H]
        return self.layer_dropout(h)

    def _chunked_states(self, x: Tensor) -> Tensor:
        """States of every step, each chunk of ``lookback`` steps read from a zero state:
        [B, T] -> [B, T, H]."""
        b, t = x.shape
        size = self.config.lookback or t
        chunks = -(-t // size)  # ceil
        padded = nn.functional.pad(x, (0, chunks * size - t))  # [B, chunks * size]
        ids = padded.view(b * chunks, size).t()  # [size, B * chunks]
        states = self._states(ids)  # [size, B * chunks, H]
        return states.transpose(0, 1).reshape(b, chunks * size, -1)[:, :t]  # [B, T, H]

    def _recent(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """The last ``lookback`` items of each history (right-padded) and their count:
        [B, T], [B] -> [B, L], [B]."""
        size = min(self.config.lookback or x.size(1), x.size(1))
        start = (lengths - size).clamp(min=0)  # [B]
        index = (start.unsqueeze(1) + torch.arange(size, device=x.device)).clamp(
            max=x.size(1) - 1)  # [B, L]
        return x.gather(1, index), lengths.clamp(max=size)

    def _seen(self, x: Tensor) -> Tensor:
        """[B, T] ids -> [B, V] True where the item is in the history (padding and the
        outside-the-catalog id mark nothing). A history that holds every item excludes
        none (there would be nothing left to rank)."""
        v = self.config.num_outputs
        seen = torch.zeros((x.size(0), v + 2), dtype=torch.bool, device=x.device)
        seen = seen.scatter(1, x, torch.ones_like(x, dtype=torch.bool))  # traceable form
        seen = seen[:, 1:v + 1]  # [B, V]
        return seen & ~seen.all(1, keepdim=True)

    def _seen_so_far(self, x: Tensor) -> Tensor:
        """[B, T] ids -> [B, T, V] True where the item occurs at or before the step: what
        the next item cannot be, as it cannot be when the model predicts."""
        b, t = x.shape
        v = self.config.num_outputs
        steps = torch.arange(t, device=x.device)
        first = torch.full((b, v + 2), t, dtype=torch.long, device=x.device).scatter_reduce_(
            1, x, steps.expand(b, t), reduce="amin")[:, 1:v + 1]  # [B, V] first position
        return first.unsqueeze(1) <= steps.view(1, t, 1)  # [B, T, V]

    def _score(self, h: Tensor) -> Tensor:
        """States [..., H] -> logits [..., V]."""
        return self.head(h)


class TiedNextItemModel(NextItemModel):
    """Scores are the state, projected to the embedding width, against each item's own
    input embedding (weight tying: GRU4Rec's constrained embeddings)."""

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        width = config.hidden_size
        self.head = nn.Linear(width, config.embed_dim)  # the state in item-embedding space
        self.item_bias = nn.Parameter(torch.zeros(config.num_outputs))

    def _score(self, h: Tensor) -> Tensor:
        items = self.embed.weight[1:self.config.num_outputs + 1]  # [V, E]
        return self.head(h) @ items.t() + self.item_bias  # [..., V]


MODEL_KINDS["next_item"] = NextItemModel
MODEL_KINDS["next_item_tied"] = TiedNextItemModel
