"""The convolutional and Transformer contexts against slow references written from
their docstrings, in float64, with every weight (norms included) random."""

import pytest
import torch
import torch.nn.functional as F

from cpc.models.context import (
    CausalConvContext,
    MaskedConvContext,
    RecurrentContext,
    TransformerContext,
    sinusoid,
)


def randomise(module):
    torch.manual_seed(1)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn_like(p) * 0.5)
    return module


def layer_norm(norm, x):
    return F.layer_norm(x, x.shape[-1:], norm.weight, norm.bias, norm.eps)


def causal_conv_reference(context, z, kernel, dilations):
    """h = proj(z); per block, h[t] += b + sum_j W[:, :, j] x[t - (kernel - 1 - j) * dilation]
    with x = gelu(norm(h)) and x before step 0 taken as zero."""
    h = z @ context.proj.weight.T + context.proj.bias  # (b, s, p, dim)
    for norm, conv, dilation in zip(context.norms, context.convs, dilations, strict=True):
        x = F.gelu(layer_norm(norm, h))
        out = h.clone()
        for t in range(z.shape[1]):
            out[:, t] += conv.bias
            for j in range(kernel):
                source = t - (kernel - 1 - j) * dilation
                if source >= 0:
                    out[:, t] += x[:, source] @ conv.weight[:, :, j].T
        h = out
    return h


@pytest.mark.parametrize(("kernel", "dilations"), [(3, (1, 2)), (2, (3, 1, 2))])
def test_causal_conv_context_matches_its_definition(kernel, dilations):
    context = randomise(CausalConvContext(3, 5, kernel, dilations).double())
    z = torch.randn(2, 9, 2, 3, dtype=torch.float64)
    expected = causal_conv_reference(context, z, kernel, dilations)
    torch.testing.assert_close(context(z), expected)


def test_causal_conv_receptive_field_is_what_the_gradients_see():
    """Defaults: kernel 3, dilations 1, 2, 4, 8: step t sees t - 30 .. t, 31 steps."""
    torch.manual_seed(0)
    context = CausalConvContext(2, 4).double()
    assert context.receptive_field == 31
    z = torch.randn(1, 40, 1, 2, dtype=torch.float64, requires_grad=True)
    context(z)[:, 39].sum().backward()
    seen = (z.grad[0, :, 0].abs().sum(-1) > 0).nonzero().flatten()
    assert seen.tolist() == list(range(40 - context.receptive_field, 40))


def masked_conv_reference(context, z, kernel_rows, kernel_cols):
    """Per block: h[i, j] += conv over rows i - kernel_rows + 1 .. i, columns
    j - kernel_cols // 2 .. j + kernel_cols // 2 (zeros outside) + row(mean over rows
    0..i of each row's mean over columns)."""
    h = z @ context.proj.weight.T + context.proj.bias  # (b, s, p, dim)
    s, p = z.shape[1:3]
    half = kernel_cols // 2
    for norm, conv, row in zip(context.norms, context.convs, context.rows, strict=True):
        x = F.gelu(layer_norm(norm, h))
        out = h.clone()
        for i in range(s):
            summary = x[:, : i + 1].mean(2).sum(1) / (i + 1)  # (b, dim)
            out[:, i] += (summary @ row.weight.T + row.bias)[:, None]
            for j in range(p):
                out[:, i, j] += conv.bias
                for a in range(kernel_rows):
                    for c in range(kernel_cols):
                        r, q = i - (kernel_rows - 1) + a, j - half + c
                        if r >= 0 and 0 <= q < p:
                            out[:, i, j] += x[:, r, q] @ conv.weight[:, :, a, c].T
        h = out
    return h


@pytest.mark.parametrize(("kernel_rows", "kernel_cols"), [(2, 3), (3, 5)])
def test_masked_conv_context_matches_its_definition(kernel_rows, kernel_cols):
    context = MaskedConvContext(3, 4, 2, kernel_rows, kernel_cols).double()
    context = randomise(context)
    z = torch.randn(2, 4, 6, 3, dtype=torch.float64)
    expected = masked_conv_reference(context, z, kernel_rows, kernel_cols)
    torch.testing.assert_close(context(z), expected)


def test_transformer_is_pre_norm():
    """Pre-norm: x + f(norm(x)) per sub-layer, one norm at the end. With the residual
    branches' output maps at zero, every layer is the identity whatever its own norms:
    c = norm(proj(z) + positions)."""
    context = randomise(TransformerContext(3, 8, num_layers=2, heads=2).double())
    with torch.no_grad():
        for layer in context.layers.layers:
            for out_map in (layer.self_attn.out_proj, layer.linear2):
                out_map.weight.zero_()
                out_map.bias.zero_()
    z = torch.randn(2, 5, 3, 3, dtype=torch.float64)
    h = z @ context.proj.weight.T + context.proj.bias
    h = h + sinusoid(5, 8, torch.device("cpu"), torch.float64)[:, None]
    torch.testing.assert_close(context(z), layer_norm(context.norm, h))


@pytest.mark.parametrize("kind", ["gru", "transformer", "conv", "masked_conv"])
def test_a_bfloat16_context_computes_in_bfloat16(kind):
    """model.to(torch.bfloat16): no float32 table or mask promotes a step on the way."""
    torch.manual_seed(0)
    context = {
        "gru": lambda: RecurrentContext(4, 8),
        "transformer": lambda: TransformerContext(4, 8, heads=2),
        "conv": lambda: CausalConvContext(4, 8),
        "masked_conv": lambda: MaskedConvContext(4, 8),
    }[kind]()
    z = torch.randn(2, 6, 3, 4)
    expected = context(z)
    c = context.bfloat16()(z.bfloat16())
    assert c.dtype == torch.bfloat16
    torch.testing.assert_close(c.float(), expected, atol=0.1, rtol=0.1)
