"""Encoders: raw input -> latents ``z`` of shape ``(b, s, p, d)`` plus valid lengths.

Every encoder exposes ``out_dim`` (``d``) and ``downsampling`` (input samples, or pixels
for grids, per step along ``s``), and ``output_lengths(lengths)`` carries valid lengths
from the input to the latent steps with the convolution length formula. Convolutions
are unpadded, so a valid latent only ever sees real input: padding at the end of a
sequence cannot leak into any valid latent.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Literal

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

Norm = Literal["layer", "layer_unbiased", "batch", "none"]
NORMS: tuple[str, ...] = ("layer", "layer_unbiased", "batch", "none")


class ChannelNorm(nn.Module):
    """Layer norm over channels at every step (CPC_audio's channel-wise norm).

    The encoder runs channels-last, so this is a layer norm over the last dimension:
    one fused kernel, with no transposes around it.

    Shape:
        x: (b, s, d) -> (b, s, d)
    """

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=eps)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(x)


@dataclass(frozen=True)
class StreamStage:
    """One strided stage of a 1-D encoder, for exact streaming (:mod:`cpc.features.streaming`).

    ``kernel``, ``stride`` and ``padding`` count the stage's input steps; ``forward``
    runs the stage on unpadded input, ``(b, (n - 1) * stride + kernel, c)`` ->
    ``(b, n, d)``, and must treat every output step on its own (per-step norms only).
    """

    kernel: int
    stride: int
    padding: int
    forward: Callable[[Tensor], Tensor]


class UnbiasedChannelNorm(nn.Module):
    """CPC_audio's channel norm: per step over channels with the *unbiased* variance.

    ``(x - mean) / sqrt(var + eps) * weight + bias`` where ``var`` divides by ``d - 1``
    (``torch.var``'s default), unlike :class:`ChannelNorm` (``nn.LayerNorm``, which
    divides by ``d``). CPC_audio stores the affine as ``(1, d, 1)``; here it is ``(d,)``
    for channels-last activations (the importer reshapes).

    Shape:
        x: (b, s, d) -> (b, s, d)
    """

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x: Tensor) -> Tensor:
        mean = x.mean(-1, keepdim=True)
        var = x.var(-1, keepdim=True)  # unbiased: divides by d - 1
        return (x - mean) * torch.rsqrt(var + self.eps) * self.weight + self.bias


class ChannelsLastBatchNorm(nn.BatchNorm1d):
    """The paper's batch norm on channels-last activations.

    Statistics are per channel over every step of every example, exactly as
    ``nn.BatchNorm1d`` on ``(b, d, s)``; the parameters and buffers have the same names.

    Shape:
        x: (b, s, d) -> (b, s, d)
    """

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.reshape(-1, x.shape[-1])).view_as(x)


def norm_1d(kind: str, dim: int) -> nn.Module:
    """A normalisation for channels-last ``(b, s, d)`` activations."""
    if kind == "layer":
        return ChannelNorm(dim)
    if kind == "layer_unbiased":
        return UnbiasedChannelNorm(dim)
    if kind == "batch":
        return ChannelsLastBatchNorm(dim)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"norm must be one of {NORMS}, got {kind!r}")


def _tap_products(frames: Tensor, wt: Tensor, start: Tensor, steps: int, batched: bool) -> Tensor:
    """``y[:, j] = start + sum_r frames[:, j + r] @ W_r``, the forward of :class:`_FramedConv`.

    ``batched``: one batched product per tap (GPUs); otherwise one 2-D product per
    example and tap (CPUs: oneDNN's bf16 batched product copied the expanded weight and
    the overlapping frames first: layer 2's bf16 forward products took 123 ms of CPU
    time, now 87; 2-D products read both in place, and float32 runs as fast as with the
    batched product). Both are exact on every device, so both are tested on the CPU.

    Shape:
        frames: (b, f, stride c); wt: (taps, d, stride c), W_r transposed; start: (d,)
        -> (b, steps, d)
    """
    b, taps, d = frames.shape[0], wt.shape[0], wt.shape[1]
    # key: frames j + r of every example x W_r, summed over taps r
    # (out= rather than in-place methods: torch's FLOP counter sees them)
    if batched:
        y = torch.baddbmm(start.expand(b, steps, d), frames[:, :steps], wt[0].mT.expand(b, -1, -1))
        for r in range(1, taps):
            torch.baddbmm(y, frames[:, r : r + steps], wt[r].mT.expand(b, -1, -1), out=y)
        return y
    y = frames.new_empty(b, steps, d)
    for i in range(b):
        torch.addmm(start, frames[i, :steps], wt[0].T, out=y[i])
        for r in range(1, taps):
            torch.addmm(y[i], frames[i, r : r + steps], wt[r].T, out=y[i])
    return y


class _FramedConv(torch.autograd.Function):
    """A strided convolution on channels-last input as a few large matrix products.

    The input ``(b, t, c)`` is read as frames of ``stride`` samples, a free view
    ``(b, f, stride * c)``. A kernel of ``taps * stride`` samples (zero-padded up to a
    multiple of the stride) covers ``taps`` consecutive frames, so output ``j`` is
    ``sum_r frame[j + r] @ W_r`` with ``W_r`` the ``(stride * c, d)`` block of tap ``r``:
    one batched product per tap, accumulated in place. Backward is two products over
    all taps at once. No input is copied or unfolded; the result equals ``F.conv1d``.
    """

    @staticmethod
    def forward(
        ctx: torch.autograd.function.FunctionCtx,
        x: Tensor,
        weight: Tensor,
        bias: Tensor | None,
        stride: int,
    ) -> Tensor:
        b, t, c = x.shape
        d, _, k = weight.shape
        steps = (t - k) // stride + 1
        taps = -(-k // stride)
        f = steps + taps - 1  # frames read; f * stride <= t unless the kernel was padded
        x = x.contiguous()
        if f * stride > t:
            x = F.pad(x, (0, 0, 0, f * stride - t))
        frames = x.as_strided((b, f, stride * c), (x.stride(0), stride * c, 1))
        w = F.pad(weight, (0, taps * stride - k))
        # W_r transposed, (d, stride c) per tap: a d-major copy reads the weight nearly in
        # order (the (stride c, d) layout was a strided gather 5-20x slower), and the
        # products take it transposed at no cost.
        wt = rearrange(w, "d c (r j) -> r d (j c)", j=stride).contiguous()
        start = torch.zeros(d, dtype=x.dtype, device=x.device) if bias is None else bias
        y = _tap_products(frames, wt, start, steps, x.device.type != "cpu")
        ctx.save_for_backward(x, wt)
        ctx.geometry = (t, k, stride, steps, taps, f)  # type: ignore[attr-defined]
        return y

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, dy: Tensor) -> tuple[Tensor | None, ...]:
        x, wt = ctx.saved_tensors  # type: ignore[attr-defined]
        t, k, stride, steps, taps, f = ctx.geometry  # type: ignore[attr-defined]
        wt = wt.view(-1, wt.shape[2])  # all taps stacked, a free view: (taps d, stride c)
        b, _, c = x.shape
        d = dy.shape[2]
        dz = dy.new_zeros(b, f, taps, d)  # the gradient of every frame's product, per tap
        for r in range(taps):
            dz[:, r : r + steps, r] = dy
        dz = dz.view(b, f, taps * d)
        whole = x.shape[1] == f * stride  # the frames of the whole batch form one matrix
        frame_view = (f, stride * c)
        dx = dw = db = None
        if ctx.needs_input_grad[0]:  # type: ignore[attr-defined]
            if whole:
                dx = (dz.view(b * f, taps * d) @ wt).view(b, f * stride, c)
            else:
                dx = dy.new_zeros(b, x.shape[1], c)
                for i in range(b):  # the frames of dx[i] are contiguous: written in place
                    torch.mm(dz[i], wt, out=dx[i, : f * stride].view(frame_view))
            dx = dx[:, :t]
        if ctx.needs_input_grad[1]:  # type: ignore[attr-defined]
            # computed transposed, (taps d, stride c), whose d-major reordering is cheap
            if whole:
                dw = dz.view(b * f, taps * d).T @ x.view(b * f, stride * c)
            else:
                dw = wt.new_zeros(wt.shape)
                for i in range(b):
                    torch.addmm(dw, dz[i].T, x[i, : f * stride].view(frame_view), out=dw)
            dw = rearrange(dw, "(r d) (j c) -> d c (r j)", j=stride, d=d)[:, :, :k]
        if ctx.needs_input_grad[2]:  # type: ignore[attr-defined]
            db = dy.sum((0, 1))
        return dx, dw, db, None


class _WindowProduct(torch.autograd.Function):
    """A strided convolution as one product of its unfolded windows: few inputs per step.

    ``y[b, j] = x[b, j * stride : j * stride + k].flatten() @ W^T + bias``: the windows
    are laid out once as a ``(rows, c k)`` matrix. The point is the weight's gradient:
    ``F.linear``'s backward computes it as ``dy^T @ windows``, a product whose result has
    ``c k`` columns (10 for a waveform), and oneDNN/MKL ran it 2 to 4.7 times slower than
    the same product transposed, ``(windows^T @ dy)^T``, which this backward computes
    (AMD EPYC, 2 threads, the first layers of the paper and small presets; interleaved
    in one process, ``benchmarks/NOTES.md``). The input's gradient adds each window's
    part back at its ``k`` taps, one strided add per tap.

    Shape:
        x: (b, t, c); weight: (d, c, k); bias: (d,) or None -> (b, (t - k) // stride + 1, d)
    """

    @staticmethod
    def forward(
        ctx: torch.autograd.function.FunctionCtx,
        x: Tensor,
        weight: Tensor,
        bias: Tensor | None,
        stride: int,
    ) -> Tensor:
        d, c, k = weight.shape
        windows = rearrange(x.unfold(1, k, stride), "b s c k -> b s (c k)")
        b, steps = windows.shape[:2]
        rows = windows.reshape(b * steps, c * k)  # a copy: the windows overlap
        w2 = weight.reshape(d, c * k)
        y = rows.new_empty(b, steps, d)  # written through a view: y itself is no view
        if bias is None:
            torch.mm(rows, w2.T, out=y.view(-1, d))
        else:
            torch.addmm(bias, rows, w2.T, out=y.view(-1, d))
        ctx.save_for_backward(rows, w2)
        ctx.geometry = (x.shape, stride, k)  # type: ignore[attr-defined]
        return y

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, dy: Tensor) -> tuple[Tensor | None, ...]:
        rows, w2 = ctx.saved_tensors  # type: ignore[attr-defined]
        shape, stride, k = ctx.geometry  # type: ignore[attr-defined]
        b, t, c = shape
        d = w2.shape[0]
        dy2 = dy.reshape(-1, d)
        dx = dw = db = None
        if ctx.needs_input_grad[0]:  # type: ignore[attr-defined]
            dwin = (dy2 @ w2).view(b, -1, c, k)  # (b, s, c, k): each window's gradient
            steps = dwin.shape[1]
            dx = dy.new_zeros(b, t, c)
            for j in range(k):  # tap j of window i reads sample i * stride + j
                dx[:, j : j + (steps - 1) * stride + 1 : stride] += dwin[:, :, :, j]
        if ctx.needs_input_grad[1]:  # type: ignore[attr-defined]
            dw = (rows.T @ dy2).T.reshape(d, c, k)  # key: (c k, rows) x (rows, d)
        if ctx.needs_input_grad[2]:  # type: ignore[attr-defined]
            db = dy2.sum(0)
        return dx, dw, db, None


class StridedConv1d(nn.Conv1d):
    """``nn.Conv1d`` (unpadded, strided) on channels-last input, computed as matrix products.

    Same parameters as ``nn.Conv1d(in_channels, out_channels, kernel, stride)`` and the
    same result, but the input and output are ``(b, t, c)`` and ``(b, s, d)``, so a norm
    over channels needs no transpose. Two ways to compute it, both exact:

    - ``in_channels * kernel`` small (a waveform's first layer): gather the
      ``(b, s, c * kernel)`` windows and apply one linear map;
    - otherwise: :class:`_FramedConv`, which reads the input in place.

    Both run at the machine's matrix-product rate on CPU; ``F.conv1d`` on ``(b, c, t)``
    plus the transposes a channel norm needs was 20-25% slower for the paper's encoder
    (``benchmarks/``).

    ``padding`` zeros are added on both sides of the time axis first (CPC_audio's
    padded convolutions; 0, unpadded, is this package's default).

    Shape:
        x: (b, t, c) -> (b, (t + 2 * padding - kernel) // stride + 1, out_channels)
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: int,
        stride: int,
        padding: int = 0,
        bias: bool = True,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel, stride, padding, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        pad = int(self.padding[0])  # (an int here; torch types it str | int)
        if pad:
            x = F.pad(x, (0, 0, pad, pad))  # (b, t, c): zeros before and after in time
        return self.valid(x)

    def valid(self, x: Tensor) -> Tensor:
        """The convolution without its padding: (b, t, c) -> (b, (t - kernel) // stride + 1, d)."""
        c, k, stride = self.in_channels, self.kernel_size[0], self.stride[0]
        if torch.onnx.is_in_onnx_export():  # one standard Conv node (cpc.checkpoints.export)
            y = F.conv1d(rearrange(x, "b t c -> b c t"), self.weight, self.bias, stride)
            return rearrange(y, "b d s -> b s d")
        taps = -(-k // stride)
        d = self.out_channels
        rows = x.shape[0] * max(0, (x.shape[1] - k) // stride + 1)
        if rows * c * k <= rows * (taps - 1) * d + c * k * d:
            # Unfolding copies c*k values per output step; the framed product writes
            # (taps - 1)*d extra values per step and lays the weight (c*k*d values) out
            # again: take the cheaper one. Few steps (a streaming piece of 10 ms) always
            # unfold: the weight layout alone took 30 ms of CPU per piece.
            product: type[torch.autograd.Function] = _WindowProduct
        else:
            product = _FramedConv
        weight, bias, device = self.weight, self.bias, x.device.type
        if torch.is_autocast_enabled(device):  # cast once here, as autocast does for convs
            dtype = torch.get_autocast_dtype(device)
            x, weight = x.to(dtype), weight.to(dtype)
            bias = None if bias is None else bias.to(dtype)
        with torch.autocast(device, enabled=False):
            return product.apply(x, weight, bias, stride)


def conv_output_lengths(
    lengths: Tensor,
    kernels: Sequence[int],
    strides: Sequence[int],
    padding: Sequence[int] | None = None,
) -> Tensor:
    """Valid output steps of a stack of convolutions (unpadded unless ``padding``).

    ``floor((n + 2 * padding - kernel) / stride) + 1`` per layer, floored at 0.
    """
    pads = padding if padding is not None else [0] * len(kernels)
    for kernel, stride, pad in zip(kernels, strides, pads, strict=True):
        lengths = torch.div(lengths + 2 * pad - kernel, stride, rounding_mode="floor") + 1
        lengths = lengths.clamp(min=0)
    return lengths


class ConvEncoder(nn.Module):
    """Strided 1-D convolutions over a (multichannel) stream.

    Defaults are the CPC paper's speech encoder (van den Oord et al. 2018): kernels
    10, 8, 4, 4, 4, strides 5, 4, 2, 2, 2, 512 channels, 160x downsampling (10 ms steps
    at 16 kHz). The paper used batch norm; CPC_audio's channel-wise layer norm is the
    default here because it does not mix padding or other examples into a latent.
    Unlike CPC_audio the convolutions are unpadded (see the module docstring), so a
    window of ``n`` samples gives ``(n - 465) // 160 + 1`` steps with the defaults.

    Args:
        in_channels: input channels (1 for a waveform; x, y, pressure, ... for pens).
        channels: width of every layer, ``d``.
        kernels, strides: one entry per layer.
        norm: ``"layer"`` (per step, over channels), ``"layer_unbiased"`` (the same
            with CPC_audio's unbiased variance, for imported models), ``"batch"`` (the
            paper's; its training statistics include padded steps and the other
            examples) or ``"none"``. Norms over time (group/instance norm) are not
            offered: they would let padding and future steps into every latent.
        padding: zeros added on both sides of every layer's input, one entry per layer
            (CPC_audio: 3, 2, 1, 1, 1, so ``n`` samples give about ``n / 160`` steps);
            None (the default) for unpadded convolutions. What padding costs: the first
            and last latents see zeros instead of signal (at every layer, not only the
            waveform), and in a right-padded batch the last valid latents of a shorter
            example see the batch's padding, so a padded batch no longer equals each
            example alone. Exact chunked and streamed extraction still holds, per file
            (:mod:`cpc.features.streaming` pads each layer at the start and end of the stream).
        conv_bias: Give the convolutions a bias. Default: not before a ``"layer"`` norm.
            A layer norm normalises each step's vector over channels but never removes
            a channel's constant over time, so a bias passes through it: with
            PyTorch's initialisation the first layer's bias (about +-0.3) outweighs the
            filtered waveform (about 0.1 at speech levels): at step 0 the small
            preset's latents were 97% constant over time (without the bias 73%; with
            batch norm, which subtracts every channel's mean, 27%). The norm's own
            shift still gives each channel an offset. Batch norm cancels a bias
            exactly, so it is kept there (old checkpoints load), and so it is for
            ``"layer_unbiased"`` (CPC_audio's models have it).

    Shape:
        x: (b, t) for ``in_channels == 1``, or (b, t, c).
        lengths: (b,) valid samples, or None.
        returns: z (b, s, 1, d) and lengths (b,) in steps (or None).

    """

    def __init__(
        self,
        in_channels: int = 1,
        channels: int = 512,
        kernels: Sequence[int] = (10, 8, 4, 4, 4),
        strides: Sequence[int] = (5, 4, 2, 2, 2),
        norm: Norm = "layer",
        padding: Sequence[int] | None = None,
        conv_bias: bool | None = None,
    ) -> None:
        super().__init__()
        if len(kernels) != len(strides) or not kernels:
            raise ValueError(
                f"kernels and strides need one entry per layer, got {kernels} and {strides}"
            )
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
        pads = tuple(padding) if padding is not None else (0,) * len(kernels)
        if len(pads) != len(kernels) or any(p < 0 for p in pads):
            raise ValueError(f"padding needs one entry >= 0 per layer, got {padding}")
        self.in_channels = in_channels
        self.kernels = tuple(kernels)
        self.strides = tuple(strides)
        self.padding = pads
        bias = norm != "layer" if conv_bias is None else conv_bias
        layers: list[nn.Module] = []
        width = in_channels
        for kernel, stride, pad in zip(self.kernels, self.strides, pads, strict=True):
            conv = StridedConv1d(width, channels, kernel, stride, pad, bias)
            layers += [conv, norm_1d(norm, channels)]
            layers.append(nn.ReLU(inplace=True))  # no norm's backward needs its output
            width = channels
        self.layers = nn.Sequential(*layers)
        self.out_dim = channels
        self.downsampling = math.prod(self.strides)  # plain ints: works on the meta device
        self.receptive_field = self._receptive_field()
        #: Input samples of zeros before sample 0 that latent 0 sees: latent ``j`` covers
        #: samples ``[j * downsampling - left_padding, ... + receptive_field)``.
        self.left_padding = self._left_padding()
        #: The shortest input that gives one latent (the receptive field when unpadded).
        self.min_samples = self._min_samples()

    def _receptive_field(self) -> int:
        field, jump = 1, 1
        for kernel, stride in zip(self.kernels, self.strides, strict=True):
            field += (kernel - 1) * jump
            jump *= stride
        return field

    def _left_padding(self) -> int:
        total, jump = 0, 1
        for pad, stride in zip(self.padding, self.strides, strict=True):
            total += pad * jump
            jump *= stride
        return total

    def _min_samples(self) -> int:
        steps = 1  # walk back from one output step to the input samples it needs
        layers = list(zip(self.kernels, self.strides, self.padding, strict=True))
        for kernel, stride, pad in reversed(layers):
            steps = max(1, (steps - 1) * stride + kernel - 2 * pad)
        return steps

    @property
    def padded(self) -> bool:
        """Whether any layer pads its input (CPC_audio's layout)."""
        return any(self.padding)

    def output_lengths(self, lengths: Tensor) -> Tensor:
        """Valid latent steps for ``lengths`` valid input samples."""
        return conv_output_lengths(lengths, self.kernels, self.strides, self.padding)

    def stream_stages(self) -> list[StreamStage]:
        """The layers as stages that :mod:`cpc.features.streaming` runs on a growing input."""
        return [
            StreamStage(kernel, stride, pad, partial(self._stage, i))
            for i, (kernel, stride, pad) in enumerate(
                zip(self.kernels, self.strides, self.padding, strict=True)
            )
        ]

    def _stage(self, i: int, x: Tensor) -> Tensor:
        conv: StridedConv1d = self.layers[3 * i]  # type: ignore[assignment]
        norm, relu = self.layers[3 * i + 1], self.layers[3 * i + 2]
        return relu(norm(conv.valid(x)))

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        if x.dim() == 2 and self.in_channels == 1:
            x = x[:, :, None]
        if x.dim() != 3 or x.shape[2] != self.in_channels:
            raise ValueError(
                f"expected input (b, t, {self.in_channels})"
                + (" or (b, t)" if self.in_channels == 1 else "")
                + f", got {tuple(x.shape)}"
            )
        if x.shape[1] < self.min_samples:
            raise ValueError(
                f"input of {x.shape[1]} samples is shorter than the encoder's receptive "
                f"field of {self.min_samples} samples"
            )
        h = self.layers(x)  # channels-last throughout: (b, t, c) -> (b, s, d)
        z = rearrange(h, "b s d -> b s 1 d")
        return z, None if lengths is None else self.output_lengths(lengths)


def spectral_transform(
    sample_rate: int,
    kind: str,
    *,
    win: int,
    hop: int,
    n_mels: int = 40,
    n_mfcc: int = 13,
    log_mels: bool = False,
) -> nn.Module:
    """The torchaudio mel power spectrogram or MFCC on ``center=False`` frames.

    Frame ``j`` covers samples ``[j * hop, j * hop + win)`` and never looks past the
    input. Shared by :class:`SpectralEncoder` and the MFCC / log-mel baselines
    (:mod:`cpc.eval.baselines`), so both see the same frames.

    Shape:
        input ``(..., t)`` -> ``(..., f, s)`` with ``s = (t - win) // hop + 1``.
    """
    # torchaudio is only needed by the spectral front-ends: imported here, so the package
    # (and a GPU machine's check, where torchaudio may be absent) loads without it
    import torchaudio

    mel = {"n_fft": win, "win_length": win, "hop_length": hop, "center": False, "n_mels": n_mels}
    if kind == "logmel":
        return torchaudio.transforms.MelSpectrogram(sample_rate, **mel)
    if kind == "mfcc":
        return torchaudio.transforms.MFCC(
            sample_rate, n_mfcc=n_mfcc, log_mels=log_mels, melkwargs=mel
        )
    raise ValueError(f"kind must be 'logmel' or 'mfcc', got {kind!r}")


class SpectralEncoder(nn.Module):
    """Log-mel or MFCC front-end (torchaudio) followed by 1-D convolutions.

    An alternative to the raw-waveform encoder: frames of ``win`` samples every ``hop``
    samples (25 ms / 10 ms at 16 kHz by default), computed without centring so frame
    ``j`` covers samples ``[j * hop, j * hop + win)`` and never looks past the input.

    Shape:
        x: (b, t) waveform; lengths: (b,) valid samples or None.
        returns: z (b, s, 1, d), lengths (b,) in steps (or None).
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        kind: Literal["logmel", "mfcc"] = "logmel",
        n_mels: int = 40,
        n_mfcc: int = 13,
        win: int = 400,
        hop: int = 160,
        channels: int = 256,
        kernels: Sequence[int] = (3, 3),
        strides: Sequence[int] = (1, 1),
        norm: Norm = "layer",
    ) -> None:
        super().__init__()
        # The filter banks need real arithmetic: when the model is built on the meta
        # device (size checks before anything is allocated), they are computed on the CPU.
        on_meta = torch.get_default_device().type == "meta"
        with torch.device("cpu") if on_meta else contextlib.nullcontext():
            self.frontend = spectral_transform(
                sample_rate, kind, win=win, hop=hop, n_mels=n_mels, n_mfcc=n_mfcc
            )
        features = n_mels if kind == "logmel" else n_mfcc
        self.kind = kind
        self.win, self.hop = win, hop
        self.convs = ConvEncoder(features, channels, kernels, strides, norm)
        self.out_dim = channels
        self.downsampling = hop * self.convs.downsampling
        self.receptive_field = win + (self.convs.receptive_field - 1) * hop
        self.left_padding = 0

    def _frames(self, x: Tensor) -> Tensor:
        """Spectral frames of a waveform: (b, t) or (b, t, 1) -> (b, frames, features)."""
        spec = self.frontend(x if x.dim() == 2 else x[..., 0])  # (b, f, frames)
        if self.kind == "logmel":
            spec = torch.log(spec + 1e-6)
        return rearrange(spec, "b f s -> b s f")

    def stream_stages(self) -> list[StreamStage]:
        """The framing and the convolutions as stages for :mod:`cpc.features.streaming`."""
        if self.kind == "mfcc":
            raise ValueError(
                "the MFCC front-end clips each input relative to its own maximum (top_db), "
                "so it cannot be computed piece by piece exactly"
            )
        return [StreamStage(self.win, self.hop, 0, self._frames), *self.convs.stream_stages()]

    def output_lengths(self, lengths: Tensor) -> Tensor:
        """Valid latent steps for ``lengths`` valid input samples."""
        frames = conv_output_lengths(lengths, [self.win], [self.hop])
        return self.convs.output_lengths(frames)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        if x.dim() != 2:
            raise ValueError(f"expected a waveform (b, t), got {tuple(x.shape)}")
        frames = self._frames(x)
        frame_lengths = None
        if lengths is not None:
            frame_lengths = conv_output_lengths(lengths, [self.win], [self.hop])
        return self.convs(frames, frame_lengths)


class ResBlock(nn.Module):
    """Pre-activation residual block with group norm (no batch norm, as in CPC v2)."""

    def __init__(self, channels: int, groups: int = 8) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.GroupNorm(groups, channels),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.GroupNorm(groups, channels),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class PatchGridEncoder(nn.Module):
    """Cut an image into a grid of (overlapping) patches and encode each one on its own.

    CPC and CPC v2 use 64-pixel patches on a 32-pixel stride (a 7x7 grid on 256-pixel
    crops) and a ResNet without batch norm; this is a smaller ResNet-style network with
    group norm whose widths double at every stage (stride-2 convolutions between stages),
    ending in global average pooling. Patches are folded into the batch, so no operation
    mixes two patches: a patch latent has zero gradient from pixels outside it.

    Args:
        in_channels: image channels.
        patch_size, patch_stride: in pixels; ``stride < size`` overlaps patches.
        widths: channels of each stage.
        blocks: residual blocks per stage.
        out_dim: latent size ``d``.

    Shape:
        x: (b, c, h, w) -> z (b, rows, cols, d) with
        ``rows = (h - patch_size) // patch_stride + 1`` (likewise cols), lengths None.

    """

    def __init__(
        self,
        in_channels: int = 3,
        patch_size: int = 64,
        patch_stride: int = 32,
        widths: Sequence[int] = (64, 128, 256),
        blocks: int = 1,
        out_dim: int = 256,
    ) -> None:
        super().__init__()
        if not 0 < patch_stride <= patch_size:
            raise ValueError(
                f"need 0 < patch_stride <= patch_size, got {patch_stride} and {patch_size}"
            )
        self.in_channels = in_channels
        self.patch_size = patch_size
        self.patch_stride = patch_stride
        layers: list[nn.Module] = [nn.Conv2d(in_channels, widths[0], 3, padding=1)]
        for i, width in enumerate(widths):
            if i > 0:
                layers.append(nn.Conv2d(widths[i - 1], width, 3, stride=2, padding=1))
            layers += [ResBlock(width, groups=min(8, width)) for _ in range(blocks)]
        # No norm on the trunk itself (only inside residual branches): a norm over a
        # patch's whole feature map would erase its brightness and contrast.
        layers += [nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        layers.append(nn.Linear(widths[-1], out_dim))
        self.net = nn.Sequential(*layers)
        self.out_dim = out_dim
        self.downsampling = patch_stride
        self.receptive_field = patch_size  # pixel rows behind the first grid row
        self.left_padding = 0

    def grid_size(self, h: int, w: int) -> tuple[int, int]:
        """Rows and columns of the patch grid for an ``h x w`` image."""
        return (
            (h - self.patch_size) // self.patch_stride + 1,
            (w - self.patch_size) // self.patch_stride + 1,
        )

    def output_lengths(self, lengths: Tensor) -> Tensor:
        """Grid rows for ``lengths`` valid pixel rows."""
        return conv_output_lengths(lengths, [self.patch_size], [self.patch_stride])

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected images (b, {self.in_channels}, h, w), got {tuple(x.shape)}")
        rows, cols = self.grid_size(x.shape[2], x.shape[3])
        if rows < 1 or cols < 1:
            raise ValueError(
                f"image {x.shape[2]}x{x.shape[3]} is smaller than one {self.patch_size}-pixel patch"
            )
        size, stride = self.patch_size, self.patch_stride
        patches = x.unfold(2, size, stride).unfold(3, size, stride)  # (b, c, r, q, ph, pw)
        patches = rearrange(patches, "b c r q h w -> (b r q) c h w")
        z = self.net(patches)
        z = rearrange(z, "(b r q) d -> b r q d", r=rows, q=cols)
        return z, None if lengths is None else self.output_lengths(lengths)
