"""Encoders: lengths, padding, patch independence."""

import pytest
import torch

from cpc.models.encoders import ConvEncoder, PatchGridEncoder, SpectralEncoder


def small_conv(norm="layer", in_channels=1):
    return ConvEncoder(in_channels, 8, (10, 8, 4), (5, 4, 2), norm).double()


def test_paper_encoder_geometry():
    enc = ConvEncoder()
    assert enc.downsampling == 160 and enc.out_dim == 512 and enc.receptive_field == 465
    z, lens = enc(torch.randn(1, 20480), torch.tensor([20480]))
    assert z.shape == (1, (20480 - 465) // 160 + 1, 1, 512) and lens.item() == z.shape[1]


@pytest.mark.parametrize("encoder", ["wave", "logmel", "mfcc", "signal"])
def test_output_lengths_match_the_steps_produced(encoder):
    enc = {
        "wave": lambda: small_conv(),
        "logmel": lambda: SpectralEncoder(kind="logmel", channels=8).double(),
        "mfcc": lambda: SpectralEncoder(kind="mfcc", channels=8).double(),
        "signal": lambda: small_conv(in_channels=3),
    }[encoder]()
    rf = enc.receptive_field
    for t in [rf, rf + 1, rf + 159, rf + 160, 2 * rf + 7, 3001]:
        shape = (1, t, 3) if encoder == "signal" else (1, t)
        z, lens = enc(torch.randn(shape, dtype=torch.float64), torch.tensor([t]))
        assert lens.item() == z.shape[1], (encoder, t)


@pytest.mark.parametrize("norm", ["layer", "none"])
@pytest.mark.parametrize("spectral", [False, True])
def test_padded_batch_equals_single_runs(norm, spectral):
    torch.manual_seed(0)
    enc = SpectralEncoder(channels=8, norm=norm).double() if spectral else small_conv(norm)
    lengths = [2400, 1800, 1200]
    waves = [torch.randn(n, dtype=torch.float64) for n in lengths]
    batch = torch.zeros(3, max(lengths), dtype=torch.float64)
    for i, w in enumerate(waves):
        batch[i, : len(w)] = w
    z, lens = enc(batch, torch.tensor(lengths))
    for i, w in enumerate(waves):
        alone, n = enc(w[None], torch.tensor([len(w)]))
        assert lens[i] == n[0] == alone.shape[1]
        torch.testing.assert_close(z[i, : lens[i]], alone[0])


def test_too_short_input_names_the_receptive_field():
    with pytest.raises(ValueError, match="receptive field of 465"):
        ConvEncoder()(torch.randn(1, 400))


def test_wrong_channel_count_is_named():
    with pytest.raises(ValueError, match=r"\(b, t, 3\)"):
        small_conv(in_channels=3)(torch.randn(2, 500, 4))


def test_unknown_norm_is_named():
    with pytest.raises(ValueError, match="'instance'"):
        ConvEncoder(norm="instance")  # type: ignore[arg-type]


@pytest.mark.parametrize(("size", "stride"), [(8, 4), (8, 8), (10, 3)])
def test_patch_latent_has_zero_gradient_outside_its_patch(size, stride):
    torch.manual_seed(0)
    enc = PatchGridEncoder(2, size, stride, widths=(8, 16), out_dim=6).double()
    x = torch.randn(2, 2, 28, 26, dtype=torch.float64, requires_grad=True)
    z, _ = enc(x)
    rows, cols = enc.grid_size(28, 26)
    assert z.shape == (2, rows, cols, 6)
    for r, q in [(0, 0), (rows - 1, cols - 1), (rows // 2, 1)]:
        x.grad = None
        z[1, r, q].sum().backward(retain_graph=True)
        inside = torch.zeros(28, 26, dtype=torch.bool)
        inside[r * stride : r * stride + size, q * stride : q * stride + size] = True
        assert x.grad[0].abs().max() == 0, "another image leaked in"
        assert x.grad[1][:, ~inside].abs().max() == 0
        assert x.grad[1][:, inside].abs().sum() > 0


def test_image_smaller_than_a_patch_is_named():
    with pytest.raises(ValueError, match="smaller than one 8-pixel patch"):
        PatchGridEncoder(1, 8, 4, widths=(8,), out_dim=4)(torch.randn(1, 1, 6, 20))


def test_padded_encoder_lengths_and_shortest_input():
    enc = ConvEncoder(1, 8, padding=(3, 2, 1, 1, 1)).double()  # CPC_audio's layout
    assert enc.left_padding == 153 and enc.receptive_field == 465
    for t in [enc.min_samples, enc.min_samples + 1, 20480, 21923]:
        z, lens = enc(torch.randn(1, t, dtype=torch.float64), torch.tensor([t]))
        n = t  # the convolution length formula, layer by layer
        for k, s, p in zip(enc.kernels, enc.strides, enc.padding, strict=True):
            n = (n + 2 * p - k) // s + 1
        assert lens.item() == z.shape[1] == n, t
    assert enc(torch.randn(1, 20480, dtype=torch.float64))[0].shape[1] == 128  # t / 160
    with pytest.raises(ValueError, match="receptive field"):
        enc(torch.randn(1, enc.min_samples - 1, dtype=torch.float64))


def test_unbiased_channel_norm_matches_its_definition():
    from cpc.models.encoders import UnbiasedChannelNorm

    torch.manual_seed(0)
    norm = UnbiasedChannelNorm(6).double()
    torch.nn.init.normal_(norm.weight)
    torch.nn.init.normal_(norm.bias)
    x = torch.randn(2, 5, 6, dtype=torch.float64)
    d = x.shape[-1]
    mean = x.sum(-1, keepdim=True) / d
    var = ((x - mean) ** 2).sum(-1, keepdim=True) / (d - 1)  # unbiased, as CPC_audio
    expected = (x - mean) / torch.sqrt(var + 1e-5) * norm.weight + norm.bias
    torch.testing.assert_close(norm(x), expected)
