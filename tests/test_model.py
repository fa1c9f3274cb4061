"""SequenceModel: padding never changes an output; init schemes; shapes."""

from __future__ import annotations

import itertools

import pytest
import torch

from grutune.config import ModelConfig
from grutune.nn.model import SequenceModel, count_parameters, reverse_index

torch.set_grad_enabled(True)


def _model(**kw) -> SequenceModel:
    cfg = dict(num_outputs=3, vocab_size=40, embed_dim=8, hidden_size=6)
    cfg.update(kw)
    torch.manual_seed(0)
    return SequenceModel(ModelConfig(**cfg)).eval()


CASES = list(itertools.product(["gru", "lstm"], [False, True], [1, 2],
                               ["last", "mean", "max", "attention"]))


@pytest.mark.parametrize(("cell", "bidirectional", "layers", "pooling"), CASES)
def test_padding_never_changes_output(cell, bidirectional, layers, pooling):
    model = _model(cell=cell, bidirectional=bidirectional, num_layers=layers, pooling=pooling)
    torch.manual_seed(1)
    lengths = torch.tensor([5, 2, 7, 1])
    x = torch.randint(1, 40, (4, 7))
    x[torch.arange(7) >= lengths.unsqueeze(1)] = 0
    base = model(x, lengths)
    # more padding, and garbage (non-pad ids) in the padded positions
    wide = torch.cat([x, torch.zeros(4, 6, dtype=torch.long)], dim=1)
    garbage = wide.clone()
    garbage[torch.arange(13) >= lengths.unsqueeze(1)] = 17
    torch.testing.assert_close(model(wide, lengths), base, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(model(garbage, lengths), base, rtol=1e-5, atol=1e-6)
    # each sequence alone, unpadded
    for i, n in enumerate(lengths.tolist()):
        alone = model(x[i:i + 1, :n], lengths[i:i + 1])
        torch.testing.assert_close(alone, base[i:i + 1], rtol=1e-5, atol=1e-6)


def test_numeric_input_padding_invariant():
    model = _model(vocab_size=0, input_dim=3, bidirectional=True, pooling="mean")
    x = torch.randn(2, 6, 3)
    lengths = torch.tensor([6, 3])
    base = model(x, lengths)
    x2 = x.clone()
    x2[1, 3:] = 99.0
    torch.testing.assert_close(model(x2, lengths), base)


def test_bidirectional_backward_direction_reads_reversed_sequence():
    """The backward GRU must see the sequence reversed within its own length."""
    model = _model(bidirectional=True, pooling="last")
    x = torch.tensor([[3, 4, 5, 0]])
    lengths = torch.tensor([3])
    layer = model.layers[0]
    emb = model.embed(x.t())
    expected = layer.bwd(emb[[2, 1, 0]])[0][-1, 0]  # final backward state
    out = layer(emb, reverse_index(lengths, 4))
    torch.testing.assert_close(out[0, 0, 6:], expected)


@pytest.mark.parametrize("scheme", ["default", "xavier", "he", "orthogonal"])
def test_init_schemes(scheme):
    model = _model(init=scheme, hidden_size=8)
    w_hh = model.layers[0].fwd.weight_hh_l0.detach()
    if scheme == "orthogonal":
        for block in w_hh.chunk(3):
            torch.testing.assert_close(block @ block.T, torch.eye(8), atol=1e-5, rtol=0)
    if scheme != "default":
        assert torch.all(model.layers[0].fwd.bias_ih_l0 == 0)
        assert torch.all(model.head.bias == 0)
    else:
        assert not torch.all(model.layers[0].fwd.bias_ih_l0 == 0)
    # the embedding's padding row stays zero whatever the scheme
    assert torch.all(model.embed.weight[0] == 0)


def test_he_and_xavier_scales_differ():
    he = _model(init="he", embed_dim=64, hidden_size=64).layers[0].fwd.weight_ih_l0
    xa = _model(init="xavier", embed_dim=64, hidden_size=64).layers[0].fwd.weight_ih_l0
    # Kaiming (relu gain) bound sqrt(6/fan_in)=0.306; Glorot sqrt(6/(64+64))=0.217
    assert he.abs().max() > 0.25 > xa.abs().max()


def test_parameter_count_matches_formula():
    model = _model(vocab_size=10, embed_dim=4, hidden_size=5, num_outputs=2)
    gru = 3 * (5 * 4 + 5 * 5 + 5 + 5)
    assert count_parameters(model) == 10 * 4 + gru + 5 * 2 + 2


def test_gru_fcn_drops_out_only_the_recurrent_branchs_state():
    """LSTM-FCN's dropout (0.8 in the papers) acts after the recurrent branch: with the
    head blind to that branch, training-mode outputs are the same under any dropout
    mask. Dropout on the series or on the FCN's features (where the plain model's
    dropout sits) held ArrowHead at 59% test accuracy against 76% after the fix."""
    from grutune.config import ModelConfig
    from grutune.nn.model import make_model

    torch.manual_seed(0)
    model = make_model(ModelConfig(num_outputs=3, input_dim=1, embed_dim=8, hidden_size=4,
                                   bidirectional=False, dropout=0.8, kind="gru_fcn")).train()
    with torch.no_grad():
        model.head.weight[:, :4] = 0.0  # the recurrent state's columns
    x, lengths = torch.randn(6, 30, 1), torch.full((6,), 30)
    torch.manual_seed(1)
    first = model(x, lengths)
    torch.manual_seed(2)
    torch.testing.assert_close(model(x, lengths), first)
    with torch.no_grad():
        model.head.weight[:, :4] = 1.0  # now the head reads it: the masks show
    torch.manual_seed(1)
    first = model(x, lengths)
    torch.manual_seed(2)
    assert not torch.allclose(model(x, lengths), first)


@pytest.mark.parametrize("series_norm", [False, True])
@pytest.mark.parametrize("pooling", ["last", "mean", "attention"])
@pytest.mark.parametrize("kind", ["conv_stem", "gru_fcn"])
def test_the_convolutions_never_read_padding(series_norm, pooling, kind):
    """StemModel and FCNModel (in evaluation): garbage after a series' end changes
    nothing, and each series alone (unpadded, including ones shorter than a kernel)
    gives its batch output."""
    from grutune.config import ModelConfig
    from grutune.nn.model import MODEL_KINDS, make_model

    torch.manual_seed(0)
    model = make_model(ModelConfig(num_outputs=3, input_dim=2, embed_dim=8, hidden_size=6,
                                   bidirectional=True, pooling=pooling, kind=kind,
                                   series_norm=series_norm)).eval()
    assert type(model) is MODEL_KINDS[kind] and not MODEL_KINDS[kind].stackable
    if kind == "gru_fcn":  # trained normalizations: not the identity they start as
        for norm in model.norms:
            norm.running_mean.uniform_(-1, 1)
            norm.running_var.uniform_(0.5, 2)
            torch.nn.init.uniform_(norm.bias, -1, 1)
    lengths = torch.tensor([37, 20, 9, 8, 5])
    x = torch.randn(5, 37, 2)
    base = model(x, lengths)
    garbage = x.clone()
    for i, n in enumerate(lengths.tolist()):
        garbage[i, n:] = 1e3
    torch.testing.assert_close(model(garbage, lengths), base, rtol=1e-5, atol=1e-5)
    for i, n in enumerate(lengths.tolist()):
        alone = model(x[i:i + 1, :n], lengths[i:i + 1])
        torch.testing.assert_close(alone, base[i:i + 1], rtol=1e-5, atol=1e-5)
