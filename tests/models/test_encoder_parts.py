"""Parts of the encoders that the invariance tests cannot see: the norms against their
definitions, the stages that streaming runs, the documented defaults and geometry."""

import math

import pytest
import torch
import torch.nn.functional as F
import torchaudio

from cpc.models.encoders import (
    ChannelNorm,
    ChannelsLastBatchNorm,
    ConvEncoder,
    PatchGridEncoder,
    ResBlock,
    SpectralEncoder,
    conv_output_lengths,
    spectral_transform,
)


@pytest.mark.parametrize("eps", [None, 1e-2])
def test_channel_norm_is_a_layer_norm_over_channels(eps):
    torch.manual_seed(0)
    norm = (ChannelNorm(6) if eps is None else ChannelNorm(6, eps=eps)).double()
    with torch.no_grad():
        norm.norm.weight.normal_()
        norm.norm.bias.normal_()
    x = torch.randn(2, 5, 6, dtype=torch.float64) * 1e-3  # small: eps 1e-5 matters
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)  # biased, unlike UnbiasedChannelNorm
    expected = (x - mean) / torch.sqrt(var + (eps or 1e-5)) * norm.norm.weight + norm.norm.bias
    torch.testing.assert_close(norm(x), expected)


def test_batch_norm_on_channels_last_equals_batch_norm_1d():
    torch.manual_seed(0)
    norm = ChannelsLastBatchNorm(4).double()
    reference = torch.nn.BatchNorm1d(4).double()
    reference.load_state_dict(norm.state_dict())  # the same names
    x = torch.randn(3, 7, 4, dtype=torch.float64)
    for mode in ("train", "eval"):
        getattr(norm, mode)()
        getattr(reference, mode)()
        y = norm(x)
        assert y.shape == x.shape
        torch.testing.assert_close(y, reference(x.transpose(1, 2)).transpose(1, 2))
    torch.testing.assert_close(norm.running_mean, reference.running_mean)


def run_stages(encoder, x):
    """The stream stages on a whole input, each padded as streaming pads it."""
    h = x[:, :, None] if x.dim() == 2 else x
    for stage in encoder.stream_stages():
        h = F.pad(h, (0, 0, stage.padding, stage.padding))
        steps = (h.shape[1] - stage.kernel) // stage.stride + 1
        h = stage.forward(h[:, : (steps - 1) * stage.stride + stage.kernel])
    return h


@pytest.mark.parametrize("padding", [None, (3, 2, 1)])
def test_stream_stages_compose_to_the_encoder(padding):
    torch.manual_seed(0)
    encoder = ConvEncoder(1, 8, (10, 8, 4), (5, 4, 2), padding=padding).double()
    stages = encoder.stream_stages()
    assert [(s.kernel, s.stride, s.padding) for s in stages] == list(
        zip(encoder.kernels, encoder.strides, encoder.padding, strict=True)
    )
    x = torch.randn(2, 523, dtype=torch.float64)
    torch.testing.assert_close(run_stages(encoder, x), encoder(x)[0][:, :, 0])
    assert encoder.padded == (padding is not None)


def test_spectral_stream_stages_start_with_the_frames():
    torch.manual_seed(0)
    encoder = SpectralEncoder(channels=8).double()
    first = encoder.stream_stages()[0]
    assert (first.kernel, first.stride, first.padding) == (400, 160, 0)
    x = torch.randn(2, 1500, dtype=torch.float64)
    torch.testing.assert_close(run_stages(encoder, x), encoder(x)[0][:, :, 0])


@pytest.mark.parametrize(
    ("norm", "conv_bias", "biased"),
    [
        ("layer", None, False),
        ("batch", None, True),
        ("layer_unbiased", None, True),
        ("none", None, True),
        ("layer", True, True),
        ("batch", False, False),
    ],
)
def test_convolution_bias_default_is_off_only_before_a_layer_norm(norm, conv_bias, biased):
    encoder = ConvEncoder(1, 8, (4, 4), (2, 2), norm, conv_bias=conv_bias)
    convs = [m for m in encoder.modules() if isinstance(m, torch.nn.Conv1d)]
    assert len(convs) == 2 and all((c.bias is not None) == biased for c in convs)


def conv_length(n, kernel, stride, padding):
    """Steps torch's own convolution gives for ``n`` samples (0 when it refuses)."""
    if n + 2 * padding < kernel:
        return 0
    w = torch.zeros(1, 1, kernel)
    return F.conv1d(torch.zeros(1, 1, n), w, stride=stride, padding=padding).shape[-1]


@pytest.mark.parametrize(
    ("kernels", "strides", "padding"),
    [((10, 8, 4), (5, 4, 2), None), ((10, 8, 4), (5, 4, 2), (3, 2, 1)), ((3, 3), (1, 2), (1, 1))],
)
def test_lengths_and_shortest_input_match_torch_convolutions(kernels, strides, padding):
    encoder = ConvEncoder(1, 4, kernels, strides, padding=padding)
    pads = padding or (0,) * len(kernels)
    expected = []
    for n in range(0, 260):
        for k, s, p in zip(kernels, strides, pads, strict=True):
            n = conv_length(n, k, s, p)
        expected.append(n)
    lengths = encoder.output_lengths(torch.arange(260))
    assert lengths.tolist() == expected
    assert encoder.min_samples == next(n for n, steps in enumerate(expected) if steps >= 1)


def test_length_formula_wants_one_entry_per_layer():
    with pytest.raises(ValueError):
        conv_output_lengths(torch.tensor([100]), [10, 8], [5])
    with pytest.raises(ValueError):
        conv_output_lengths(torch.tensor([100]), [10, 8], [5, 4], padding=[3])


def test_encoder_arguments_are_checked():
    for bad in [
        {"kernels": (4, 4), "strides": (2,)},
        {"kernels": (), "strides": ()},
        {"kernels": (4, 4), "strides": (2, 2), "padding": (1,)},
        {"kernels": (4, 4), "strides": (2, 2), "padding": (1, -1)},
    ]:
        with pytest.raises(ValueError, match="per layer"):
            ConvEncoder(1, 4, **bad)


def test_a_one_channel_encoder_takes_b_t_or_b_t_1():
    torch.manual_seed(0)
    encoder = ConvEncoder(1, 4, (4, 4), (2, 2)).double()
    x = torch.randn(2, 30, dtype=torch.float64)
    torch.testing.assert_close(encoder(x[:, :, None])[0], encoder(x)[0])


def mel_centres(sample_rate, n_mels):
    """Centre frequencies (Hz) of HTK mel filters spanning 0 .. sample_rate / 2."""
    top = 2595 * math.log10(1 + sample_rate / 2 / 700)
    mels = torch.linspace(0, top, n_mels + 2, dtype=torch.float64)[1:-1]
    return 700 * (10 ** (mels / 2595) - 1)


@pytest.mark.parametrize("sample_rate", [8000, 16000])
def test_log_mel_frames_put_a_tone_in_its_filter(sample_rate):
    """A 1 kHz tone peaks in the filter centred nearest 1 kHz at the stream's own rate;
    the frames are log(mel power + 1e-6), 40 filters by default."""
    encoder = SpectralEncoder(sample_rate, channels=4).double()
    t = torch.arange(4000, dtype=torch.float64) / sample_rate
    x = torch.sin(2 * math.pi * 1000 * t)[None]
    frames = encoder._frames(x)  # (1, frames, 40)
    assert frames.shape == (1, (4000 - 400) // 160 + 1, 40)
    expected = (mel_centres(sample_rate, 40) - 1000).abs().argmin()
    assert (frames[0].argmax(-1) == expected).all()
    mel = spectral_transform(sample_rate, "logmel", win=400, hop=160).double()(x)
    torch.testing.assert_close(frames, torch.log(mel + 1e-6).transpose(1, 2))
    silence = encoder._frames(torch.zeros(1, 800, dtype=torch.float64))
    torch.testing.assert_close(silence, torch.full_like(silence, math.log(1e-6)))


def test_mfcc_is_the_dct_of_the_decibel_mel_spectrum():
    """13 coefficients by default, from the mel power in dB (top 80 dB), not its log."""
    torch.manual_seed(0)
    x = torch.randn(1, 2000, dtype=torch.float64)
    mel = spectral_transform(8000, "logmel", win=400, hop=160).double()(x)[0]  # (40, s)
    db = 10 * torch.log10(mel.clamp(min=1e-10))
    db = db.clamp(min=float(db.max()) - 80)
    expected = torchaudio.functional.create_dct(13, 40, "ortho").double().T @ db
    mfcc = spectral_transform(8000, "mfcc", win=400, hop=160).double()(x)[0]
    torch.testing.assert_close(mfcc, expected)


@pytest.mark.parametrize(("kind", "features"), [("logmel", 24), ("mfcc", 9)])
def test_spectral_encoder_arguments_reach_its_parts(kind, features):
    encoder = SpectralEncoder(
        8000, kind, n_mels=24, n_mfcc=9, channels=4, kernels=(3, 2), strides=(1, 2), norm="batch"
    )
    assert encoder.frontend.sample_rate == 8000
    assert encoder.convs.in_channels == features
    assert any(isinstance(m, torch.nn.BatchNorm1d) for m in encoder.modules())
    z, _ = encoder(torch.randn(2, 3000))
    assert z.shape[2:] == (1, 4)


def test_spectral_encoder_defaults():
    """25 ms frames every 10 ms at 16 kHz, 40 mel filters, 256 channels."""
    encoder = SpectralEncoder()
    assert encoder.frontend.sample_rate == 16000 and (encoder.win, encoder.hop) == (400, 160)
    assert encoder.convs.in_channels == 40 and encoder.out_dim == 256
    assert SpectralEncoder(kind="mfcc").convs.in_channels == 13


def test_mfcc_frames_cannot_be_streamed():
    with pytest.raises(ValueError, match="MFCC"):
        SpectralEncoder(kind="mfcc", channels=4).stream_stages()
    assert len(SpectralEncoder(channels=4).stream_stages()) == 3  # frames + 2 convs


def test_spectral_encoder_built_on_meta_has_real_filter_banks():
    """Size checks build models on the meta device; the mel filters are still computed."""
    with torch.device("meta"):
        encoder = SpectralEncoder(kind="mfcc", channels=4)
    buffers = dict(encoder.frontend.named_buffers())
    assert buffers and all(b.device.type == "cpu" for b in buffers.values())
    assert all(torch.isfinite(b).all() for b in buffers.values())
    assert encoder.convs.layers[0].weight.device.type == "meta"


ENCODERS = {
    "wave": lambda: ConvEncoder(1, 4, (10, 8, 4), (5, 4, 2)),
    "signal": lambda: ConvEncoder(3, 4, (3, 2), (1, 2)),
    "logmel": lambda: SpectralEncoder(channels=4, kernels=(3, 2), strides=(2, 1)),
    "patches": lambda: PatchGridEncoder(1, 8, 4, widths=(4,), out_dim=4),
}


@pytest.mark.parametrize("name", list(ENCODERS))
def test_unpadded_geometry_gives_the_steps_produced(name):
    """(t - receptive_field) // downsampling + 1 steps, none of them before sample 0."""
    torch.manual_seed(0)
    encoder = ENCODERS[name]()
    assert encoder.left_padding == 0
    rf, down = encoder.receptive_field, encoder.downsampling
    for t in [rf, rf + down - 1, rf + down, rf + 3 * down + 1]:
        if name == "patches":
            z, lengths = encoder(torch.randn(1, 1, t, 8), torch.tensor([t]))
        else:
            shape = (1, t, 3) if name == "signal" else (1, t)
            z, lengths = encoder(torch.randn(shape), torch.tensor([t]))
        assert z.shape[1] == lengths.item() == (t - rf) // down + 1, t


def test_res_block_is_pre_activation():
    """x + conv(relu(gn(conv(relu(gn(x)))))), 3x3 convolutions that keep the size."""
    torch.manual_seed(0)
    block = ResBlock(8, groups=4).double()
    with torch.no_grad():
        for p in block.parameters():
            p.copy_(torch.randn_like(p) * 0.5)
    gn1, _, conv1, gn2, _, conv2 = block.body
    x = torch.randn(2, 8, 5, 6, dtype=torch.float64)
    h = F.conv2d(
        F.relu(F.group_norm(x, 4, gn1.weight, gn1.bias)), conv1.weight, conv1.bias, padding=1
    )
    h = F.conv2d(
        F.relu(F.group_norm(h, 4, gn2.weight, gn2.bias)), conv2.weight, conv2.bias, padding=1
    )
    torch.testing.assert_close(block(x), x + h)
    assert ResBlock(16).body[0].num_groups == 8  # the default


def test_patch_grid_defaults_are_cpc_v2s_patches():
    """64-pixel patches every 32 pixels of a 3-channel image, 256-d latents."""
    encoder = PatchGridEncoder()
    assert (encoder.in_channels, encoder.patch_size, encoder.patch_stride) == (3, 64, 32)
    assert encoder.out_dim == 256 and encoder.grid_size(256, 256) == (7, 7)
    blocks = [m for m in encoder.modules() if isinstance(m, ResBlock)]
    assert [b.body[2].in_channels for b in blocks] == [64, 128, 256]  # one block per stage


def test_patch_stride_bounds():
    PatchGridEncoder(1, 4, 1, widths=(4,), out_dim=2)  # every pixel row: allowed
    for stride in (0, 5):
        with pytest.raises(ValueError, match="patch_stride"):
            PatchGridEncoder(1, 4, stride, widths=(4,), out_dim=2)


def test_patch_grid_rows_for_valid_pixel_rows():
    encoder = PatchGridEncoder(1, 8, 3, widths=(4,), out_dim=2)
    heights = torch.tensor([7, 8, 10, 11, 30])
    rows = [max(0, encoder.grid_size(int(h), 8)[0]) for h in heights]
    assert encoder.output_lengths(heights).tolist() == rows == [0, 1, 1, 2, 8]


def test_patch_trunk_keeps_the_size_then_halves_it_per_stage():
    """3x3 convolutions of stride 1 in the first stage, stride 2 between stages."""
    encoder = PatchGridEncoder(1, 15, 15, widths=(4, 8, 8), out_dim=2)
    sizes = []
    for module in encoder.modules():
        if isinstance(module, ResBlock):
            module.register_forward_hook(lambda m, args, out: sizes.append(out.shape[-2:]))
    encoder(torch.randn(1, 1, 15, 15))
    assert sizes == [(15, 15), (8, 8), (4, 4)]


def test_images_of_the_wrong_channel_count_are_named():
    encoder = PatchGridEncoder(3, 8, 4, widths=(4,), out_dim=2)
    for bad in (torch.randn(1, 1, 16, 16), torch.randn(3, 16, 16)):
        with pytest.raises(ValueError, match=r"expected images \(b, 3, h, w\)"):
            encoder(bad)
