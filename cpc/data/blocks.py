"""Read a long recording block by block at the model's rate, in bounded memory.

``AudioBlocks(path, rate)`` opens the file once (soundfile), reads ``block_seconds`` of
source frames at a time, mixes to mono, checks that every sample is finite and resamples
the block through one :class:`~cpc.data.resample.StreamResampler`, so the concatenated
blocks equal the whole file resampled at once while memory holds one block. The number
of samples it will yield is known before reading (:attr:`AudioBlocks.length`), so a
consumer can allocate its output (a memory-mapped ``.npy``) up front.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import numpy as np
import soundfile as sf

from cpc.data.resample import StreamResampler, resampled_length
from cpc.errors import DataError

_SOUNDFILE_ERRORS = (sf.LibsndfileError, RuntimeError, OSError, ValueError, TypeError)


class Blocks(Protocol):
    """A sequence delivered in blocks: ``length`` samples in all, known before reading.

    Shape:
        each block: ``(t,)`` or ``(t, c)``.
    """

    length: int

    def __iter__(self) -> Iterator[np.ndarray]: ...


class AudioBlocks:
    """A recording as an iterator of mono float32 blocks at ``rate``.

    Args:
        path: An audio file soundfile can read.
        rate: The rate to yield (the model's).
        block_seconds: Source audio per read (memory is about ``block_seconds`` of
            audio in float32, times the file's channels).

    Raises:
        DataError: The header cannot be read (on construction), or while iterating a
            block cannot be decoded or holds a NaN or infinite sample (the message says
            where, in seconds).

    Shape:
        each block: ``(t,)`` float32; the blocks together: ``(self.length,)``.

    """

    def __init__(self, path: str | Path, rate: int, block_seconds: float = 30.0) -> None:
        self.path = str(path)
        self.rate = rate
        try:
            info = sf.info(self.path)
        except _SOUNDFILE_ERRORS as err:
            raise DataError(self.path, f"unreadable: {err}") from None
        self.source_rate = int(info.samplerate)
        self.frames = int(info.frames)
        self.block = max(1, int(block_seconds * self.source_rate))
        self.length = resampled_length(self.frames, self.source_rate, rate)

    def __iter__(self) -> Iterator[np.ndarray]:
        resampler = StreamResampler(self.source_rate, self.rate)
        done = 0
        try:
            f = sf.SoundFile(self.path)
        except _SOUNDFILE_ERRORS as err:
            raise DataError(self.path, f"unreadable: {err}") from None
        with f:
            while done < self.frames:
                mono = self._read(f, min(self.block, self.frames - done), done)
                done += mono.shape[0]
                yield resampler.push(mono)
        yield resampler.finish()

    def _read(self, f: sf.SoundFile, count: int, done: int) -> np.ndarray:
        """The next ``count`` frames as checked mono samples."""
        seconds = done / self.source_rate
        try:
            data = f.read(count, "float32", True)
        except _SOUNDFILE_ERRORS as err:
            raise DataError(self.path, f"unreadable: at {seconds:.1f} s: {err}") from None
        if data.shape[0] == 0:
            raise DataError(
                self.path, f"unreadable: ends at {seconds:.1f} s, before its header says"
            )
        mono = data.mean(axis=1, dtype=np.float32)
        finite = np.isfinite(mono)
        if not finite.all():
            where = (done + int(np.argmin(finite))) / self.source_rate
            raise DataError(self.path, f"non-finite: NaN or infinite sample at {where:.2f} s")
        return mono
