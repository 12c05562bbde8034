"""Baseline features that CPC features are compared against in the probes.

Speech: MFCCs and log-mel filterbanks on 10 ms frames. Both use ``center=False`` and an
FFT size equal to the window, so frame ``j`` covers exactly the samples
``[j * hop, j * hop + win)`` and a signal of ``t`` samples gives
``floor((t - win) / hop) + 1`` frames (:func:`num_frames`). With the defaults at 16 kHz
(hop 160, window 400: 10 ms steps, 25 ms windows, as in Kaldi-style alignments) frame
``j`` starts at ``j * 10`` ms, like the ``j``-th 10 ms phone label and like the CPC
encoder's ``j``-th step (160x downsampling), so all three line up by index; pass the
remaining few frames of slack to :func:`cpc.eval.probes.frames_from_sequences`.

Images: raw pixels, optionally average-pooled to a small size. Signals (pen, IMU):
per-channel summary statistics.

The remaining baseline, a randomly initialised model, is the same architecture built
with the same builder and no training; its features go through the same probes, which
separates what the architecture gives for free from what pretraining adds.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
import torchaudio
from einops import rearrange
from torch import Tensor

from cpc.models.encoders import spectral_transform


def _resolve(sample_rate: int, hop: int | None, win: int | None) -> tuple[int, int]:
    hop = round(0.010 * sample_rate) if hop is None else hop
    win = round(0.025 * sample_rate) if win is None else win
    if hop < 1 or win < 2:
        raise ValueError(f"hop and win must be positive sample counts, got {hop}, {win}")
    return hop, win


def num_frames(num_samples: int | Tensor, hop: int = 160, win: int = 400) -> int | Tensor:
    """Count the ``center=False`` frames of a signal: ``max(0, floor((t - win) / hop) + 1)``.

    Args:
        num_samples: Signal length(s) in samples.
        hop: Frame step in samples.
        win: Frame length in samples.

    Returns:
        Frame count(s), zero for signals shorter than one window.

    Shape:
        - num_samples: scalar or ``(b,)``; output: the same.

    """
    if isinstance(num_samples, Tensor):
        return torch.div(num_samples - win, hop, rounding_mode="floor").add(1).clamp_min(0)
    return max(0, (num_samples - win) // hop + 1)


def _as_wave(wave: Tensor | np.ndarray) -> Tensor:
    x = torch.as_tensor(wave).to(torch.float32)
    if x.ndim not in (1, 2):
        raise ValueError(f"wave must be (t,) or (b, t), got {tuple(x.shape)}")
    return x


def _with_deltas(feats: Tensor, deltas: bool) -> Tensor:
    """Append first and second time derivatives (5-frame regression, as HTK/Kaldi)."""
    if not deltas:
        return feats
    d1 = torchaudio.functional.compute_deltas(feats, win_length=5)  # (..., f, s)
    d2 = torchaudio.functional.compute_deltas(d1, win_length=5)
    return torch.cat([feats, d1, d2], dim=-2)


def mfcc_features(
    wave: Tensor | np.ndarray,
    sample_rate: int = 16000,
    *,
    n_mfcc: int = 13,
    deltas: bool = False,
    hop: int | None = None,
    win: int | None = None,
    n_mels: int = 40,
) -> Tensor:
    """MFCCs (with optional deltas) on ``center=False`` frames.

    Mel energies are log-compressed per frame (``log(mel + 1e-6)``), so a frame's
    coefficients never depend on other frames or other items of the batch. Deltas use
    replicated edges, keeping the frame count.

    Args:
        wave: Waveform(s) at ``sample_rate``.
        sample_rate: Sampling rate in Hz.
        n_mfcc: Cepstral coefficients per frame.
        deltas: Append deltas and delta-deltas (``3 * n_mfcc`` features).
        hop: Frame step in samples; None means 10 ms (160 at 16 kHz).
        win: Window and FFT length in samples; None means 25 ms (400 at 16 kHz).
        n_mels: Mel bands before the DCT.

    Returns:
        Features with time first, frame ``j`` covering ``[j * hop, j * hop + win)``.

    Shape:
        - wave: ``(t,)`` or ``(b, t)``
        - output: ``(s, f)`` or ``(b, s, f)`` with ``s = floor((t - win) / hop) + 1``

    """
    x = _as_wave(wave)
    hop, win = _resolve(sample_rate, hop, win)
    if x.shape[-1] < win:
        raise ValueError(f"signal of {x.shape[-1]} samples is shorter than a window ({win})")
    transform = spectral_transform(
        sample_rate, "mfcc", win=win, hop=hop, n_mels=n_mels, n_mfcc=n_mfcc, log_mels=True
    )
    feats = _with_deltas(transform(x), deltas)  # (..., f, s)
    return rearrange(feats, "... f s -> ... s f").contiguous()


def logmel_features(
    wave: Tensor | np.ndarray,
    sample_rate: int = 16000,
    *,
    n_mels: int = 40,
    deltas: bool = False,
    hop: int | None = None,
    win: int | None = None,
) -> Tensor:
    """Log mel filterbank energies (``log(power + 1e-6)``) on ``center=False`` frames.

    Args:
        wave: Waveform(s) at ``sample_rate``.
        sample_rate: Sampling rate in Hz.
        n_mels: Mel bands per frame.
        deltas: Append deltas and delta-deltas (``3 * n_mels`` features).
        hop: Frame step in samples; None means 10 ms (160 at 16 kHz).
        win: Window and FFT length in samples; None means 25 ms (400 at 16 kHz).

    Returns:
        Features with time first, frame ``j`` covering ``[j * hop, j * hop + win)``.

    Shape:
        - wave: ``(t,)`` or ``(b, t)``
        - output: ``(s, f)`` or ``(b, s, f)`` with ``s = floor((t - win) / hop) + 1``

    """
    x = _as_wave(wave)
    hop, win = _resolve(sample_rate, hop, win)
    if x.shape[-1] < win:
        raise ValueError(f"signal of {x.shape[-1]} samples is shorter than a window ({win})")
    transform = spectral_transform(sample_rate, "logmel", win=win, hop=hop, n_mels=n_mels)
    feats = _with_deltas(torch.log(transform(x) + 1e-6), deltas)  # (..., f, s)
    return rearrange(feats, "... f s -> ... s f").contiguous()


def raw_pixel_features(images: Tensor | np.ndarray, *, size: int | None = None) -> Tensor:
    """Flattened pixels, optionally average-pooled to ``size x size`` first.

    Pooling keeps a linear probe on large images tractable (a 256x256 RGB image has
    196608 pixels); it is a fair baseline because it is itself a linear map of pixels.

    Args:
        images: Image batch (any numeric dtype; cast to float32, not rescaled).
        size: Side of the pooled image, or None to keep full resolution.

    Returns:
        One row per image.

    Shape:
        - images: ``(n, c, h, w)``
        - output: ``(n, c * h * w)``, or ``(n, c * size * size)`` when pooled

    """
    x = torch.as_tensor(images).to(torch.float32)
    if x.ndim != 4:
        raise ValueError(f"images must be (n, c, h, w), got {tuple(x.shape)}")
    if size is not None:
        x = F.adaptive_avg_pool2d(x, size)
    return rearrange(x, "n c h w -> n (c h w)")


SIGNAL_STATISTICS = ("mean", "std", "min", "max", "mean_abs_diff")


def signal_statistics(
    x: Tensor | np.ndarray,
    length: int | Tensor | None = None,
    *,
    sample_rate: float | None = None,
) -> Tensor:
    """Per-channel summary statistics of a signal plus its duration.

    For every channel: mean, standard deviation, minimum, maximum and mean absolute
    first difference (a velocity proxy), in the order of ``SIGNAL_STATISTICS`` with the
    statistic varying slowest; then the duration, in seconds when ``sample_rate`` is
    given, else in samples. Only the first ``length`` samples are used.

    Args:
        x: One signal ``(t, c)`` or a padded batch ``(b, t, c)``.
        length: Valid samples (int for one signal, ``(b,)`` for a batch); None means all.
        sample_rate: Samples per second, to express the duration in seconds.

    Returns:
        ``5 * c + 1`` features per signal.

    Shape:
        - x: ``(t, c)`` or ``(b, t, c)``
        - output: ``(5 * c + 1,)`` or ``(b, 5 * c + 1)``

    """
    sig = torch.as_tensor(x).to(torch.float64)
    single = sig.ndim == 2
    if single:
        sig = sig.unsqueeze(0)  # (1, t, c)
    if sig.ndim != 3:
        raise ValueError(f"x must be (t, c) or (b, t, c), got {tuple(sig.shape)}")
    b, t, _ = sig.shape
    lens = torch.as_tensor(t if length is None else length).reshape(-1).expand(b).long()
    if (lens < 1).any() or (lens > t).any():
        raise ValueError(f"length must lie in [1, {t}], got {lens.tolist()}")
    valid = (torch.arange(t) < lens[:, None])[..., None]  # (b, t, 1)
    n = lens[:, None].to(sig.dtype)  # (b, 1)
    mean = (sig * valid).sum(1) / n  # (b, c)
    std = (((sig - mean[:, None]) ** 2 * valid).sum(1) / n).sqrt()
    lo = sig.masked_fill(~valid, float("inf")).amin(1)
    hi = sig.masked_fill(~valid, float("-inf")).amax(1)
    step_valid = valid[:, 1:] & valid[:, :-1]  # (b, t - 1, 1)
    diffs = (sig.diff(dim=1).abs() * step_valid).sum(1) / (n - 1).clamp_min(1)
    duration = n / sample_rate if sample_rate else n
    out = torch.cat([mean, std, lo, hi, diffs, duration], dim=1).to(torch.float32)
    return out[0] if single else out
