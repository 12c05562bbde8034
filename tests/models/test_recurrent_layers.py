"""The recurrent context beyond causality: its intermediate layers (``context.N``
features), how it runs under autocast, and on how many threads."""

import pytest
import torch
from einops import rearrange
from torch import nn

from cpc.models.context import SERIAL_STATE_VALUES, RecurrentContext


def stacked_reference(context, z, layers):
    """The first ``layers`` layers as a plain torch GRU/LSTM of that depth, same weights."""
    rnn = context.rnn
    ref = type(rnn)(rnn.input_size, rnn.hidden_size, num_layers=layers, batch_first=True)
    ref = ref.to(z.dtype)
    weights = rnn.state_dict()  # weight_ih_l0, ..., bias_hh_l2: keep layers < `layers`
    ref.load_state_dict({k: v for k, v in weights.items() if int(k.rsplit("_l", 1)[1]) < layers})
    out, _ = ref(rearrange(z, "b s p d -> (b p) s d"))
    return rearrange(out, "(b p) s h -> b s p h", b=z.shape[0])


@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_each_layer_equals_a_stack_of_that_depth(kind):
    torch.manual_seed(0)
    context = RecurrentContext(5, 7, kind, num_layers=3).double()  # in_dim != hidden
    z = torch.randn(2, 6, 3, 5, dtype=torch.float64)
    for upto in (1, 2, 3):
        c, states = context.forward_layers(z, upto)
        assert c.shape == (2, 6, 3, 7) and len(states) == upto
        torch.testing.assert_close(c, stacked_reference(context, z, upto))
    torch.testing.assert_close(context.forward_layers(z, 3)[0], context(z))


@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_layers_continue_from_their_states(kind):
    torch.manual_seed(0)
    context = RecurrentContext(4, 6, kind, num_layers=2).double()
    z = torch.randn(2, 9, 2, 4, dtype=torch.float64)
    whole, _ = context.forward_layers(z, 2)
    state, parts = None, []
    for lo, hi in [(0, 2), (2, 3), (3, 9)]:
        out, state = context.forward_layers(z[:, lo:hi], 2, state)
        parts.append(out)
    torch.testing.assert_close(torch.cat(parts, 1), whole)


@pytest.mark.parametrize("upto", [0, 3])
def test_a_layer_that_does_not_exist_is_named(upto):
    context = RecurrentContext(4, 6, num_layers=2)
    with pytest.raises(ValueError, match=f"layer {upto} of a 2-layer"):
        context.forward_layers(torch.randn(1, 3, 1, 4), upto)


@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_recurrence_runs_in_float32_under_bf16_autocast(kind):
    """bf16 latents (from an autocast encoder) go through the float32 weights exactly."""
    torch.manual_seed(0)
    context = RecurrentContext(6, 8, kind, num_layers=2)
    z = torch.randn(2, 5, 1, 6).bfloat16()
    expected = context(z.float())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        c, _ = context.forward_chunk(z)
        layer, _ = context.forward_layers(z, 2)
    assert c.dtype == layer.dtype == torch.float32
    torch.testing.assert_close(c, expected)
    torch.testing.assert_close(layer, expected)


@pytest.mark.parametrize("method", ["forward", "forward_layers"])
@pytest.mark.parametrize(
    ("beyond", "p", "one_thread"), [(-1, 1, True), (0, 1, False), (0, 2, False), (-2, 2, True)]
)
def test_small_cpu_recurrence_runs_on_one_thread(monkeypatch, method, beyond, p, one_thread):
    """Below SERIAL_STATE_VALUES values of state (sequences b * p x hidden): one thread,
    then the caller's thread count is back; at or above it: the caller's threads."""
    hidden = 8
    limit = SERIAL_STATE_VALUES // hidden  # sequences whose state holds exactly the limit
    b = (limit + beyond) // p  # b * p = limit + beyond sequences
    context = RecurrentContext(2, hidden)
    seen = []
    forward = nn.GRU.forward

    def spy(self, *args, **kwargs):
        seen.append(torch.get_num_threads())
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(nn.GRU, "forward", spy)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        z = torch.randn(b, 3, p, 2)
        c = context(z) if method == "forward" else context.forward_layers(z, 1)[0]
        after = torch.get_num_threads()
    finally:
        torch.set_num_threads(threads)
    assert c.shape == (b, 3, p, hidden)
    assert seen == [1 if one_thread else 2] and after == 2
