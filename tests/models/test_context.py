"""Causality by gradients and chunked state for every context network."""

import pytest
import torch

from cpc.models.builders import CONTEXTS, make_context
from cpc.models.context import MaskedConvContext, RecurrentContext

SEQUENCE_CONTEXTS = [c for c in CONTEXTS if c != "masked_conv"]


@pytest.mark.parametrize("kind", CONTEXTS)
@pytest.mark.parametrize("step", [0, 3, 7])
def test_context_is_causal_by_gradients(kind, step):
    torch.manual_seed(0)
    b, s, p, d = 2, 9, 3, 8
    ctx = make_context(kind, d, 16, num_layers=2).double()
    z = torch.randn(b, s, p, d, dtype=torch.float64, requires_grad=True)
    c = ctx(z)
    assert c.shape == (b, s, p, ctx.out_dim)
    c[:, step].sum().backward()
    assert z.grad[:, step + 1 :].abs().max() == 0, f"{kind}: c[{step}] sees the future"
    assert z.grad[:, step].abs().max() > 0
    if step > 0:
        assert z.grad[:, step - 1].abs().max() > 0


@pytest.mark.parametrize("step", [0, 2, 4])
def test_grid_context_sees_every_column_above_and_no_row_below(step):
    torch.manual_seed(0)
    b, s, p, d = 2, 6, 5, 8
    ctx = MaskedConvContext(d, 16, num_blocks=2).double()
    z = torch.randn(b, s, p, d, dtype=torch.float64, requires_grad=True)
    ctx(z)[:, step, 0].sum().backward()  # the leftmost patch of row `step`
    assert z.grad[:, step + 1 :].abs().max() == 0
    per_patch = z.grad[:, : step + 1].abs().sum((0, 3))  # (rows <= step, cols)
    assert (per_patch > 0).all(), "row i must see every column of rows <= i"


@pytest.mark.parametrize("kind", ["gru", "lstm"])
@pytest.mark.parametrize("chunks", [[10], [3, 7], [1, 4, 2, 3]])
def test_chunked_recurrent_context_equals_full(kind, chunks):
    torch.manual_seed(0)
    ctx = RecurrentContext(6, 12, kind, num_layers=2).double()
    z = torch.randn(2, 10, 2, 6, dtype=torch.float64)
    full = ctx(z)
    state, parts, start = None, [], 0
    for n in chunks:
        out, state = ctx.forward_chunk(z[:, start : start + n], state)
        parts.append(out)
        start += n
    torch.testing.assert_close(torch.cat(parts, 1), full)


def test_unknown_context_is_named():
    with pytest.raises(ValueError, match="'wavenet'"):
        make_context("wavenet", 4, 4)
