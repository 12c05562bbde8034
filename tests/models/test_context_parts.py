"""Parts of the contexts the invariance tests cannot see: which recurrence is built,
and the position table against its definition (Vaswani et al. 2017)."""

import math

import pytest
import torch
from torch import nn

from cpc.models.context import (
    CausalConvContext,
    MaskedConvContext,
    RecurrentContext,
    TransformerContext,
    sinusoid,
)


@pytest.mark.parametrize(("kind", "module"), [("gru", nn.GRU), ("lstm", nn.LSTM)])
def test_the_recurrence_named_is_the_one_built(kind, module):
    context = RecurrentContext(5, hidden=7, kind=kind)
    assert type(context.rnn) is module
    assert context.out_dim == 7 and context.rnn.hidden_size == 7


@pytest.mark.parametrize(("s", "dim"), [(6, 8), (3, 6)])
def test_position_table_matches_its_definition(s, dim):
    table = sinusoid(s, dim, torch.device("cpu"), torch.float64)
    assert table.shape == (s, dim) and table.dtype == torch.float64
    for i in range(s):
        for j in range(0, dim, 2):
            angle = i / 10000 ** (j / dim)
            assert math.isclose(float(table[i, j]), math.sin(angle), abs_tol=1e-6)
            assert math.isclose(float(table[i, j + 1]), math.cos(angle), abs_tol=1e-6)


def test_documented_defaults():
    recurrent = RecurrentContext(8)  # the CPC paper's: one GRU layer of 256
    assert type(recurrent.rnn) is nn.GRU and recurrent.rnn.num_layers == 1
    assert recurrent.out_dim == recurrent.rnn.hidden_size == 256
    transformer = TransformerContext(8)
    assert transformer.out_dim == 256 and len(transformer.layers.layers) == 2
    for layer in transformer.layers.layers:
        assert layer.self_attn.num_heads == 4 and layer.linear1.out_features == 4 * 256
        assert layer.dropout.p == 0.0 and layer.norm_first
    conv = CausalConvContext(
        8
    )  # kernel and dilations: its receptive field (test_context_reference)
    assert conv.out_dim == 256 and conv.receptive_field == 31
    grid = MaskedConvContext(8)
    assert grid.out_dim == 256 and len(grid.convs) == 3
    assert all(c.kernel_size == (2, 3) for c in grid.convs)


def test_only_the_recurrent_context_continues_from_a_state():
    """Chunked extraction (``cpc.features.extract``) relies on this flag."""
    assert RecurrentContext(4, 6, "lstm", num_layers=2).supports_chunks is True
    for whole in (
        TransformerContext(4, 8, heads=2),
        CausalConvContext(4, 8),
        MaskedConvContext(4, 8),
    ):
        assert whole.supports_chunks is False
        with pytest.raises(NotImplementedError, match="cannot continue"):
            whole.forward_chunk(torch.randn(1, 3, 1, 4))
