"""Builders: assemble a :class:`CPCModel` from flat, typed arguments.

Defaults cite their source. Each builder has a small preset for CPU work.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from typing import Any, Literal

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
from cpc.models.protocols import Context, Encoder
from cpc.models.transformer_head import TransformerHead

ContextKind = Literal["gru", "lstm", "transformer", "conv", "masked_conv"]
CONTEXTS: tuple[str, ...] = ("gru", "lstm", "transformer", "conv", "masked_conv")
PredictorKind = Literal["linear", "mlp", "transformer"]
PREDICTORS: tuple[str, ...] = ("linear", "mlp", "transformer")
Frontend = Literal["waveform", "logmel", "mfcc"]


def make_context(kind: str, in_dim: int, dim: int, num_layers: int = 1) -> Context:
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


def make_predictor(kind: str, context_dim: int, latent_dim: int, num_offsets: int) -> nn.Module:
    """A prediction head by name: ``c`` (b, s, p, h) -> guesses (b, s, p, k, d).

    ``"linear"``: the CPC paper's ``W_k``; ``"mlp"``: one hidden layer per offset;
    ``"transformer"``: one causal Transformer layer over the context before the linear
    maps (CPC_audio's ``rnnMode=transformer``, see :mod:`cpc.models.transformer_head`).
    """
    if kind in ("linear", "mlp"):
        return Predictor(context_dim, latent_dim, num_offsets, kind)  # type: ignore[arg-type]
    if kind == "transformer":
        return TransformerHead(context_dim, latent_dim, num_offsets)
    raise ValueError(f"predictor must be one of {PREDICTORS}, got {kind!r}")


@dataclass(frozen=True)
class HeadSettings:
    """The context, predictor and loss settings every builder shares, in one place.

    Each builder has its own defaults (:data:`AUDIO_HEAD`, :data:`SIGNAL_HEAD`,
    :data:`IMAGE_HEAD`); pass a whole ``head=`` or override single fields by keyword
    (``cpc_audio(context_dim=64)``). A config sets them through the common keys of
    :class:`cpc.config.ModelConfig` (same names; None there: the builder's default);
    ``tests/data/test_recipes.py`` checks that the two lists agree.

    Attributes:
        context: Context network (:func:`make_context`).
        context_dim: Its width ``h``.
        context_layers: Its depth.
        k_min: First prediction offset; None: 2 for overlapping patches, else 1.
        num_offsets: Offsets scored, ``k_min .. k_min + num_offsets - 1``.
        num_negatives: Candidates drawn per anchor (sampled modes).
        negatives: Where negatives come from (:class:`~cpc.losses.InfoNCE`).
        sequence_fraction: ``negatives="mixed"``: the share drawn from the anchor's
            own sequence, the rest from the batch.
        temperature: Score temperature.
        predictor: ``linear`` (the paper's), ``mlp`` or ``transformer`` (one causal
            Transformer layer before the linear maps, :func:`make_predictor`).
        gather_distributed: Draw negatives from every process's batch under torchrun.

    """

    context: ContextKind = "gru"
    context_dim: int = 256
    context_layers: int = 1
    k_min: int | None = 1
    num_offsets: int = 12
    num_negatives: int = 128
    negatives: NegativeMode = "batch"
    sequence_fraction: float = 0.5
    temperature: float = 1.0
    predictor: PredictorKind = "linear"
    gather_distributed: bool = False


#: Field names of :class:`HeadSettings` (what a builder accepts as keyword overrides).
HEAD_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(HeadSettings))

#: Speech: the paper's GRU of 256 and 12 offsets; 128 negatives from the anchor's own
#: sequence (the CPC paper's "current sequence only", its Table 2). Negatives from other
#: speakers' windows let the loss be won by speaker identity: on the built-in corpus,
#: batch negatives gave across-speaker phone ABX 20.7% against 8.7% (results/table1).
AUDIO_HEAD = HeadSettings(negatives="sequence")
#: Pen and sensor streams: a GRU of 128, 8 offsets (320 ms at 40 ms steps), 64 negatives.
SIGNAL_HEAD = HeadSettings(context_dim=128, num_offsets=8, num_negatives=64)
#: Image rows (CPC v2): masked convolutions over the rows above, 5 rows ahead from
#: ``k = 2`` when patches overlap, every target of the batch as a candidate.
IMAGE_HEAD = HeadSettings(
    context="masked_conv", context_layers=3, k_min=None, num_offsets=5, negatives="all"
)


def head_settings(
    default: HeadSettings, head: HeadSettings | None, **overrides: Any
) -> HeadSettings:
    """``head`` (or the builder's ``default``) with keyword overrides applied.

    Raises:
        ValueError: An override that is not a head setting (names it).

    """
    unknown = sorted(set(overrides) - set(HEAD_FIELDS))
    if unknown:
        raise ValueError(f"unknown builder argument(s) {unknown}; head settings: {HEAD_FIELDS}")
    return replace(head or default, **overrides)


def assemble(encoder: Encoder, head: HeadSettings, k_min: int) -> CPCModel:
    """Context, predictor and loss of ``head`` around a built encoder (a new modality's
    builder makes its encoder and calls this, as the shipped builders do).
    """
    ctx = make_context(head.context, encoder.out_dim, head.context_dim, head.context_layers)
    predictor = make_predictor(head.predictor, ctx.out_dim, encoder.out_dim, head.num_offsets)
    loss = InfoNCE(
        head.num_offsets,
        k_min=k_min,
        num_negatives=head.num_negatives,
        negatives=head.negatives,
        temperature=head.temperature,
        gather_distributed=head.gather_distributed,
        sequence_fraction=head.sequence_fraction,
    )
    return CPCModel(encoder, ctx, predictor, loss)


def cpc_audio(
    *,
    frontend: Frontend = "waveform",
    sample_rate: int = 16000,
    channels: int = 512,
    kernels: Sequence[int] | None = None,
    strides: Sequence[int] | None = None,
    norm: Norm = "layer",
    padding: Sequence[int] | None = None,
    n_mels: int = 40,
    head: HeadSettings | None = None,
    **head_overrides: Any,
) -> CPCModel:
    """Speech CPC. Defaults: van den Oord et al. 2018 with CPC_audio's choices.

    Paper: 16 kHz waveform, five strided convolutions (kernels 10, 8, 4, 4, 4; strides
    5, 4, 2, 2, 2; 512 channels; 10 ms steps), GRU of 256, 12 offsets. From CPC_audio:
    channel-wise layer norm instead of the paper's batch norm. 128 negatives drawn from
    the anchor's own sequence (the paper's "current sequence only"; ``negatives="batch"``
    for CPC_audio's whole-batch draw). ``frontend="logmel"``/``"mfcc"`` swaps the
    waveform convolutions for a torchaudio spectral front-end (25 ms windows, 10 ms hop)
    and frame convolutions (``kernels``/``strides``, default two 3-tap ones with stride
    1). Context, predictor and loss: :data:`AUDIO_HEAD`, or ``head`` / keyword overrides
    (:class:`HeadSettings`).
    ``padding`` (waveform only) pads every convolution as CPC_audio does (3, 2, 1, 1, 1
    for its models); see :class:`cpc.models.encoders.ConvEncoder` for what that costs.
    """
    settings = head_settings(AUDIO_HEAD, head, **head_overrides)
    encoder: Encoder
    if frontend == "waveform":
        encoder = ConvEncoder(
            1, channels, kernels or (10, 8, 4, 4, 4), strides or (5, 4, 2, 2, 2), norm, padding
        )
    elif padding is not None:
        raise ValueError(f"padding is for the waveform encoder, not frontend={frontend!r}")
    elif frontend in ("logmel", "mfcc"):
        encoder = SpectralEncoder(
            sample_rate,
            frontend,
            n_mels=n_mels,
            win=sample_rate // 40,
            hop=sample_rate // 100,
            channels=channels,
            kernels=kernels or (3, 3),
            strides=strides or (1, 1),
            norm=norm,
        )
    else:
        raise ValueError(f"frontend must be 'waveform', 'logmel' or 'mfcc', got {frontend!r}")
    return assemble(encoder, settings, settings.k_min or 1)


def cpc_audio_small(**overrides: object) -> CPCModel:
    """The paper's speech layout at CPU size: 128 channels, GRU of 128, 12 offsets."""
    args: dict[str, object] = {"channels": 128, "context_dim": 128, "num_negatives": 64}
    args.update(overrides)
    return cpc_audio(**args)  # type: ignore[arg-type]


def cpc_signal(
    in_channels: int = 1,
    *,
    channels: int = 128,
    kernels: Sequence[int] = (4, 4, 3),
    strides: Sequence[int] = (2, 2, 1),
    norm: Norm = "layer",
    padding: Sequence[int] | None = None,
    head: HeadSettings | None = None,
    **head_overrides: Any,
) -> CPCModel:
    """CPC for pen and sensor streams of ``in_channels`` channels.

    No standard exists. Defaults aim at pens sampled near 100 Hz (SVC2004: 100 Hz):
    4x downsampling gives 40 ms steps, the receptive field is 18 samples (180 ms, about
    one stroke segment), and 8 offsets reach 320 ms ahead, roughly the next stroke. For
    IMUs at 50 Hz, halve the strides' product; at 200 Hz and up, add a stride-2 layer.
    Context, predictor and loss: :data:`SIGNAL_HEAD`, or ``head`` / keyword overrides.
    """
    settings = head_settings(SIGNAL_HEAD, head, **head_overrides)
    encoder = ConvEncoder(in_channels, channels, kernels, strides, norm, padding)
    return assemble(encoder, settings, settings.k_min or 1)


def cpc_image(
    in_channels: int = 3,
    *,
    patch_size: int = 64,
    patch_stride: int = 32,
    widths: Sequence[int] = (64, 128, 256),
    blocks: int = 1,
    dim: int = 256,
    head: HeadSettings | None = None,
    **head_overrides: Any,
) -> CPCModel:
    """Image-row CPC on a patch grid (CPC; CPC v2, Hénaff et al. 2020).

    64-pixel patches on a 32-pixel stride (7x7 on 256-pixel crops), a ResNet-style patch
    encoder with group norm, a masked-convolution context over the rows above, up to 5
    rows ahead, all targets of the batch as candidates (CPC v2's full softmax).
    ``k_min`` defaults to 2 when patches overlap (row ``i + 1`` shares pixels with row
    ``i``) and 1 otherwise. Context, predictor and loss: :data:`IMAGE_HEAD`, or ``head`` /
    keyword overrides.
    """
    settings = head_settings(IMAGE_HEAD, head, **head_overrides)
    k_min = settings.k_min
    if k_min is None:
        k_min = 2 if patch_stride < patch_size else 1
    encoder = PatchGridEncoder(in_channels, patch_size, patch_stride, widths, blocks, dim)
    return assemble(encoder, settings, k_min)


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
