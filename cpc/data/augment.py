"""Time-domain augmentation of training windows (Kharitonov et al. 2021, WavAugment).

"Data Augmenting Contrastive Learning of Speech Representations in the Time Domain"
found that a combination of pitch modification, additive noise and reverberation
substantially improves CPC; band-reject filtering was among the ops studied. The paper
used sox's effects; here each op is built from torchaudio's functional ops and needs no
data. In the order they run:

- ``pitch``: shift by up to ``pitch_cents`` (default 300, three semitones) keeping the
  duration: a phase-vocoder time stretch by ``f`` then a resampling by ``1 / f``. The
  ratio ``f`` is rounded to a fraction ``p / q`` with ``q <= 20`` so the resampler works
  on small integers at any sample rate (torchaudio's resampler works on the
  ``gcd``-reduced rates, which for ratios such as 16951 / 16000 is slow and has
  misbehaved in this project);
- ``bandreject``: two band-reject biquads at a centre drawn log-uniformly in 100 Hz ..
  ``min(8 kHz, 0.4 * rate)``, of width 1/4 to 1 octave;
- ``reverb``: a synthetic room impulse response (a direct path plus exponentially
  decaying noise with RT60 in ``rt60`` seconds, direct-to-reverberant ratio in 0..10 dB),
  applied causally, the result rescaled to the window's RMS;
- ``noise``: Gaussian noise with a random spectral slope (white to brown,
  ``1 / f ** a`` with ``a`` in [0, 2]) at a signal-to-noise ratio drawn in ``snr_db``.

The ops run in that fixed order (source, then room, then microphone noise) whatever the
order of the list. All parameters and all noise come from one ``numpy`` generator, which
the training data set seeds with ``(seed, epoch, index)``, so an epoch's augmented
windows are a function of the run's position and a resumed run sees the same ones.

Shape:
    a window ``(t,)`` float32 -> ``(t,)``: the length never changes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import torch
import torchaudio.functional as AF
from torch import Tensor

#: The ops a chain may list (``data.wave_augment``).
AUGMENTATIONS: tuple[str, ...] = ("pitch", "bandreject", "noise", "reverb")
#: The order they run in: the source, then the room, then the microphone's noise.
_ORDER = ("pitch", "bandreject", "reverb", "noise")

#: Largest denominator of the pitch ratio handed to the resampler.
MAX_RATIO_DENOMINATOR = 20


def pitch_ratio(cents: float) -> Fraction:
    """``2 ** (cents / 1200)`` as a fraction with a denominator of at most 20."""
    return Fraction(2 ** (cents / 1200)).limit_denominator(MAX_RATIO_DENOMINATOR)


def pitch_shift(x: Tensor, sample_rate: int, cents: float) -> Tensor:
    """Shift the pitch by about ``cents`` (exactly :func:`pitch_ratio`), same length.

    Stretch time by ``f = p / q`` with a phase vocoder (frames of ~32 ms, hop of a
    quarter), then resample from ``p`` to ``q``: played at the original rate, every
    frequency is multiplied by ``f``. A window shorter than one frame is returned as is.

    Shape:
        x: (t,) -> (t,)
    """
    ratio = pitch_ratio(cents)
    t = x.shape[-1]
    n_fft = 1 << max(6, round(math.log2(0.032 * sample_rate)))
    if ratio == 1 or t < n_fft:
        return x
    hop = n_fft // 4
    window = torch.hann_window(n_fft, dtype=x.dtype, device=x.device)
    spec = torch.stft(x, n_fft, hop, window=window, return_complex=True)  # (f, frames)
    advance = torch.linspace(0, math.pi * hop, spec.shape[0], dtype=x.dtype, device=x.device)
    stretched = AF.phase_vocoder(spec, 1 / float(ratio), advance[:, None])
    longer = torch.istft(stretched, n_fft, hop, window=window, length=round(t * ratio))
    y = AF.resample(longer, ratio.numerator, ratio.denominator)
    return torch.nn.functional.pad(y, (0, max(0, t - y.shape[-1])))[:t]


def band_reject(x: Tensor, sample_rate: int, centre: float, q: float) -> Tensor:
    """Remove the band around ``centre`` Hz: two band-reject biquads of quality ``q``.

    One biquad is a notch (half the band's energy survives); two in cascade remove
    over 95% of the central half of the band (``centre / q`` Hz wide at -6 dB) and leave
    frequencies an octave away within a few percent.

    Shape:
        x: (t,) -> (t,)
    """
    # The band-reject biquad of the RBJ audio-EQ cookbook (torchaudio's
    # ``bandreject_biquad``, which clamps its output to [-1, 1]; this does not).
    w0 = 2 * math.pi * centre / sample_rate
    alpha = math.sin(w0) / (2 * q)
    b = torch.tensor([1.0, -2 * math.cos(w0), 1.0], dtype=x.dtype)
    a = torch.tensor([1 + alpha, -2 * math.cos(w0), 1 - alpha], dtype=x.dtype)
    for _ in range(2):
        x = AF.lfilter(x, a, b, clamp=False)
    return x


def add_noise(x: Tensor, snr_db: float, slope: float, generator: torch.Generator) -> Tensor:
    """Add Gaussian noise of power spectrum ``1 / f ** slope`` at ``snr_db``.

    The SNR is relative to the window's mean power; a silent window stays silent.

    Shape:
        x: (t,) -> (t,)
    """
    t = x.shape[-1]
    white = torch.randn(t, generator=generator, dtype=x.dtype)
    spectrum = torch.fft.rfft(white)
    freqs = torch.arange(spectrum.shape[-1], dtype=x.dtype).clamp_min(1.0)
    noise = torch.fft.irfft(spectrum * freqs ** (-slope / 2), n=t)
    noise = noise / noise.pow(2).mean().clamp_min(1e-20).sqrt()
    power = x.pow(2).mean()
    return x + noise * (power / 10 ** (snr_db / 10)).sqrt()


def room_response(
    sample_rate: int, rt60: float, drr_db: float, generator: torch.Generator
) -> Tensor:
    """A synthetic impulse response: 1 at lag 0, then noise decaying by 60 dB in ``rt60``.

    The tail's energy is ``10 ** (-drr_db / 10)`` times the direct path's.

    Shape:
        returns: (round(rt60 * sample_rate),)
    """
    n = max(2, round(rt60 * sample_rate))
    lags = torch.arange(n, dtype=torch.float32)
    tail = torch.randn(n, generator=generator) * torch.exp(-math.log(1000.0) * lags / n)
    tail[0] = 0.0
    tail = tail * (10 ** (-drr_db / 10) / tail.pow(2).sum()).sqrt()
    tail[0] = 1.0
    return tail


def reverberate(x: Tensor, response: Tensor) -> Tensor:
    """Causal convolution with ``response``, cut to the input's length, same RMS.

    Shape:
        x: (t,), response: (r,) -> (t,)
    """
    t = x.shape[-1]
    wet = AF.fftconvolve(x, response.to(x.dtype))[:t]
    return wet * (x.pow(2).mean() / wet.pow(2).mean().clamp_min(1e-20)).sqrt()


@dataclass(frozen=True)
class WaveAugment:
    """A chain of time-domain augmentations with parameters drawn per window.

    Args:
        ops: Any of :data:`AUGMENTATIONS` (applied in the module's fixed order).
        sample_rate: The windows' rate.
        pitch_cents: Largest pitch shift, up or down.
        snr_db: Range of the additive noise's SNR.
        rt60: Range of the reverberation time in seconds.

    """

    ops: tuple[str, ...]
    sample_rate: int
    pitch_cents: float = 300.0
    snr_db: tuple[float, float] = (5.0, 20.0)
    rt60: tuple[float, float] = (0.1, 0.5)

    def __post_init__(self) -> None:
        unknown = [op for op in self.ops if op not in AUGMENTATIONS]
        if unknown:
            raise ValueError(f"unknown augmentation(s) {unknown}; allowed: {list(AUGMENTATIONS)}")
        if len(set(self.ops)) != len(self.ops):
            raise ValueError(f"augmentations listed twice: {list(self.ops)}")

    @classmethod
    def of(cls, ops: Sequence[str], sample_rate: int) -> WaveAugment | None:
        """The chain of ``ops`` at ``sample_rate``, or None when ``ops`` is empty."""
        return cls(tuple(ops), sample_rate) if ops else None

    def __call__(self, x: Tensor, rng: np.random.Generator) -> Tensor:
        """Augment one window with parameters and noise drawn from ``rng``.

        Only enabled ops draw, in the fixed order, so the result is a function of the
        chain, the window and the generator's seed.

        Shape:
            x: (t,) -> (t,)
        """
        rate = self.sample_rate
        for op in _ORDER:
            if op not in self.ops:
                continue
            if op == "pitch":
                x = pitch_shift(x, rate, float(rng.uniform(-self.pitch_cents, self.pitch_cents)))
            elif op == "bandreject":
                top = min(8000.0, 0.4 * rate)
                centre = float(np.exp(rng.uniform(math.log(100.0), math.log(top))))
                octaves = float(rng.uniform(0.25, 1.0))
                x = band_reject(x, rate, centre, 1 / (2 ** (octaves / 2) - 2 ** (-octaves / 2)))
            else:
                generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
                if op == "noise":
                    x = add_noise(x, float(rng.uniform(*self.snr_db)), rng.uniform(0, 2), generator)
                else:
                    rt60 = float(rng.uniform(*self.rt60))
                    drr = float(rng.uniform(0.0, 10.0))
                    x = reverberate(x, room_response(rate, rt60, drr, generator))
        return x
