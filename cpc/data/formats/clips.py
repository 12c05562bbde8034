"""Read a record's samples wherever they are: a file, a stretch of one, a tar member, a row.

A :class:`~cpc.data.records.Record` whose ``audio`` is set names its samples with a
*locator* string:

- a file path (``/data/rec.flac``): read with soundfile;
- ``tar:OFFSET:SIZE:SHARD``: the ``SIZE`` bytes at ``OFFSET`` of a local tar file (a
  WebDataset member, indexed once by :mod:`cpc.data.formats.webdataset`);
- ``hf:ROW:COLUMN:DIR``: the audio of row ``ROW``, column ``COLUMN`` of a Hugging Face
  dataset saved with ``save_to_disk`` in ``DIR`` (the encoded file bytes, decoded here
  with soundfile, so no ``torchcodec`` is needed).

The path comes last in each locator, so colons inside it do no harm. A segment
(``start``/``end`` seconds: a Kaldi ``segments`` line, a Lhotse cut or supervision) is
read by seeking to its first frame: only the frames a window needs are decoded, never
the whole recording. Reads equal the same stretch of the segment resampled at once
(:func:`cpc.data.resample.source_span`), as :func:`cpc.data.audio.read_audio` does for
whole files.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch

from cpc.data.records import Record
from cpc.data.resample import StreamResampler, resample, resampled_length, source_span
from cpc.errors import DataError

_SOUNDFILE_ERRORS = (RuntimeError, OSError, ValueError, EOFError, TypeError, KeyError)

#: A segment may end this many seconds after its recording (rounding in toolkits'
#: durations); it is then cut at the recording's end. Further out it is refused.
END_TOLERANCE = 0.05

_HF_DATASETS: dict[str, Any] = {}


def is_plain(record: Record) -> bool:
    """Whether a record is a whole file read by path (the folder/manifest case)."""
    return record.audio is None and record.start == 0.0 and record.end is None


def _hf_row(locator: str) -> io.BytesIO | str:
    """The encoded audio of a saved Hugging Face dataset's row (opened once per process)."""
    import datasets  # the optional ``corpora`` extra

    _, row, column, folder = locator.split(":", 3)
    if folder not in _HF_DATASETS:
        loaded = datasets.load_from_disk(folder)
        _HF_DATASETS[folder] = loaded.cast_column(column, datasets.Audio(decode=False))
    value = _HF_DATASETS[folder][int(row)][column]
    if value.get("bytes"):
        return io.BytesIO(value["bytes"])
    if value.get("path"):
        return str(value["path"])
    raise DataError(locator, "empty: the row has neither audio bytes nor a path")


def open_audio(locator: str) -> io.BytesIO | str:
    """What soundfile opens for a locator (see the module docstring)."""
    if locator.startswith("tar:"):
        _, offset, size, shard = locator.split(":", 3)
        with open(shard, "rb") as f:
            f.seek(int(offset))
            data = f.read(int(size))
        if len(data) != int(size):
            raise DataError(locator, f"truncated: {len(data)} of {size} bytes in {shard}")
        return io.BytesIO(data)
    if locator.startswith("hf:"):
        return _hf_row(locator)
    return locator


@dataclass(frozen=True)
class ClipInfo:
    """Where a record's samples lie in its recording, in source frames."""

    rate: int
    first: int
    frames: int


def _locate(f: sf.SoundFile, record: Record) -> ClipInfo:
    total, rate = int(f.frames), int(f.samplerate)
    if total <= 0 or rate <= 0:
        raise DataError(record.path, "empty: no audio frames")
    first = round(record.start * rate)
    stop = total if record.end is None else round(record.end * rate)
    where = f"segment {record.start:.3f}-{record.end or total / rate:.3f} s"
    if first >= total or stop <= first:
        raise DataError(record.path, f"bad segment: {where} of a {total / rate:.3f} s recording")
    if stop > total + END_TOLERANCE * rate:
        raise DataError(
            record.path, f"bad segment: {where} ends after the {total / rate:.3f} s recording"
        )
    return ClipInfo(rate, first, min(stop, total) - first)


def _open(record: Record) -> sf.SoundFile:
    where = record.audio if record.audio is not None else record.path
    try:
        return sf.SoundFile(open_audio(where))
    except DataError:
        raise
    except (*_SOUNDFILE_ERRORS, sf.LibsndfileError) as err:
        raise DataError(record.path, f"unreadable: {err}") from None


def locate_clip(record: Record) -> ClipInfo:
    """Where a record's samples lie in its recording, from the header (nothing decoded).

    Raises:
        DataError: Unreadable, empty, or a segment outside its recording.

    """
    with _open(record) as f:
        return _locate(f, record)


def probe_clip(record: Record, sample_rate: int) -> int:
    """Length of a record's clip at ``sample_rate``, from the header (nothing decoded).

    Raises:
        DataError: Missing, empty, unreadable, or a segment outside its recording.

    """
    if record.audio is not None and not record.audio.startswith(("tar:", "hf:")):
        file = Path(record.audio)
        if not file.is_file():
            raise DataError(record.path, f"missing: no such file {record.audio}")
    with _open(record) as f:
        clip = _locate(f, record)
    return resampled_length(clip.frames, clip.rate, sample_rate)


def read_clip(
    record: Record, sample_rate: int, offset: int = 0, frames: int | None = None
) -> torch.Tensor:
    """Mono float32 samples ``[offset, offset + frames)`` of a record's clip at ``sample_rate``.

    Only the needed source frames are decoded (seek, then read). Equals the same slice
    of the whole clip resampled at once.

    Raises:
        DataError: The clip cannot be decoded or holds non-finite samples.

    Shape:
        output: ``(t,)`` with ``t <= frames``.

    """
    with _open(record) as f:
        clip = _locate(f, record)
        span = source_span(clip.frames, clip.rate, sample_rate, offset, frames)
        try:
            f.seek(clip.first + span.start)
            data = f.read(span.stop - span.start, dtype="float32", always_2d=True)
        except _SOUNDFILE_ERRORS as err:
            raise DataError(record.path, f"unreadable: {err}") from None
    mono = np.ascontiguousarray(data.mean(axis=1, dtype=np.float32))
    if not np.isfinite(mono).all():
        raise DataError(record.path, "non-finite: NaN or infinite samples")
    stretch = resample(mono, clip.rate, sample_rate)[span.skip :][: span.count]
    return torch.from_numpy(np.ascontiguousarray(stretch))


class ClipBlocks:
    """A record's clip as mono float32 blocks at ``rate`` (bounded memory, any length).

    The blocks together equal :func:`read_clip` of the whole clip; :attr:`length` is
    known before reading (:class:`cpc.data.blocks.Blocks`).
    """

    def __init__(self, record: Record, rate: int, block_seconds: float = 30.0) -> None:
        self.record, self.rate = record, rate
        with _open(record) as f:
            self.clip = _locate(f, record)
        self.block = max(1, int(block_seconds * self.clip.rate))
        self.length = resampled_length(self.clip.frames, self.clip.rate, rate)

    def __iter__(self) -> Iterator[np.ndarray]:
        resampler = StreamResampler(self.clip.rate, self.rate)
        with _open(self.record) as f:
            f.seek(self.clip.first)
            done = 0
            while done < self.clip.frames:
                count = min(self.block, self.clip.frames - done)
                try:
                    data = f.read(count, dtype="float32", always_2d=True)
                except _SOUNDFILE_ERRORS as err:
                    raise DataError(self.record.path, f"unreadable: {err}") from None
                if data.shape[0] == 0:
                    raise DataError(self.record.path, "unreadable: ends before its header says")
                mono = data.mean(axis=1, dtype=np.float32)
                if not np.isfinite(mono).all():
                    raise DataError(self.record.path, "non-finite: NaN or infinite samples")
                done += mono.shape[0]
                yield resampler.push(mono)
        yield resampler.finish()
