"""The channels-last strided convolution equals F.conv1d, values and gradients."""

import pytest
import torch
import torch.nn.functional as F

from cpc.models import encoders
from cpc.models.encoders import StridedConv1d, _FramedConv

# in_channels, out_channels, kernel, stride, length: framed and unfolded paths, kernels
# that are and are not multiples of the stride, kernels shorter than the stride.
GEOMETRIES = [
    (3, 5, 8, 4, 40),
    (3, 5, 10, 5, 43),
    (2, 4, 4, 2, 17),
    (2, 4, 3, 1, 11),
    (2, 3, 5, 2, 20),
    (1, 4, 10, 5, 37),
    (2, 3, 2, 3, 20),
    (4, 2, 7, 3, 31),
    (4, 1, 2, 2, 5),  # the last sample is read by no window, and c == frames * stride
]


def reference(conv, x):
    return F.conv1d(x.transpose(1, 2), conv.weight, conv.bias, conv.stride).transpose(1, 2)


@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_matches_conv1d_and_its_gradients(geometry):
    c, d, k, s, t = geometry
    torch.manual_seed(0)
    conv = StridedConv1d(c, d, k, s).double()
    x = torch.randn(2, t, c, dtype=torch.float64, requires_grad=True)
    torch.testing.assert_close(conv(x), reference(conv, x))
    torch.autograd.gradcheck(conv, (x,))
    for bias in (conv.bias, None):
        torch.autograd.gradcheck(
            lambda x, w, b: _FramedConv.apply(x, w, b, s),
            (x, conv.weight, bias),
        )


def test_non_contiguous_input():
    conv = StridedConv1d(3, 4, 8, 4).double()
    x = torch.randn(2, 3, 50, dtype=torch.float64).transpose(1, 2)
    torch.testing.assert_close(conv(x), reference(conv, x))


@pytest.mark.parametrize("bias", [True, False])
def test_bf16_autocast_runs_the_products_in_bf16(bias):
    conv = StridedConv1d(8, 16, 8, 4, bias=bias)
    x = torch.randn(2, 64, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = conv(x)
    assert y.dtype == torch.bfloat16
    torch.testing.assert_close(y.float(), reference(conv, x), atol=0.05, rtol=0.05)


@pytest.mark.parametrize("needs", [(True, False), (False, True), (True, True)])
def test_gradients_reach_exactly_what_asks_for_them(needs):
    """A frozen convolution still passes the gradient to its input, and the reverse."""
    torch.manual_seed(0)
    conv = StridedConv1d(3, 5, 8, 4).double()
    x = torch.randn(2, 40, 3, dtype=torch.float64, requires_grad=needs[0])
    conv.requires_grad_(needs[1])
    y = conv(x)
    ref = reference(conv, x)
    grad = torch.randn_like(y)
    inputs = [t for t, n in [(x, needs[0]), (conv.weight, needs[1]), (conv.bias, needs[1])] if n]
    got = torch.autograd.grad(y, inputs, grad)
    expected = torch.autograd.grad(ref, inputs, grad)
    for g, e in zip(got, expected, strict=True):
        torch.testing.assert_close(g, e)


@pytest.mark.parametrize("batched", [False, True])
def test_both_product_layouts_match_conv1d(monkeypatch, batched):
    """The batched products (the path GPUs take) and the per-example ones (CPUs) are
    both checked here, on the CPU: CI has no GPU."""
    products = encoders._tap_products
    seen = []

    def forced(frames, wt, start, steps, batched_by_device):
        seen.append(batched_by_device)
        return products(frames, wt, start, steps, batched)

    monkeypatch.setattr(encoders, "_tap_products", forced)
    torch.manual_seed(0)
    for dtype in (torch.float64, torch.float32):  # float32: nothing runs in a lower precision
        for c, d, k, s, t in GEOMETRIES:
            conv = StridedConv1d(c, d, k, s).to(dtype)
            x = torch.randn(3, t, c, dtype=dtype)
            torch.testing.assert_close(conv(x), reference(conv, x))  # framed or unfolded
            for bias in (conv.bias, None):
                y = _FramedConv.apply(x, conv.weight, bias, s)
                expected = F.conv1d(x.transpose(1, 2), conv.weight, bias, s).transpose(1, 2)
                torch.testing.assert_close(y, expected)
    assert len(seen) > 4 * len(GEOMETRIES) and not any(seen)  # the CPU chooses 2-D products


def test_onnx_export_branch_is_the_same_convolution(monkeypatch):
    """While exporting, valid() emits one standard Conv; same values (cpc.checkpoints.export)."""
    monkeypatch.setattr(torch.onnx, "is_in_onnx_export", lambda: True)
    torch.manual_seed(0)
    for c, d, k, s, t in GEOMETRIES[:3]:
        conv = StridedConv1d(c, d, k, s).double()
        x = torch.randn(2, t, c, dtype=torch.float64)
        torch.testing.assert_close(conv.valid(x), reference(conv, x))


def test_same_parameters_as_conv1d():
    """Checkpoints of nn.Conv1d load: the same names, shapes and defaults (a bias)."""
    ours = StridedConv1d(3, 5, 8, 4).state_dict()
    theirs = torch.nn.Conv1d(3, 5, 8, 4).state_dict()
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in theirs.items()}
