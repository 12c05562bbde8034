"""Pen and sensor streams as data sets: records, channels, normalisation, windows.

A stream is a ``(time, channels)`` array, read from ``.npy``, ``.npz``, ``.csv``/``.tsv``
or ``.txt`` (the SVC2004 signature format, or a whitespace table) by
:mod:`cpc.data.signal_io`, which also fills gaps and resamples. Every file goes
through the same steps: select channels, fill missing values, optionally resample to
a fixed rate using its timestamps, normalise per channel.

SVC2004 channels. The files hold ``X Y timestamp button azimuth altitude pressure``
(Task 2) or only the first four columns (Task 1). The default channels are, in order,
``x, y, pressure, button, azimuth, altitude`` (``x, y, button`` for Task 1):
the trajectory, then the dynamics that a skilled forger copying the shape does not
reproduce (pressure, pen up/down), then the pen's orientation, which is writer
specific but noisier. The timestamp is not a channel: absolute time says nothing about
the writer, and it is used instead to resample onto a uniform grid (``rate``), since
the tablet drops points while the pen is lifted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from cpc.data.formats import PATH_FORMATS, list_source
from cpc.data.records import Record, group_rule
from cpc.data.signal_io import Signal, fill_missing, read_signal, resample_uniform
from cpc.data.windows import FileDataset, FileSource, ShortClips, WindowDataset, short_clip_limit
from cpc.errors import ConfigError, DataError

SIGNAL_EXTENSIONS = (".npy", ".npz", ".csv", ".tsv", ".txt")

#: Channels resampled by nearest value instead of linearly (they are on/off states).
DISCRETE_CHANNELS = frozenset({"button"})

_EPS = 1e-8


SignalRecord = Record
"""A signal file's record (:class:`cpc.data.records.Record`; the group is the writer)."""

#: Manifest columns that name a signal file's group by default.
GROUP_COLUMNS = ("label", "writer")


def signal_records(
    source: str | Path,
    group_fn: Callable[[Path], str] | None = None,
    group_from: str = "auto",
    fmt: str = "auto",
) -> list[Record]:
    """List the signal files of a folder, or the rows of a manifest, as records.

    Args:
        source: A folder (searched recursively for .npy/.npz/.csv/.tsv/.txt, any case)
            or a CSV/TSV manifest with a ``path`` column and a ``label`` or ``writer``
            column.
        group_fn: The group from a file path where the manifest gives none (overrides
            the parent folder). For SVC2004 (``U12S3.TXT``) use :func:`svc2004_writer`.
        group_from: ``data.group_from`` (:func:`cpc.data.records.group_rule`).
        fmt: ``data.format``: ``auto``, ``folder``, ``manifest`` or ``fairseq`` (the
            formats that list files by path, :data:`cpc.data.formats.PATH_FORMATS`).

    Returns:
        The records, in folder-sorted or manifest order.

    """
    rule = group_rule(group_from, GROUP_COLUMNS, group_fn)
    return list_source(str(source), fmt, SIGNAL_EXTENSIONS, rule, PATH_FORMATS)


def svc2004_writer(path: Path) -> str:
    """Writer of an SVC2004 file named ``U<writer>S<signature>`` (``"U12S3.TXT" -> "12"``)."""
    stem = path.stem.upper()
    if not stem.startswith("U") or "S" not in stem:
        return path.parent.name
    return stem[1:].split("S", 1)[0]


@dataclass
class ChannelStats:
    """Per-channel mean and standard deviation, saved with a checkpoint's config.

    Attributes:
        channels: Channel names, in order.
        mean: Mean of each channel.
        std: Standard deviation of each channel (never below 1e-8).

    """

    channels: list[str]
    mean: list[float]
    std: list[float]

    def to_dict(self) -> dict[str, list[Any]]:
        """Plain lists, for YAML/JSON configs."""
        return {"channels": list(self.channels), "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChannelStats:
        """Inverse of :meth:`to_dict`."""
        mean = [float(v) for v in data["mean"]]
        return cls(list(data["channels"]), mean, [float(v) for v in data["std"]])


class _Moments:
    """Running per-channel count, mean and sum of squared deviations (Chan et al.)."""

    def __init__(self, channels: int) -> None:
        self.n = 0
        self.mean = np.zeros(channels)
        self.m2 = np.zeros(channels)

    def add(self, values: np.ndarray) -> None:
        n = values.shape[0]
        mean = values.mean(axis=0)
        delta = mean - self.mean
        total = self.n + n
        self.m2 += ((values - mean) ** 2).sum(axis=0) + delta**2 * self.n * n / total
        self.mean += delta * n / total
        self.n = total

    def stats(self, channels: list[str]) -> ChannelStats:
        std = np.maximum(np.sqrt(self.m2 / max(self.n, 1)), _EPS)
        return ChannelStats(channels, self.mean.tolist(), std.tolist())


Normalize = Literal["file", "none", "dataset"]


class SignalSource(FileSource):
    """Signal streams: every file read once at construction to validate it and gather
    statistics; a stretch is read by preparing the whole stream and cutting it.

    Args:
        records: Records, or a folder / manifest path passed to :func:`signal_records`.
        channels: Channel names or column positions to keep, in order. ``None``: all
            channels of the first usable file (for SVC2004, the defaults in the module
            docstring); files lacking one are skipped.
        normalize: ``"file"`` (z-score each channel per file; drops absolute position
            and scale), ``"none"``, ``"dataset"`` (z-score with statistics of these
            records, exposed as :attr:`stats`), or a :class:`ChannelStats` from the
            training set (for validation data or a loaded checkpoint).
        rate: Resample to this many Hz when a file has timestamps; ``None`` keeps
            the recorded points.
        min_length: Streams shorter than this many samples (after resampling) are
            skipped; pass the encoder's receptive field.
        strict: Raise :class:`DataError` on the first bad file instead of skipping.
        key: Array name to read from ``.npz`` files (default: the first array).
        cache: Keep the prepared streams in memory (small corpora such as SVC2004).
        skip_below: See :class:`~cpc.data.windows.FileSource`.
        expect_channels: Channels the model takes; the first usable file with another
            count stops the scan at once (:class:`ConfigError`) instead of after every
            file has been read and reported.

    """

    def __init__(
        self,
        records: Sequence[Record] | str | Path,
        channels: Sequence[str | int] | None = None,
        normalize: Normalize | ChannelStats = "file",
        rate: float | None = None,
        min_length: int = 1,
        strict: bool = False,
        key: str | None = None,
        cache: bool = False,
        skip_below: int | None = None,
        expect_channels: int | None = None,
    ) -> None:
        self._expect_channels = expect_channels
        if isinstance(normalize, str) and normalize not in ("file", "none", "dataset"):
            raise ValueError(f"normalize must be file/none/dataset or ChannelStats: {normalize!r}")
        if rate is not None and rate <= 0:
            raise ValueError(f"rate must be positive, got {rate}")
        listed = signal_records(records) if isinstance(records, str | Path) else records
        self.normalize, self.rate, self.key, self.cache = normalize, rate, key, cache
        self._select: list[str | int] | None = None if channels is None else list(channels)
        #: Names of the channels kept, in order (from the first usable file).
        self.channels: list[str] = []
        self._cache: dict[str, np.ndarray] = {}
        self._moments: _Moments | None = None
        name = str(records) if isinstance(records, str | Path) else None
        # A stream's length is counted in its own samples (after resampling), not in
        # encoder steps: the messages say so.
        super().__init__(listed, min_length, strict, skip_below, "samples", name)
        #: Statistics used by ``normalize="dataset"`` (or the ones passed in); save them.
        self.stats: ChannelStats | None = None
        if isinstance(normalize, ChannelStats):
            self.stats = normalize
        elif self._moments is not None:
            self.stats = self._moments.stats(self.channels)
        if self.stats is not None and self.stats.channels != self.channels:
            raise ValueError(f"stats cover {self.stats.channels}, data has {self.channels}")

    def probe(self, path: str) -> tuple[int, tuple[np.ndarray, list[str]]]:
        """Length of a usable stream, with its prepared values and channel names."""
        values, names = self._prepare(path, notes=True)
        return values.shape[0], (values, names)

    def accept(self, record: Record, payload: Any, first: bool) -> None:
        """Fix the channels on the first kept file; cache and gather statistics."""
        values, names = payload
        if first:
            if self._expect_channels is not None and len(names) != self._expect_channels:
                # Fail on the first usable file, before a screenful of per-file lines.
                raise ConfigError(
                    f"model.in_channels={self._expect_channels} but {record.path} has "
                    f"{len(names)} channels {names}; set model.in_channels or data.channels"
                )
            self.channels = names
            self._select = self._select or list(names)
        if self.cache:
            self._cache[record.path] = values.astype(np.float32)
        if self.normalize == "dataset":
            self._moments = self._moments or _Moments(values.shape[1])
            self._moments.add(values)

    def _prepare(self, path: str, notes: bool = False) -> tuple[np.ndarray, list[str]]:
        """Read, select channels, fill gaps and resample one file (not normalised)."""
        if path in self._cache:
            return self._cache[path].astype(np.float64), self.channels
        signal: Signal = read_signal(path, self.key)
        if notes:
            for message in signal.notes:
                self.report.note(path, message)
        picks = list(range(len(signal.channels))) if self._select is None else []
        for want in self._select or []:
            if isinstance(want, int):
                found = want
            else:
                found = signal.channels.index(want) if want in signal.channels else -1
            if not 0 <= found < len(signal.channels):
                raise DataError(path, f"missing channel: {want!r} not in {signal.channels}")
            picks.append(found)
        values = signal.values[:, picks]
        names = [signal.channels[j] for j in picks]
        if values.shape[0] == 0 or values.shape[1] == 0:
            raise DataError(path, "empty: no samples")
        if not np.isfinite(values).any():
            raise DataError(path, "non-finite: every value is NaN or infinite")
        values, dead = fill_missing(values)
        if dead and notes:
            self.report.note(path, f"channels {[names[j] for j in dead]} all NaN, set to 0")
        if self.rate is not None and signal.timestamps is None and notes:
            self.report.note(path, "no timestamps: kept at its recorded rate")
        elif self.rate is not None and signal.timestamps is not None:
            discrete = [name in DISCRETE_CHANNELS for name in names]
            try:
                values = resample_uniform(values, signal.timestamps, self.rate, discrete)
            except ValueError as err:
                raise DataError(path, f"malformed: {err}") from err
        return values, names

    def _normalized(self, path: str) -> torch.Tensor:
        values, _ = self._prepare(path)
        if self.stats is not None:
            values = (values - np.asarray(self.stats.mean)) / np.asarray(self.stats.std)
        elif self.normalize == "file":
            std = values.std(axis=0)
            values = (values - values.mean(axis=0)) / np.where(std < _EPS, 1.0, std)
        return torch.from_numpy(values.astype(np.float32))

    def read(self, index: int, offset: int = 0, frames: int | None = None) -> torch.Tensor:
        """Steps ``[offset, offset + frames)`` of stream ``index``, normalised over the
        whole stream (so a window equals the same slice of the whole file).
        """
        x = self._normalized(self.paths[index])
        return x[offset : None if frames is None else offset + frames]


class _SignalFacts:
    """The channels and statistics of a signal data set's source."""

    signals: SignalSource

    @property
    def channels(self) -> list[str]:
        """Names of the channels kept, in order."""
        return self.signals.channels

    @property
    def stats(self) -> ChannelStats | None:
        """Statistics of ``normalize="dataset"`` (or the ones passed in), else None."""
        return self.signals.stats


class SignalWindowDataset(_SignalFacts, WindowDataset):
    """Random training windows of signal streams (:class:`~cpc.data.windows.WindowDataset`).

    Args:
        records: Records, or a folder / manifest path passed to :func:`signal_records`.
        window: Window length in time steps (after resampling).
        channels, normalize, rate, key, cache: See :class:`SignalSource`.
        short_clips: ``"pad"`` (zero-pad, report the true length) or ``"skip"``.
        min_length: Streams shorter than this are skipped.
        cover, seed, strict: See :class:`~cpc.data.windows.WindowDataset`.
        expect_channels: See :class:`SignalSource`.

    Shape:
        item ``"x"``: ``(window, c)`` float32; ``"length"``, ``"group"``, ``"index"``:
        ints.

    """

    def __init__(
        self,
        records: Sequence[Record] | str | Path,
        window: int,
        channels: Sequence[str | int] | None = None,
        normalize: Normalize | ChannelStats = "file",
        *,
        short_clips: ShortClips = "pad",
        rate: float | None = None,
        min_length: int = 1,
        cover: bool = False,
        strict: bool = False,
        seed: int = 0,
        key: str | None = None,
        cache: bool = False,
        expect_channels: int | None = None,
    ) -> None:
        skip_below = short_clip_limit(window, short_clips)
        self.signals = SignalSource(
            records,
            channels,
            normalize,
            rate,
            min_length,
            strict,
            key,
            cache,
            skip_below,
            expect_channels,
        )
        super().__init__(self.signals, window, cover=cover, seed=seed, strict=strict)


class SignalFileDataset(_SignalFacts, FileDataset):
    """Whole signal streams, for extraction and probes (never substituted).

    Arguments are those of :class:`SignalSource` (``channels``, ``normalize``, ``rate``,
    ``min_length``, ``strict``, ``key``, ``cache``), by keyword.

    Shape:
        item ``"x"``: ``(t, c)`` float32 with ``t == item["length"]``.
    """

    def __init__(self, records: Sequence[Record] | str | Path, **options: Any) -> None:
        self.signals = SignalSource(records, **options)
        super().__init__(self.signals)
