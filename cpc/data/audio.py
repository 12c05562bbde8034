"""Speech data: records from a folder or manifest, random training windows, whole files.

Files are read with soundfile (torchaudio's loader needs FFmpeg), mixed to mono by
averaging channels, and resampled on every read with torchaudio's sinc resampler;
nothing resampled is cached, only the filter kernel of each rate pair. A training window
reads only the stretch of the file it needs, so minutes-long recordings cost no more
than short ones.

Bad input follows :mod:`cpc.data.errors`: construction checks each file's header
(``soundfile.info``, no decoding) and skips what is unusable; a file that only fails
when decoded is recorded and replaced by the next item.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from math import gcd
from pathlib import Path
from typing import Any, Literal

import numpy as np
import soundfile as sf
import torch
import torchaudio.transforms as AT
from torch.utils.data import Dataset

from cpc.data.errors import DataError, EmptyDatasetError, SkipReport, load_or_next
from cpc.data.sources import list_files, read_manifest

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg")

#: Receptive field, in samples, of the paper's encoder (kernels 10, 8, 4, 4, 4; strides
#: 5, 4, 2, 2, 2): the shortest input giving one latent step. The default minimum length.
CPC_RECEPTIVE_FIELD = 465

#: Target-rate samples read on each side of a window so the resampling filter sees real
#: neighbours; torchaudio's default filter spans only a few samples of the lower rate.
_MARGIN = 64

_SOUNDFILE_ERRORS = (RuntimeError, OSError, ValueError, EOFError, TypeError)


@dataclass(frozen=True)
class AudioRecord:
    """One audio file and what is known about it before reading.

    Attributes:
        path: The file.
        speaker: Speaker name (the manifest's ``speaker`` column, else a folder name).
        label: Optional label from the manifest.
        duration: Optional duration in seconds from the manifest (informative only).

    """

    path: str
    speaker: str
    label: str | None = None
    duration: float | None = None


def audio_records(
    source: str | Path, speaker_fn: Callable[[Path], str] | None = None
) -> list[AudioRecord]:
    """List the audio files of a folder, or the rows of a manifest, as records.

    Args:
        source: A folder (searched recursively for .wav/.flac/.ogg, any case) or a
            CSV/TSV manifest with a ``path`` column and optional ``speaker``,
            ``label``, ``duration`` columns.
        speaker_fn: Speaker name from a file path where the manifest gives none.
            Default: the parent folder's name. For LibriSpeech
            (``speaker/chapter/file.flac``) pass ``lambda p: p.parent.parent.name``.

    Returns:
        The records, in folder-sorted or manifest order.

    """
    name_of = speaker_fn or (lambda p: p.parent.name)
    root = Path(source)
    if root.is_dir():
        return [AudioRecord(str(f), name_of(f)) for f in list_files(root, AUDIO_EXTENSIONS)]
    records = []
    for row in read_manifest(root):
        try:
            duration = float(row["duration"]) if row.get("duration") else None
        except ValueError as err:
            raise DataError(str(root), f"malformed: bad duration for {row['path']}") from err
        records.append(
            AudioRecord(
                path=row["path"],
                speaker=row.get("speaker") or name_of(Path(row["path"])),
                label=row.get("label") or None,
                duration=duration,
            )
        )
    return records


@lru_cache(maxsize=8)
def _resampler(source_rate: int, sample_rate: int) -> AT.Resample:
    """Build (once per rate pair) the resampler whose filter kernel is kept.

    Same filter as ``torchaudio.functional.resample`` with its defaults, which rebuilds
    the kernel on every call: about three quarters of the cost of a 44.1 kHz window.
    """
    return AT.Resample(source_rate, sample_rate)


def resampled_length(frames: int, source_rate: int, sample_rate: int) -> int:
    """Count the samples at ``sample_rate`` of ``frames`` samples at ``source_rate``.

    Matches the output length of ``torchaudio.functional.resample``: ``ceil``.
    """
    return -(-frames * sample_rate // source_rate)


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
        info = sf.info(path)
        source_rate = int(info.samplerate)
        total = resampled_length(int(info.frames), source_rate, sample_rate)
        stop = total if frames is None else min(total, offset + frames)
        # Source and target grids meet every `unit_src` / `unit_tgt` samples.
        common = gcd(source_rate, sample_rate)
        unit_src, unit_tgt = source_rate // common, sample_rate // common
        margin = _MARGIN if source_rate != sample_rate else 0
        first = max(0, offset - margin) // unit_tgt
        last = -(-(stop + margin) // unit_tgt)
        data, _ = sf.read(
            path,
            start=first * unit_src,
            stop=min(int(info.frames), last * unit_src),
            dtype="float32",
            always_2d=True,
        )
    except _SOUNDFILE_ERRORS as err:
        raise DataError(path, f"unreadable: {err}") from err
    mono = torch.from_numpy(np.ascontiguousarray(data.mean(axis=1, dtype=np.float32)))
    if not bool(torch.isfinite(mono).all()):
        raise DataError(path, "non-finite: NaN or infinite samples")
    if source_rate != sample_rate and mono.numel() > 0:
        with torch.no_grad():
            mono = _resampler(source_rate, sample_rate)(mono)
    begin = offset - first * unit_tgt
    return mono[begin : begin + max(0, stop - offset)].contiguous()


@dataclass(frozen=True)
class _Clip:
    path: str
    speaker: int
    length: int  # samples at the target rate


def _describe(records: Sequence[AudioRecord] | str | Path) -> str:
    if isinstance(records, str | Path):
        return str(records)
    if not records:
        return "an empty list of audio records"
    return f"{len(records)} audio records (first: {records[0].path})"


class _AudioSet(Dataset[dict[str, Any]]):
    """Probes records once (headers only) and keeps the usable ones."""

    def __init__(
        self,
        records: Sequence[AudioRecord] | str | Path,
        sample_rate: int,
        min_samples: int,
        strict: bool,
        window: int | None = None,
    ) -> None:
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {sample_rate}")
        if min_samples < 1:
            raise ValueError(f"min_samples must be at least 1, got {min_samples}")
        listed = audio_records(records) if isinstance(records, str | Path) else records
        self.sample_rate = sample_rate
        self.min_samples = min_samples
        self.strict = strict
        self.report = SkipReport()
        self._bad: set[int] = set()
        kept: list[tuple[AudioRecord, int]] = []
        for record in listed:
            self.report.checked += 1
            length = self._probe(record.path, window)
            if length is not None:
                kept.append((record, length))
        if not kept:
            raise EmptyDatasetError(_describe(records), self.report)
        #: Speaker names; a clip's ``"speaker"`` is an index into this list.
        self.speakers: list[str] = sorted({record.speaker for record, _ in kept})
        index = {name: i for i, name in enumerate(self.speakers)}
        self._clips = [_Clip(r.path, index[r.speaker], n) for r, n in kept]

    def _probe(self, path: str, window: int | None) -> int | None:
        """Target-rate length of a usable file, else ``None`` after reporting it."""
        file = Path(path)
        if not file.is_file():
            self.report.skip(path, "missing: no such file", self.strict)
            return None
        if file.stat().st_size == 0:
            self.report.skip(path, "empty: zero-byte file", self.strict)
            return None
        try:
            info = sf.info(path)
        except _SOUNDFILE_ERRORS as err:
            self.report.skip(path, f"unreadable: {err}", self.strict)
            return None
        if info.frames <= 0 or info.samplerate <= 0:
            self.report.skip(path, "empty: no audio frames", self.strict)
            return None
        length = resampled_length(int(info.frames), int(info.samplerate), self.sample_rate)
        if length < self.min_samples:
            reason = f"too short: {length} samples < min_samples {self.min_samples}"
            self.report.skip(path, reason, self.strict)
            return None
        if window is not None and length < window:
            self.report.skip(path, f"short clip: {length} samples < window {window}", False)
            return None
        return length

    def __len__(self) -> int:
        raise NotImplementedError

    def _path(self, index: int) -> str:
        raise NotImplementedError

    def _load(self, index: int) -> dict[str, Any]:
        raise NotImplementedError

    def __getitem__(self, index: int) -> dict[str, Any]:
        """Item ``index``, or the next loadable one if its file fails to decode."""
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        return load_or_next(
            index, len(self), self._load, self._bad, self.report, self._path, self.strict
        )


class AudioWindowDataset(_AudioSet):
    """Random fixed-length windows for CPC training.

    Each epoch draws a fresh window offset for every item from a generator seeded by
    ``(seed, epoch, index)``, so a run is reproducible and a resumed run sees the same
    windows; call :meth:`set_epoch` at the start of every epoch.

    Clips shorter than the window (but at least ``min_samples`` long) follow
    ``short_clips``: ``"pad"`` zero-pads them at the end and reports the true length
    in ``"length"`` so the model masks the padding; ``"skip"`` leaves them out at
    construction and records them in :attr:`report` (kind ``short clip``).

    Args:
        records: Records, or a folder / manifest path passed to :func:`audio_records`.
        sample_rate: Rate of the returned windows (16 kHz in the paper).
        window: Window length in samples (20480 in the paper, 1.28 s at 16 kHz).
        min_samples: Clips shorter than this are skipped; pass the encoder's
            receptive field (default: the paper encoder's, 465).
        short_clips: ``"pad"`` or ``"skip"``, see above.
        cover: If true, a clip yields ``max(1, length // window)`` items per epoch,
            each at its own random offset, so long files count in proportion to their
            length (CPC_audio cuts sequences into consecutive windows instead). If
            false, one window per clip.
        strict: Raise :class:`DataError` on the first bad file instead of skipping.
        seed: Base seed of the window offsets.

    Shape:
        item ``"x"``: ``(window,)`` float32; ``"length"``, ``"speaker"``, ``"index"``:
        ints.

    """

    def __init__(
        self,
        records: Sequence[AudioRecord] | str | Path,
        sample_rate: int = 16000,
        window: int = 20480,
        *,
        min_samples: int = CPC_RECEPTIVE_FIELD,
        short_clips: Literal["pad", "skip"] = "pad",
        cover: bool = False,
        strict: bool = False,
        seed: int = 0,
    ) -> None:
        if window < 1:
            raise ValueError(f"window must be positive, got {window}")
        if short_clips not in ("pad", "skip"):
            raise ValueError(f"short_clips must be 'pad' or 'skip', got {short_clips!r}")
        super().__init__(
            records, sample_rate, min_samples, strict, window if short_clips == "skip" else None
        )
        self.window = window
        self.seed = seed
        self.epoch = 0
        self._items = [
            c
            for c, clip in enumerate(self._clips)
            for _ in range(max(1, clip.length // window) if cover else 1)
        ]

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose window offsets :meth:`__getitem__` draws.

        DataLoader workers hold copies of the data set made when an epoch's iterator
        starts, so call this before ``iter(loader)``, and do not combine it with
        ``persistent_workers=True`` (the workers would keep the first epoch).
        """
        self.epoch = epoch

    @property
    def groups(self) -> list[int]:
        """Speaker index of every item, for :class:`~cpc.data.samplers.GroupedBatchSampler`."""
        return [self._clips[c].speaker for c in self._items]

    def __len__(self) -> int:
        return len(self._items)

    def _path(self, index: int) -> str:
        return self._clips[self._items[index]].path

    def _load(self, index: int) -> dict[str, Any]:
        clip = self._clips[self._items[index]]
        offset = 0
        if clip.length > self.window:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            offset = int(rng.integers(0, clip.length - self.window + 1))
        x = read_audio(clip.path, self.sample_rate, offset, self.window)
        length = int(x.shape[0])
        if length < self.window:  # (t,) -> (window,)
            x = torch.nn.functional.pad(x, (0, self.window - length))
        return {"x": x, "length": length, "speaker": clip.speaker, "index": index}


class AudioFileDataset(_AudioSet):
    """Whole files at one sample rate, for feature extraction and probes.

    A file that fails to decode is recorded in :attr:`report` and replaced by the next
    file; its item's ``"path"`` and ``"index"`` name the file actually returned, so an
    extraction loop can notice the substitution. Use ``strict=True`` to stop instead.

    Args:
        records: Records, or a folder / manifest path passed to :func:`audio_records`.
        sample_rate: Rate of the returned waveforms.
        min_samples: Files shorter than this are skipped.
        strict: Raise :class:`DataError` on the first bad file instead of skipping.

    Shape:
        item ``"x"``: ``(t,)`` float32 with ``t == item["length"]``.

    """

    def __init__(
        self,
        records: Sequence[AudioRecord] | str | Path,
        sample_rate: int = 16000,
        *,
        min_samples: int = 1,
        strict: bool = False,
    ) -> None:
        super().__init__(records, sample_rate, min_samples, strict)

    @property
    def groups(self) -> list[int]:
        """Speaker index of every file."""
        return [clip.speaker for clip in self._clips]

    @property
    def paths(self) -> list[str]:
        """The usable files, in item order."""
        return [clip.path for clip in self._clips]

    def __len__(self) -> int:
        return len(self._clips)

    def _path(self, index: int) -> str:
        return self._clips[index].path

    def _load(self, index: int) -> dict[str, Any]:
        clip = self._clips[index]
        x = read_audio(clip.path, self.sample_rate)
        if x.shape[0] == 0:
            raise DataError(clip.path, "empty: no audio frames decoded")
        return {
            "x": x,
            "length": int(x.shape[0]),
            "speaker": clip.speaker,
            "path": clip.path,
            "index": index,
        }
