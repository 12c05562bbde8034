"""Pen and sensor streams: readers, gap filling, resampling, normalisation, data sets.

A stream is a ``(time, channels)`` array, read from ``.npy``, ``.npz``, ``.csv``/``.tsv``
or ``.txt`` (the SVC2004 signature format, or a whitespace table). Every file goes
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
from torch.utils.data import Dataset

from cpc.data.errors import DataError, EmptyDatasetError, SkipReport, load_or_next
from cpc.data.signal_io import Signal, fill_missing, read_signal, resample_uniform
from cpc.data.sources import list_files, read_manifest

SIGNAL_EXTENSIONS = (".npy", ".npz", ".csv", ".tsv", ".txt")

#: Channels resampled by nearest value instead of linearly (they are on/off states).
DISCRETE_CHANNELS = frozenset({"button"})

_EPS = 1e-8


@dataclass(frozen=True)
class SignalRecord:
    """One signal file and its label (writer, class), before reading."""

    path: str
    label: str


def signal_records(
    source: str | Path, label_fn: Callable[[Path], str] | None = None
) -> list[SignalRecord]:
    """List the signal files of a folder, or the rows of a manifest, as records.

    Args:
        source: A folder (searched recursively for .npy/.npz/.csv/.tsv/.txt, any case)
            or a CSV/TSV manifest with a ``path`` column and a ``label`` or ``writer``
            column.
        label_fn: Label from a file path where the manifest gives none. Default: the
            parent folder's name. For SVC2004 (``U12S3.TXT``) use :func:`svc2004_writer`.

    Returns:
        The records, in folder-sorted or manifest order.

    """
    label_of = label_fn or (lambda p: p.parent.name)
    root = Path(source)
    if root.is_dir():
        return [SignalRecord(str(f), label_of(f)) for f in list_files(root, SIGNAL_EXTENSIONS)]
    return [
        SignalRecord(
            row["path"], row.get("label") or row.get("writer") or label_of(Path(row["path"]))
        )
        for row in read_manifest(root)
    ]


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


class _SignalSet(Dataset[dict[str, Any]]):
    """Reads every record once at construction to validate it and gather statistics."""

    def __init__(
        self,
        records: Sequence[SignalRecord] | str | Path,
        channels: Sequence[str | int] | None,
        normalize: Normalize | ChannelStats,
        rate: float | None,
        min_length: int,
        strict: bool,
        key: str | None,
        cache: bool,
        window: int | None = None,
    ) -> None:
        if isinstance(normalize, str) and normalize not in ("file", "none", "dataset"):
            raise ValueError(f"normalize must be file/none/dataset or ChannelStats: {normalize!r}")
        if rate is not None and rate <= 0:
            raise ValueError(f"rate must be positive, got {rate}")
        if min_length < 1:
            raise ValueError(f"min_length must be at least 1, got {min_length}")
        listed = signal_records(records) if isinstance(records, str | Path) else records
        self.normalize, self.rate, self.key = normalize, rate, key
        self.min_length, self.strict = min_length, strict
        self.report = SkipReport()
        self._select: list[str | int] | None = None if channels is None else list(channels)
        #: Names of the channels kept, in order (from the first usable file).
        self.channels: list[str] = []
        self._bad: set[int] = set()
        self._cache: dict[str, np.ndarray] = {}
        kept: list[tuple[SignalRecord, int]] = []
        moments: _Moments | None = None
        for record in listed:
            self.report.checked += 1
            try:
                values, names = self._prepare(record.path, notes=True)
            except DataError as err:
                self.report.skip(err.path, err.reason, strict)
                continue
            length = values.shape[0]
            if length < min_length:
                reason = f"too short: {length} steps < min_length {min_length}"
                self.report.skip(record.path, reason, strict)
                continue
            if window is not None and length < window:
                self.report.skip(record.path, f"short clip: {length} steps < window {window}")
                continue
            if not kept:
                self.channels = names
                self._select = self._select or list(names)
            kept.append((record, length))
            if cache:
                self._cache[record.path] = values.astype(np.float32)
            if normalize == "dataset":
                moments = moments or _Moments(values.shape[1])
                moments.add(values)
        if not kept:
            source = str(records) if isinstance(records, str | Path) else "signal records"
            raise EmptyDatasetError(source, self.report)
        #: Statistics used by ``normalize="dataset"`` (or the ones passed in); save them.
        self.stats: ChannelStats | None = None
        if isinstance(normalize, ChannelStats):
            self.stats = normalize
        elif moments is not None:
            self.stats = moments.stats(self.channels)
        if self.stats is not None and self.stats.channels != self.channels:
            raise ValueError(f"stats cover {self.stats.channels}, data has {self.channels}")
        #: Label names; an item's ``"label"`` is an index into this list.
        self.labels: list[str] = sorted({r.label for r, _ in kept})
        index = {name: i for i, name in enumerate(self.labels)}
        self._files = [(r.path, index[r.label], n) for r, n in kept]

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

    @property
    def groups(self) -> list[int]:
        """Label index of every item, for :class:`~cpc.data.samplers.GroupedBatchSampler`."""
        return [self._files[self._file_of(i)][1] for i in range(len(self))]

    def _file_of(self, index: int) -> int:
        return index

    def __len__(self) -> int:
        return len(self._files)

    def _path(self, index: int) -> str:
        return self._files[self._file_of(index)][0]

    def _load(self, index: int) -> dict[str, Any]:
        raise NotImplementedError

    def __getitem__(self, index: int) -> dict[str, Any]:
        """Item ``index``, or the next loadable one if its file fails to read."""
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        return load_or_next(
            index, len(self), self._load, self._bad, self.report, self._path, self.strict
        )


class SignalWindowDataset(_SignalSet):
    """Random fixed-length windows of signal streams for CPC training.

    Offsets come from a generator seeded by ``(seed, epoch, index)``; call
    :meth:`set_epoch` every epoch. Streams shorter than ``window`` follow
    ``short_clips`` exactly as in :class:`~cpc.data.audio.AudioWindowDataset`:
    ``"pad"`` zero-pads and reports the true ``"length"``, ``"skip"`` drops them at
    construction (recorded in :attr:`report`).

    Args:
        records: Records, or a folder / manifest path passed to :func:`signal_records`.
        window: Window length in time steps (after resampling).
        channels: Channel names or column positions to keep, in order. ``None``: all
            channels of the first usable file (for SVC2004, the defaults in the module
            docstring); files lacking one are skipped.
        normalize: ``"file"`` (z-score each channel per file; drops absolute position
            and scale), ``"none"``, ``"dataset"`` (z-score with statistics of these
            records, exposed as :attr:`stats`), or a :class:`ChannelStats` from the
            training set (for validation data or a loaded checkpoint).
        short_clips: ``"pad"`` or ``"skip"``.
        rate: Resample to this many Hz when a file has timestamps; ``None`` keeps
            the recorded points.
        min_length: Streams shorter than this are skipped; pass the encoder's
            receptive field.
        cover: If true a stream yields ``max(1, length // window)`` items per epoch.
        strict: Raise :class:`DataError` on the first bad file instead of skipping.
        seed: Base seed of the window offsets.
        key: Array name to read from ``.npz`` files (default: the first array).
        cache: Keep the prepared streams in memory (small corpora such as SVC2004).

    Shape:
        item ``"x"``: ``(window, c)`` float32; ``"length"``, ``"label"``, ``"index"``:
        ints.

    """

    def __init__(
        self,
        records: Sequence[SignalRecord] | str | Path,
        window: int,
        channels: Sequence[str | int] | None = None,
        normalize: Normalize | ChannelStats = "file",
        *,
        short_clips: Literal["pad", "skip"] = "pad",
        rate: float | None = None,
        min_length: int = 1,
        cover: bool = False,
        strict: bool = False,
        seed: int = 0,
        key: str | None = None,
        cache: bool = False,
    ) -> None:
        if window < 1:
            raise ValueError(f"window must be positive, got {window}")
        if short_clips not in ("pad", "skip"):
            raise ValueError(f"short_clips must be 'pad' or 'skip', got {short_clips!r}")
        skip_below = window if short_clips == "skip" else None
        super().__init__(
            records, channels, normalize, rate, min_length, strict, key, cache, skip_below
        )
        self.window, self.seed, self.epoch = window, seed, 0
        self._items = [
            f
            for f, (_, _, n) in enumerate(self._files)
            for _ in range(max(1, n // window) if cover else 1)
        ]

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose window offsets :meth:`__getitem__` draws.

        DataLoader workers hold copies of the data set made when an epoch's iterator
        starts, so call this before ``iter(loader)``, and do not combine it with
        ``persistent_workers=True`` (the workers would keep the first epoch).
        """
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self._items)

    def _file_of(self, index: int) -> int:
        return self._items[index]

    def _load(self, index: int) -> dict[str, Any]:
        path, label, _ = self._files[self._items[index]]
        x = self._normalized(path)  # normalised over the whole stream, then cut
        length = int(x.shape[0])
        if length > self.window:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            offset = int(rng.integers(0, length - self.window + 1))
            x, length = x[offset : offset + self.window], self.window
        elif length < self.window:  # (t, c) -> (window, c)
            x = torch.nn.functional.pad(x, (0, 0, 0, self.window - length))
        return {"x": x.contiguous(), "length": length, "label": label, "index": index}


class SignalFileDataset(_SignalSet):
    """Whole signal streams, for feature extraction and probes.

    Arguments are those of :class:`SignalWindowDataset` without the windowing ones.

    Shape:
        item ``"x"``: ``(t, c)`` float32 with ``t == item["length"]``.
    """

    def __init__(
        self,
        records: Sequence[SignalRecord] | str | Path,
        channels: Sequence[str | int] | None = None,
        normalize: Normalize | ChannelStats = "file",
        *,
        rate: float | None = None,
        min_length: int = 1,
        strict: bool = False,
        key: str | None = None,
        cache: bool = False,
    ) -> None:
        super().__init__(records, channels, normalize, rate, min_length, strict, key, cache)

    @property
    def paths(self) -> list[str]:
        """The usable files, in item order."""
        return [path for path, _, _ in self._files]

    def _load(self, index: int) -> dict[str, Any]:
        path, label, _ = self._files[index]
        x = self._normalized(path)
        return {"x": x, "length": int(x.shape[0]), "label": label, "path": path, "index": index}
