"""Speech data: records from a folder or manifest, random training windows, whole files.

Files are read with soundfile (torchaudio's loader needs FFmpeg), mixed to mono by
averaging channels, and resampled on every read with soxr (:mod:`cpc.data.resample`:
time and memory bounded for every pair of rates, 44101 Hz as well as 44100); nothing
resampled is cached. A training window reads only the stretch of the file it needs, so
hour-long recordings cost no more than short ones, and :meth:`AudioFileDataset.stream`
gives a whole file as checked blocks (:class:`cpc.data.blocks.AudioBlocks`) for
extraction in bounded memory.

Bad input follows :mod:`cpc.data.errors`: construction checks each file's header
(``soundfile.info``, no decoding) and skips what is unusable; a file that only fails
when decoded is recorded (and, in training windows only, replaced by the next item).
Windows and whole files are the shared :mod:`cpc.data.windows` data sets over
:class:`AudioSource`.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from cpc.data.blocks import AudioBlocks
from cpc.data.formats import list_source
from cpc.data.formats.clips import ClipBlocks, is_plain, probe_clip, read_clip
from cpc.data.records import Record, group_rule
from cpc.data.resample import resample, resampled_length, source_span
from cpc.data.windows import (
    Augment,
    FileDataset,
    FileSource,
    ShortClips,
    WindowDataset,
    short_clip_limit,
)
from cpc.errors import DataError

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg")

#: Receptive field, in samples, of the paper's encoder (kernels 10, 8, 4, 4, 4; strides
#: 5, 4, 2, 2, 2): the shortest input giving one latent step. The default minimum length.
CPC_RECEPTIVE_FIELD = 465

_SOUNDFILE_ERRORS = (RuntimeError, OSError, ValueError, EOFError, TypeError)


AudioRecord = Record
"""An audio file's record (:class:`cpc.data.records.Record`; the group is the speaker)."""

#: Manifest columns that name an audio file's group by default.
GROUP_COLUMNS = ("speaker",)


def audio_records(
    source: str | Path,
    group_fn: Callable[[Path], str] | None = None,
    group_from: str = "auto",
    fmt: str = "auto",
) -> list[Record]:
    """List the audio of a folder, a manifest or a toolkit's corpus as records.

    Args:
        source: A folder (searched recursively for .wav/.flac/.ogg, any case), a
            CSV/TSV manifest with a ``path`` column and optional ``speaker``,
            ``label``, ``duration`` columns, or a corpus in a format of
            :mod:`cpc.data.formats` (fairseq, Kaldi, Lhotse, HF, WebDataset).
        group_fn: The speaker from a file path (overrides ``group_from``).
        group_from: ``data.group_from`` (:func:`cpc.data.records.group_rule`); for
            LibriSpeech (``speaker/chapter/file.flac``) use ``grandparent``. A format's
            own speaker field is its ``speaker`` column.
        fmt: ``data.format``: ``auto`` (from the path) or a format's name.

    Returns:
        The records, in folder-sorted or manifest order.

    """
    rule = group_rule(group_from, GROUP_COLUMNS, group_fn)
    return list_source(str(source), fmt, AUDIO_EXTENSIONS, rule)


def read_audio(
    path: str, sample_rate: int, offset: int = 0, frames: int | None = None
) -> torch.Tensor:
    """Read a mono float32 stretch of a file at ``sample_rate``.

    ``offset`` and ``frames`` count target-rate samples. Only the matching source
    frames are read from disk (plus a small margin for the resampling filter), aligned
    so the result equals the same slice of the whole file resampled at once.

    Args:
        path: An audio file soundfile can read.
        sample_rate: The rate to return.
        offset: First target-rate sample.
        frames: Number of target-rate samples; ``None`` reads to the end. Fewer come
            back when the file ends first.

    Returns:
        The waveform, channels averaged to mono.

    Raises:
        DataError: The file cannot be decoded or holds non-finite samples.

    Shape:
        output: ``(t,)`` with ``t <= frames``.

    """
    try:
        with sf.SoundFile(path) as f:  # opened once: header, seek and read
            source_rate = int(f.samplerate)
            # Where the two rates' grids meet before the stretch (at most a second of
            # audio earlier), with filter context on each side: equals the whole file's
            # slice.
            span = source_span(int(f.frames), source_rate, sample_rate, offset, frames)
            start, stop, _ = slice(span.start, span.stop).indices(int(f.frames))
            f.seek(start)  # clipped to the file as sf.read clips it
            data = f.read(max(0, stop - start), dtype="float32", always_2d=True)
    except _SOUNDFILE_ERRORS as err:
        raise DataError(path, f"unreadable: {err}") from err
    mono = np.ascontiguousarray(data.mean(axis=1, dtype=np.float32))
    if not np.isfinite(mono).all():
        raise DataError(path, "non-finite: NaN or infinite samples")
    stretch = resample(mono, source_rate, sample_rate)[span.skip :][: span.count]
    return torch.from_numpy(np.ascontiguousarray(stretch))


class AudioSource(FileSource):
    """Audio files at one sample rate: headers checked once, stretches read on demand.

    Construction reads headers only (``soundfile.info``, no decoding); a file that
    passes and fails when decoded is reported by the data set that reads it.

    Args:
        records: Records, or a folder / manifest path passed to :func:`audio_records`.
        sample_rate: Rate of everything read (the model's).
        min_length: Files shorter than this many target-rate samples are skipped.
        strict: Raise on the first unusable file.
        skip_below: See :class:`~cpc.data.windows.FileSource`.
        listed_lengths: Take a file's length from its record when the listing gives
            one (:attr:`~cpc.data.records.Record.samples`: a fairseq manifest's
            ``num_samples``) instead of opening the file to read its header; the file is
            still checked to exist and be non-empty. A file that then fails to decode is
            reported when a window reads it. Training windows set it (unless strict).

    """

    def __init__(
        self,
        records: Sequence[Record] | str | Path,
        sample_rate: int,
        min_length: int = 1,
        strict: bool = False,
        skip_below: int | None = None,
        listed_lengths: bool = False,
    ) -> None:
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {sample_rate}")
        self.sample_rate, self.listed_lengths = sample_rate, listed_lengths
        name = str(records) if isinstance(records, str | Path) else None
        listed = audio_records(records) if isinstance(records, str | Path) else records
        # Records are named uniquely (a file, or a toolkit's id); a clip is read from
        # its record, a whole file by path as before.
        self._by_name = {r.path: r for r in listed if r.problem is None}
        super().__init__(listed, min_length, strict, skip_below, "samples", name)
        self.records = [self._by_name[path] for path in self.paths]

    def probe(self, path: str) -> tuple[int, None]:
        """Target-rate length from the header; DataError naming what is wrong."""
        record = self._by_name[path]
        if not is_plain(record):
            return probe_clip(record, self.sample_rate), None
        try:  # one stat (a Path's is_file and stat cost three, and parsing)
            found = os.stat(path)
        except OSError:
            found = None
        if found is None or not stat.S_ISREG(found.st_mode):
            raise DataError(path, "missing: no such file")
        if found.st_size == 0:
            raise DataError(path, "empty: zero-byte file")
        if self.listed_lengths and record.samples is not None:
            if record.samples <= 0:
                raise DataError(path, "empty: the manifest lists 0 samples")
            return record.samples, None
        try:  # the header only (sf.info also formats names and extra info: twice as slow)
            with sf.SoundFile(path) as f:
                source_frames, source_rate = int(f.frames), int(f.samplerate)
        except _SOUNDFILE_ERRORS as err:
            raise DataError(path, f"unreadable: {err}") from err
        if source_frames <= 0 or source_rate <= 0:
            raise DataError(path, "empty: no audio frames")
        return resampled_length(source_frames, source_rate, self.sample_rate), None

    def read(self, index: int, offset: int = 0, frames: int | None = None) -> torch.Tensor:
        """Mono samples ``[offset, offset + frames)`` of item ``index`` (:func:`read_audio`,
        or :func:`~cpc.data.formats.clips.read_clip` for a segment or a shard member).
        """
        record = self.records[index]
        if not is_plain(record):
            return read_clip(record, self.sample_rate, offset, frames)
        x = read_audio(self.paths[index], self.sample_rate, offset, frames)
        if x.shape[0] == 0 and frames != 0 and record.samples is not None:
            why = f"shorter than listed: no samples from {offset} on ({record.samples} listed)"
            raise DataError(self.paths[index], why)
        return x


class AudioWindowDataset(WindowDataset):
    """Random training windows of audio files (:class:`~cpc.data.windows.WindowDataset`).

    Args:
        records: Records, or a folder / manifest path passed to :func:`audio_records`.
        sample_rate: Rate of the returned windows (16 kHz in the paper).
        window: Window length in samples (20480 in the paper, 1.28 s at 16 kHz).
        min_length: Clips shorter than this are skipped; pass the encoder's
            receptive field (default: the paper encoder's, 465).
        short_clips: ``"pad"`` (zero-pad, report the true length) or ``"skip"``
            (leave out, recorded in :attr:`report` as ``short clip``).
        cover, seed, strict, augment: See :class:`~cpc.data.windows.WindowDataset`
            (``augment``: e.g. :class:`cpc.data.augment.WaveAugment`).

    Shape:
        item ``"x"``: ``(window,)`` float32; ``"length"``, ``"group"``, ``"index"``: ints.

    """

    def __init__(
        self,
        records: Sequence[Record] | str | Path,
        sample_rate: int = 16000,
        window: int = 20480,
        *,
        min_length: int = CPC_RECEPTIVE_FIELD,
        short_clips: ShortClips = "pad",
        cover: bool = False,
        strict: bool = False,
        seed: int = 0,
        augment: Augment | None = None,
    ) -> None:
        skip_below = short_clip_limit(window, short_clips)
        source = AudioSource(
            records, sample_rate, min_length, strict, skip_below, listed_lengths=not strict
        )
        super().__init__(source, window, cover=cover, seed=seed, strict=strict, augment=augment)


class AudioFileDataset(FileDataset):
    """Whole audio files at one sample rate, for extraction and probes.

    A file that fails to decode raises :class:`DataError` (never substituted).

    Shape:
        item ``"x"``: ``(t,)`` float32 with ``t == item["length"]``.
    """

    def __init__(
        self,
        records: Sequence[Record] | str | Path,
        sample_rate: int = 16000,
        *,
        min_length: int = 1,
        strict: bool = False,
    ) -> None:
        self.sample_rate = sample_rate
        self.audio = AudioSource(records, sample_rate, min_length, strict)
        super().__init__(self.audio)

    def stream(self, index: int, block_seconds: float = 30.0) -> AudioBlocks | ClipBlocks:
        """File ``index`` as checked blocks at the model's rate, read in order (bounded
        memory for any length; the blocks equal the whole file's samples).
        """
        record = self.audio.records[index]
        if not is_plain(record):
            return ClipBlocks(record, self.sample_rate, block_seconds)
        return AudioBlocks(self.source.paths[index], self.sample_rate, block_seconds)
