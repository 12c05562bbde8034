"""The channels-last strided convolution equals F.conv1d, values and gradients."""

import pytest
import torch
import torch.nn.functional as F

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


def test_bf16_autocast_runs_the_products_in_bf16():
    conv = StridedConv1d(8, 16, 8, 4)
    x = torch.randn(2, 64, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = conv(x)
    assert y.dtype == torch.bfloat16
    torch.testing.assert_close(y.float(), reference(conv, x), atol=0.05, rtol=0.05)
