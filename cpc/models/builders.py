"""Builders: assemble a :class:`CPCModel` from flat, typed arguments.

Defaults cite their source. Each builder has a small preset for CPU work.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from torch import nn

from cpc.losses.infonce import InfoNCE, NegativeMode
from cpc.models.context import (
    CausalConvContext,
    MaskedConvContext,
    RecurrentContext,
    TransformerContext,
)
from cpc.models.cpc import CPCModel
from cpc.models.encoders import ConvEncoder, Norm, PatchGridEncoder, SpectralEncoder
from cpc.models.predictor import Predictor

ContextKind = Literal["gru", "lstm", "transformer", "conv", "masked_conv"]
CONTEXTS: tuple[str, ...] = ("gru", "lstm", "transformer", "conv", "masked_conv")


def make_context(kind: str, in_dim: int, dim: int, num_layers: int = 1) -> nn.Module:
    """A context network by name; every one is causal along ``s``."""
    if kind in ("gru", "lstm"):
        return RecurrentContext(in_dim, dim, kind, num_layers)  # type: ignore[arg-type]
    if kind == "transformer":
        return TransformerContext(in_dim, dim, num_layers=max(num_layers, 1))
    if kind == "conv":
        return CausalConvContext(in_dim, dim)
    if kind == "masked_conv":
        return MaskedConvContext(in_dim, dim, num_blocks=max(num_layers, 1))
    raise ValueError(f"context must be one of {CONTEXTS}, got {kind!r}")


def _assemble(
    encoder: nn.Module,
    *,
    context: str,
    context_dim: int,
    context_layers: int,
    k_min: int,
    num_offsets: int,
    num_negatives: int,
    negatives: NegativeMode,
    temperature: float,
    predictor: Literal["linear", "mlp"],
    gather_distributed: bool,
) -> CPCModel:
    out_dim = int(encoder.out_dim)  # type: ignore[arg-type]
    ctx = make_context(context, out_dim, context_dim, context_layers)
    head = Predictor(ctx.out_dim, out_dim, num_offsets, predictor)  # type: ignore[arg-type]
    loss = InfoNCE(
        num_offsets,
        k_min=k_min,
        num_negatives=num_negatives,
        negatives=negatives,
        temperature=temperature,
        gather_distributed=gather_distributed,
    )
    return CPCModel(encoder, ctx, head, loss)


def cpc_audio(
    *,
    frontend: Literal["waveform", "logmel", "mfcc"] = "waveform",
    sample_rate: int = 16000,
    channels: int = 512,
    kernels: Sequence[int] = (10, 8, 4, 4, 4),
    strides: Sequence[int] = (5, 4, 2, 2, 2),
    norm: Norm = "layer",
    n_mels: int = 40,
    context: ContextKind = "gru",
    context_dim: int = 256,
    context_layers: int = 1,
    k_min: int = 1,
    num_offsets: int = 12,
    num_negatives: int = 128,
    negatives: NegativeMode = "batch",
    temperature: float = 1.0,
    predictor: Literal["linear", "mlp"] = "linear",
    gather_distributed: bool = False,
) -> CPCModel:
    """Speech CPC. Defaults: van den Oord et al. 2018 with CPC_audio's choices.

    Paper: 16 kHz waveform, five strided convolutions (kernels 10, 8, 4, 4, 4; strides
    5, 4, 2, 2, 2; 512 channels; 10 ms steps), GRU of 256, 12 offsets. From CPC_audio:
    channel-wise layer norm instead of the paper's batch norm, 128 negatives drawn from
    the batch. ``frontend="logmel"``/``"mfcc"`` swaps the waveform convolutions for a
    torchaudio spectral front-end (25 ms windows, 10 ms hop) and two 3-tap convolutions;
    ``kernels``/``strides`` then apply to the frame convolutions only when given.
    """
    encoder: nn.Module
    if frontend == "waveform":
        encoder = ConvEncoder(1, channels, kernels, strides, norm)
    elif frontend in ("logmel", "mfcc"):
        default = tuple(kernels) == (10, 8, 4, 4, 4) and tuple(strides) == (5, 4, 2, 2, 2)
        encoder = SpectralEncoder(
            sample_rate,
            frontend,
            n_mels=n_mels,
            win=sample_rate // 40,
            hop=sample_rate // 100,
            channels=channels,
            kernels=(3, 3) if default else kernels,
            strides=(1, 1) if default else strides,
            norm=norm,
        )
    else:
        raise ValueError(f"frontend must be 'waveform', 'logmel' or 'mfcc', got {frontend!r}")
    return _assemble(
        encoder,
        context=context,
        context_dim=context_dim,
        context_layers=context_layers,
        k_min=k_min,
        num_offsets=num_offsets,
        num_negatives=num_negatives,
        negatives=negatives,
        temperature=temperature,
        predictor=predictor,
        gather_distributed=gather_distributed,
    )


def cpc_audio_small(**overrides: object) -> CPCModel:
    """The paper's speech layout at CPU size: 128 channels, GRU of 128, 12 offsets."""
    args: dict[str, object] = {"channels": 128, "context_dim": 128, "num_negatives": 64}
    args.update(overrides)
    return cpc_audio(**args)  # type: ignore[arg-type]


def cpc_signal(
    in_channels: int,
    *,
    channels: int = 128,
    kernels: Sequence[int] = (4, 4, 3),
    strides: Sequence[int] = (2, 2, 1),
    norm: Norm = "layer",
    context: ContextKind = "gru",
    context_dim: int = 128,
    context_layers: int = 1,
    k_min: int = 1,
    num_offsets: int = 8,
    num_negatives: int = 64,
    negatives: NegativeMode = "batch",
    temperature: float = 1.0,
    predictor: Literal["linear", "mlp"] = "linear",
    gather_distributed: bool = False,
) -> CPCModel:
    """CPC for pen and sensor streams of ``in_channels`` channels.

    No standard exists. Defaults aim at pens sampled near 100 Hz (SVC2004: 100 Hz):
    4x downsampling gives 40 ms steps, the receptive field is 18 samples (180 ms, about
    one stroke segment), and 8 offsets reach 320 ms ahead, roughly the next stroke. For
    IMUs at 50 Hz, halve the strides' product; at 200 Hz and up, add a stride-2 layer.
    """
    encoder = ConvEncoder(in_channels, channels, kernels, strides, norm)
    return _assemble(
        encoder,
        context=context,
        context_dim=context_dim,
        context_layers=context_layers,
        k_min=k_min,
        num_offsets=num_offsets,
        num_negatives=num_negatives,
        negatives=negatives,
        temperature=temperature,
        predictor=predictor,
        gather_distributed=gather_distributed,
    )


def cpc_image(
    in_channels: int = 3,
    *,
    patch_size: int = 64,
    patch_stride: int = 32,
    widths: Sequence[int] = (64, 128, 256),
    blocks: int = 1,
    dim: int = 256,
    context: ContextKind = "masked_conv",
    context_dim: int = 256,
    context_layers: int = 3,
    k_min: int | None = None,
    num_offsets: int = 5,
    num_negatives: int = 128,
    negatives: NegativeMode = "all",
    temperature: float = 1.0,
    predictor: Literal["linear", "mlp"] = "linear",
    gather_distributed: bool = False,
) -> CPCModel:
    """Image-row CPC on a patch grid (CPC; CPC v2, Hénaff et al. 2020).

    64-pixel patches on a 32-pixel stride (7x7 on 256-pixel crops), a ResNet-style patch
    encoder with group norm, a masked-convolution context over the rows above, up to 5
    rows ahead, all targets of the batch as candidates (CPC v2's full softmax).
    ``k_min`` defaults to 2 when patches overlap (row ``i + 1`` shares pixels with row
    ``i``) and 1 otherwise.
    """
    if k_min is None:
        k_min = 2 if patch_stride < patch_size else 1
    encoder = PatchGridEncoder(in_channels, patch_size, patch_stride, widths, blocks, dim)
    return _assemble(
        encoder,
        context=context,
        context_dim=context_dim,
        context_layers=context_layers,
        k_min=k_min,
        num_offsets=num_offsets,
        num_negatives=num_negatives,
        negatives=negatives,
        temperature=temperature,
        predictor=predictor,
        gather_distributed=gather_distributed,
    )


def cpc_image_small(in_channels: int = 1, **overrides: object) -> CPCModel:
    """A CPU grid for 28-32 pixel images: 8-pixel patches on a 4-pixel stride (6x6 on
    28x28), two narrow stages, offsets 2..4.
    """
    args: dict[str, object] = {
        "patch_size": 8,
        "patch_stride": 4,
        "widths": (32, 64),
        "dim": 64,
        "context_dim": 64,
        "context_layers": 2,
        "num_offsets": 3,
    }
    args.update(overrides)
    return cpc_image(in_channels, **args)  # type: ignore[arg-type]
