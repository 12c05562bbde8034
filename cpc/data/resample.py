"""Resampling audio with soxr: bounded time and memory for every pair of rates.

A windowed-sinc resampler built for the exact ratio (torchaudio's) needs a filter bank
of ``target / gcd`` phases: 16 kHz from 44100 Hz has a gcd of 100, but from 44101 Hz
the gcd is 1 and the bank has 16000 phases (several 5.6 GB allocations for one second
of audio). soxr (the SoX resampler library) uses a polyphase filter whose size depends
on the quality asked for, not on the gcd, so cost is linear in the input for any rate.

Three uses, one filter (soxr "HQ", 20-bit quality; its output length is
``round(frames * target / source)``, see :func:`resampled_length`):

- :func:`resample`: a whole array at once;
- :class:`StreamResampler`: block after block, carrying the filter state; the
  concatenated output equals :func:`resample` of the whole input exactly (tested);
- :func:`source_span` + :func:`resample`: a random-access stretch (a training window)
  that equals the same slice of the whole file resampled within float rounding: the
  stretch is read from a source sample where both rates' grids meet (at most one second
  before the window), with :data:`MARGIN` target samples of filter context on each side.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import gcd

import numpy as np
import soxr

QUALITY = "HQ"
#: Target-rate samples of filter context read around a random-access stretch. Measured
#: with soxr HQ: from 256 up, the stretch equals the whole-file result to float32
#: rounding (3e-7) for 8, 11.127, 44.1, 44.101 and 48 kHz to 16 kHz; 512 for headroom.
MARGIN = 512


def resampled_length(frames: int, source_rate: int, target_rate: int) -> int:
    """Samples at ``target_rate`` that soxr makes of ``frames`` at ``source_rate``.

    ``round(frames * target_rate / source_rate)``, halves rounded up, in exact integer
    arithmetic (no float error for hour-long files).
    """
    if source_rate == target_rate:
        return frames
    return (2 * frames * target_rate + source_rate) // (2 * source_rate)


def resample(x: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    """Resample a whole array along its first axis.

    Shape:
        x: ``(t,)`` or ``(t, c)`` float32; returns ``(resampled_length(t), ...)``.

    """
    if source_rate == target_rate:
        return x
    if x.shape[0] == 0:
        return np.zeros((0, *x.shape[1:]), dtype=np.float32)
    y = soxr.resample(np.ascontiguousarray(x, dtype=np.float32), source_rate, target_rate, QUALITY)
    return np.asarray(y, dtype=np.float32)


class StreamResampler:
    """Resample a long signal block by block with the filter state carried over.

    ``push(block)`` returns the output ready so far and ``finish()`` the rest; their
    concatenation equals :func:`resample` of the whole signal. Memory is that of one
    block plus the filter, whatever the signal's length.

    Shape:
        block: ``(t,)`` float32 (mono).

    """

    def __init__(self, source_rate: int, target_rate: int) -> None:
        self.identity = source_rate == target_rate
        self._stream = (
            None
            if self.identity
            else soxr.ResampleStream(source_rate, target_rate, 1, dtype="float32", quality=QUALITY)
        )

    def push(self, block: np.ndarray) -> np.ndarray:
        """Output for one more block of input (may be shorter or longer than its share)."""
        if self._stream is None:
            return block
        return self._stream.resample_chunk(np.ascontiguousarray(block, dtype=np.float32))

    def finish(self) -> np.ndarray:
        """The filter's remaining output at the end of the signal."""
        if self._stream is None:
            return np.zeros(0, dtype=np.float32)
        return self._stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True)


@dataclass(frozen=True)
class Span:
    """Where to read a random-access stretch and where the wanted part starts.

    Attributes:
        start: First source frame to read.
        stop: Source frame to stop before.
        skip: Target samples to drop from the front of the resampled read.
        count: Target samples wanted after ``skip`` (fewer when the file ends first).

    """

    start: int
    stop: int
    skip: int
    count: int


def source_span(
    frames: int, source_rate: int, target_rate: int, offset: int, count: int | None
) -> Span:
    """The source frames to read for target samples ``[offset, offset + count)``.

    The read starts where the two rates' sample grids coincide (a multiple of
    ``source_rate / gcd`` frames, at most one second of audio) so the resampled read
    lies on the whole file's output grid, and includes :data:`MARGIN` target samples of
    context on each side so the filter's edges fall outside the wanted part.

    Args:
        frames: Source frames in the file.
        source_rate: The file's rate.
        target_rate: The rate wanted.
        offset: First target sample wanted.
        count: Target samples wanted; None: to the end.

    """
    total = resampled_length(frames, source_rate, target_rate)
    stop_t = total if count is None else min(total, offset + count)
    want = max(0, stop_t - offset)
    if source_rate == target_rate:
        return Span(offset, offset + want, 0, want)
    common = gcd(source_rate, target_rate)
    unit_src, unit_tgt = source_rate // common, target_rate // common
    first = max(0, offset - MARGIN) // unit_tgt
    last = -(-(stop_t + MARGIN) // unit_tgt)
    return Span(first * unit_src, min(frames, last * unit_src), offset - first * unit_tgt, want)
