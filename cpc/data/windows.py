"""One window dataset and one whole-file dataset over a small source protocol.

Audio and signal streams differ in how a file is read (soundfile and a resampler;
a table reader, gap filling and normalisation) and in nothing else the trainer sees.
A :class:`Source` says what is known about its usable files (lengths, groups, paths)
and reads a stretch of one; :class:`FileSource` is the shared part of a source (the
probe loop: check every record once, report and skip what is unusable, name the
groups). On top of any source:

- :class:`WindowDataset` cuts random fixed-length training windows, seeded by
  ``(seed, epoch, index)``, padding short clips and reporting their true length;
- :class:`FileDataset` gives whole files for extraction and probes.

Every item has one schema: ``x``, ``length`` (valid steps of ``x``), ``group`` (an
index into :attr:`Source.group_names`) and ``index``; whole files add ``path``.

Shape:
    item ``"x"``: ``(t,)`` for audio, ``(t, c)`` for signals; a window has
    ``t == window``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal, Protocol

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from cpc.data.errors import SkipReport, load_or_next
from cpc.data.records import Record
from cpc.errors import DataError, EmptyDatasetError

ShortClips = Literal["pad", "skip"]

#: A window's valid part and a seeded generator -> the augmented part, same shape.
Augment = Callable[[Tensor, np.random.Generator], Tensor]

#: Mixed into the augmentation's seed so its draws never repeat the window offset's.
AUGMENT_STREAM = 7_777_777


class Source(Protocol):
    """Usable files of a modality and a way to read a stretch of one.

    Lengths count the steps a model sees (target-rate samples for audio, resampled
    points for signals).
    """

    report: SkipReport
    paths: list[str]
    lengths: list[int]
    groups: list[int]
    group_names: list[str]

    def read(self, index: int, offset: int = 0, frames: int | None = None) -> Tensor:
        """Steps ``[offset, offset + frames)`` of file ``index`` (fewer at its end).

        Raises:
            DataError: The file fails to decode.

        """
        ...


class FileSource:
    """The probe loop shared by every source: check each record once, keep the usable.

    Subclasses implement :meth:`probe` (length of a usable file, or raise
    :class:`DataError` with the reason) and :meth:`read`; :meth:`accept` sees every
    kept file (signals gather statistics there).

    Args:
        records: The files.
        min_length: Files shorter than this many steps are skipped (pass the
            encoder's receptive field plus the first offset).
        strict: Raise on the first unusable file instead of reporting it.
        skip_below: Files shorter than this are skipped as ``short clip`` (the
            window with ``short_clips="skip"``), never an error.
        unit: What a length counts, for messages (``samples``, ``steps``).
        name: The folder or manifest the records came from, for messages.

    """

    def __init__(
        self,
        records: Sequence[Record],
        min_length: int,
        strict: bool,
        skip_below: int | None = None,
        unit: str = "steps",
        name: str | None = None,
    ) -> None:
        if min_length < 1:
            raise ValueError(f"min_length must be at least 1, got {min_length}")
        self.min_length, self.strict = min_length, strict
        self.report = SkipReport()
        kept: list[tuple[Record, int]] = []
        for record in records:
            self.report.checked += 1
            if record.problem is not None:  # found unusable while listing the folder
                self.report.skip(record.path, record.problem, strict)
                continue
            try:
                length, payload = self.probe(record.path)
            except DataError as err:
                self.report.skip(err.path, err.reason, strict)
                continue
            if length < min_length:
                reason = f"too short: {length} {unit} < min_length {min_length}"
                self.report.skip(record.path, reason, strict)
                continue
            if skip_below is not None and length < skip_below:
                self.report.skip(record.path, f"short clip: {length} {unit} < {skip_below}")
                continue
            self.accept(record, payload, first=not kept)
            kept.append((record, length))
        if not kept:
            described = f"{len(records)} records (first: {records[0].path})" if records else ""
            raise EmptyDatasetError(name or described or "an empty list of records", self.report)
        #: Group (speaker, writer) names; an item's ``"group"`` indexes this list.
        self.group_names: list[str] = sorted({record.group for record, _ in kept})
        index = {name: i for i, name in enumerate(self.group_names)}
        self.paths = [record.path for record, _ in kept]
        self.lengths = [length for _, length in kept]
        self.groups = [index[record.group] for record, _ in kept]

    def probe(self, path: str) -> tuple[int, Any]:
        """Length of a usable file and anything :meth:`accept` needs; else DataError."""
        raise NotImplementedError

    def accept(self, record: Record, payload: Any, first: bool) -> None:
        """Called for every kept file, in order (``first`` for the first one)."""

    def read(self, index: int, offset: int = 0, frames: int | None = None) -> Tensor:
        """See :meth:`Source.read`."""
        raise NotImplementedError


def _pad_time(x: Tensor, length: int) -> Tensor:
    """Zero-pad ``x`` at the end of its first (time) axis to ``length``."""
    if x.shape[0] >= length:
        return x
    return torch.nn.functional.pad(x, [0, 0] * (x.dim() - 1) + [0, length - x.shape[0]])


class _SourceView(Dataset[dict[str, Any]]):
    """What every data set over a source exposes of it."""

    source: Source

    @property
    def report(self) -> SkipReport:
        """Files skipped at construction or found bad while reading."""
        return self.source.report

    @property
    def group_names(self) -> list[str]:
        """Group names; an item's ``"group"`` indexes this list."""
        return self.source.group_names


class WindowDataset(_SourceView):
    """Random fixed-length windows of a source's files, for CPC training.

    Each epoch draws a fresh offset for every item from a generator seeded by
    ``(seed, epoch, index)``, so a run is reproducible and a resumed run sees the same
    windows; call :meth:`set_epoch` at the start of every epoch. Files shorter than
    the window are zero-padded at the end and their true ``"length"`` reported, so the
    model masks the padding (a source built with ``skip_below=window`` has left them
    out instead). A file that fails to decode while training is reported and replaced
    by the next item (:func:`cpc.data.errors.load_or_next`): training may substitute a
    window, never extraction.

    Args:
        source: The files.
        window: Window length in steps (CPC paper: 20480 samples, 1.28 s at 16 kHz).
        cover: If true, a file yields ``max(1, length // window)`` items per epoch, each
            at its own random offset, so long files count in proportion to their
            length (CPC_audio cuts sequences into consecutive windows instead). If
            false, one window per file.
        seed: Base seed of the window offsets.
        strict: Raise the first decoding failure instead of substituting.
        augment: Applied to the valid part of each window with a generator seeded by
            ``(seed, epoch, index)`` and a stream of its own, so augmented windows are
            as reproducible as the offsets (:mod:`cpc.data.augment`); padding stays
            zero. None: windows as read.

    Shape:
        item ``"x"``: ``(window,)`` or ``(window, c)``; ``"length"``, ``"group"``,
        ``"index"``: ints.

    """

    def __init__(
        self,
        source: Source,
        window: int,
        *,
        cover: bool = False,
        seed: int = 0,
        strict: bool = False,
        augment: Augment | None = None,
    ) -> None:
        if window < 1:
            raise ValueError(f"window must be positive, got {window}")
        self.source, self.window, self.seed, self.epoch = source, window, seed, 0
        self.strict, self.augment = strict, augment
        self._bad: set[int] = set()
        self._items = [
            f
            for f, n in enumerate(source.lengths)
            for _ in range(max(1, n // window) if cover else 1)
        ]

    @property
    def groups(self) -> list[int]:
        """Group of every item, for :class:`~cpc.data.samplers.GroupedBatchSampler`."""
        return [self.source.groups[f] for f in self._items]

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose window offsets :meth:`__getitem__` draws.

        DataLoader workers hold copies of the data set made when an epoch's iterator
        starts, so call this before ``iter(loader)``, and do not combine it with
        ``persistent_workers=True`` (the workers would keep the first epoch).
        """
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self._items)

    def _path(self, index: int) -> str:
        return self.source.paths[self._items[index]]

    def _load(self, index: int) -> dict[str, Any]:
        f = self._items[index]
        total, offset = self.source.lengths[f], 0
        if total > self.window:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            offset = int(rng.integers(0, total - self.window + 1))
        x = self.source.read(f, offset, self.window)
        length = int(x.shape[0])
        if self.augment is not None:
            x = self.augment(
                x, np.random.default_rng([self.seed, self.epoch, index, AUGMENT_STREAM])
            )
        x = _pad_time(x, self.window).contiguous()  # (t, ...) -> (window, ...)
        return {"x": x, "length": length, "group": self.source.groups[f], "index": index}

    def __getitem__(self, index: int) -> dict[str, Any]:
        """Item ``index``, or the next loadable one if its file fails to decode."""
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        return load_or_next(
            index, len(self), self._load, self._bad, self.report, self._path, self.strict
        )


class FileDataset(_SourceView):
    """Whole files of a source, for feature extraction and probes.

    Never substitutes: a file that fails to decode raises :class:`DataError` naming
    it, so an extraction loop reports it and writes no row for it.

    Shape:
        item ``"x"``: ``(t,)`` or ``(t, c)`` with ``t == item["length"]``.
    """

    def __init__(self, source: Source) -> None:
        self.source = source

    @property
    def groups(self) -> list[int]:
        """Group of every file."""
        return list(self.source.groups)

    @property
    def paths(self) -> list[str]:
        """The usable files, in item order."""
        return list(self.source.paths)

    def __len__(self) -> int:
        return len(self.source.paths)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        path = self.source.paths[index]
        x = self.source.read(index)
        if x.shape[0] == 0:
            raise DataError(path, "empty: nothing decoded")
        group = self.source.groups[index]
        return {"x": x, "length": int(x.shape[0]), "group": group, "path": path, "index": index}


def short_clip_limit(window: int, short_clips: ShortClips) -> int | None:
    """``skip_below`` for a source: the window when short clips are skipped, else None."""
    if short_clips not in ("pad", "skip"):
        raise ValueError(f"short_clips must be 'pad' or 'skip', got {short_clips!r}")
    if window < 1:
        raise ValueError(f"window must be positive, got {window}")
    return window if short_clips == "skip" else None
