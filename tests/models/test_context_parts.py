"""Parts of the contexts the invariance tests cannot see: which recurrence is built,
and the position table against its definition (Vaswani et al. 2017)."""

import math

import pytest
import torch
from torch import nn

from cpc.models.context import RecurrentContext, sinusoid


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
