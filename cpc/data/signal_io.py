"""Reading and cleaning pen and sensor files: every format becomes one :class:`Signal`.

Formats, chosen by suffix (case-insensitive):

- ``.npy``: a ``(t,)`` or ``(t, c)`` numeric array; channels are named ``"0"``, ``"1"``...
- ``.npz``: the array named ``key``, or the first array of the archive.
- ``.csv`` / ``.tsv``: a table, header optional (a first row with a non-numeric field
  is a header). Non-numeric columns are dropped (and noted); empty, ``nan``, ``NA``
  fields are missing values. A column named ``t``, ``time``, ``time_s`` or
  ``timestamp`` gives timestamps in seconds, ``time_ms`` or ``timestamp_ms`` in
  milliseconds; it is not a channel.
- ``.txt``: the SVC2004 format when the first line is a single integer (the number of
  points), then rows of ``X Y timestamp button azimuth altitude pressure`` (Task 2) or
  ``X Y timestamp button`` (Task 1), timestamps in ms; any other ``.txt`` is read as a
  whitespace-separated table.

Readers raise :class:`~cpc.data.errors.DataError` for anything they cannot read.
:func:`fill_missing` and :func:`resample_uniform` clean a stream's values afterwards.
"""

from __future__ import annotations

import csv
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cpc.errors import DataError

#: Columns of an SVC2004 file, in file order (Task 1 files stop after ``button``).
SVC2004_COLUMNS = ("x", "y", "timestamp", "button", "azimuth", "altitude", "pressure")

#: Default SVC2004 channels, in the order returned; see :mod:`cpc.data.signals`.
SVC2004_CHANNELS = ("x", "y", "pressure", "button", "azimuth", "altitude")

#: Table columns read as timestamps, with their unit in seconds.
TIME_COLUMNS = {
    "t": 1.0,
    "time": 1.0,
    "time_s": 1.0,
    "timestamp": 1.0,
    "time_ms": 1e-3,
    "timestamp_ms": 1e-3,
}

_MISSING = frozenset({"", "nan", "na", "n/a", "null", "none", "?"})


@dataclass
class Signal:
    """A stream as read from disk, before any cleaning.

    Attributes:
        values: The samples, float64, possibly with NaN.
        channels: One name per column of ``values``.
        timestamps: Time of each row in seconds, when the file has them.
        notes: Repairs made while reading (dropped columns, a short SVC2004 file).

    Shape:
        values: ``(t, c)``; timestamps: ``(t,)``.

    """

    values: np.ndarray
    channels: list[str]
    timestamps: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)


def read_signal(path: str | Path, key: str | None = None) -> Signal:
    """Read one signal file in any supported format.

    Args:
        path: The file.
        key: Array name for ``.npz`` archives (default: the first array).

    Returns:
        The stream with its channel names and timestamps.

    Raises:
        DataError: The file is unreadable, empty, malformed or of unknown type.

    """
    file = Path(path)
    suffix = file.suffix.lower()
    try:
        if suffix == ".npy":
            return _from_array(str(file), np.load(file, allow_pickle=False))
        if suffix == ".npz":
            with np.load(file, allow_pickle=False) as archive:
                if not archive.files:
                    raise DataError(str(file), "empty: no arrays in the archive")
                name = key or archive.files[0]
                if name not in archive.files:
                    raise DataError(str(file), f"missing key: {name!r} not in {archive.files}")
                return _from_array(str(file), archive[name])
        if suffix in (".csv", ".tsv", ".txt"):
            lines = [line for line in file.read_text(encoding="utf-8-sig").splitlines()]
            lines = [line for line in lines if line.strip()]
            if not lines:
                raise DataError(str(file), "empty: no lines")
            first = lines[0].split()
            if suffix == ".txt" and len(first) == 1 and first[0].isdigit():
                return _parse_svc2004(str(file), lines)
            return _parse_table(str(file), lines, suffix)
    except DataError:
        raise
    except (OSError, ValueError, EOFError, UnicodeDecodeError, zipfile.BadZipFile) as err:
        raise DataError(str(file), f"unreadable: {err}") from err
    raise DataError(str(file), f"unsupported: unknown suffix {suffix!r}")


def _from_array(path: str, array: np.ndarray) -> Signal:
    if not np.issubdtype(array.dtype, np.number) and array.dtype != np.bool_:
        raise DataError(path, f"unsupported: array of dtype {array.dtype}")
    if array.ndim == 1:
        array = array[:, None]  # (t,) -> (t, 1)
    if array.ndim != 2:
        raise DataError(path, f"unsupported: array of shape {array.shape}, expected (t, c)")
    channels = [str(j) for j in range(array.shape[1])]
    return Signal(array.astype(np.float64), channels)


def _parse_svc2004(path: str, lines: list[str]) -> Signal:
    announced = int(lines[0].split()[0])
    rows = [line.split() for line in lines[1 : announced + 1]]
    if not rows:
        raise DataError(path, "empty: an SVC2004 file with no points")
    widths = sorted({len(row) for row in rows})
    if widths not in ([4], [7]):
        raise DataError(path, f"malformed: SVC2004 rows of {widths} columns, expected 4 or 7")
    try:
        table = np.array(rows, dtype=np.float64)  # (t, 4 or 7)
    except ValueError as err:
        raise DataError(path, f"malformed: non-numeric SVC2004 field ({err})") from err
    columns = SVC2004_COLUMNS[: table.shape[1]]
    names = [name for name in SVC2004_CHANNELS if name in columns]
    notes = []
    if len(rows) < announced:
        notes.append(f"header announces {announced} points, file has {len(rows)}")
    values = table[:, [columns.index(name) for name in names]]
    return Signal(values, names, table[:, columns.index("timestamp")] / 1000.0, notes)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _split(lines: list[str], suffix: str) -> list[list[str]]:
    if suffix == ".txt":
        return [line.split() for line in lines]
    delimiter = "\t" if suffix == ".tsv" else ","
    if delimiter not in lines[0] and ";" in lines[0]:
        delimiter = ";"
    return [[field.strip() for field in row] for row in csv.reader(lines, delimiter=delimiter)]


def _parse_table(path: str, lines: list[str], suffix: str) -> Signal:
    rows = _split(lines, suffix)
    header: list[str] = []
    if any(f.lower() not in _MISSING and not _is_number(f) for f in rows[0]):
        header, rows = rows[0], rows[1:]
    if not rows:
        raise DataError(path, "empty: a table with no rows")
    width = max(len(row) for row in rows)
    names = header[:width] + [str(j) for j in range(len(header), width)]
    table = np.full((len(rows), width), np.nan)  # (t, columns)
    numeric = [True] * width
    for i, row in enumerate(rows):
        for j, text in enumerate(row[:width]):
            if text.lower() in _MISSING:
                continue
            try:
                table[i, j] = float(text)
            except ValueError:
                numeric[j] = False
    keep = [j for j in range(width) if numeric[j]]
    notes = [f"dropped non-numeric columns {[names[j] for j in range(width) if not numeric[j]]}"]
    notes = notes if len(keep) < width else []
    timestamps = None
    for j in keep:
        if names[j].lower() in TIME_COLUMNS:
            timestamps = table[:, j] * TIME_COLUMNS[names[j].lower()]
            keep.remove(j)
            break
    if not keep:
        raise DataError(path, "empty: no numeric columns")
    return Signal(table[:, keep], [names[j] for j in keep], timestamps, notes)


def fill_missing(values: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """Fill NaN and infinite values by per-channel linear interpolation over time.

    Values before the first or after the last valid one take that nearest valid value.
    A channel with no valid value is filled with zeros.

    Args:
        values: The stream.

    Returns:
        A filled copy, and the indices of the channels that had no valid value.

    Shape:
        values: ``(t, c)``; output: ``(t, c)``.

    """
    out = np.array(values, dtype=np.float64)
    steps = np.arange(out.shape[0])
    dead = []
    for j in range(out.shape[1]):
        valid = np.isfinite(out[:, j])
        if not valid.any():
            out[:, j] = 0.0
            dead.append(j)
        elif not valid.all():
            out[~valid, j] = np.interp(steps[~valid], steps[valid], out[valid, j])
    return out, dead


def resample_uniform(
    values: np.ndarray, timestamps: np.ndarray, rate: float, discrete: Sequence[bool] = ()
) -> np.ndarray:
    """Linear interpolation of a stream onto a uniform time grid.

    Points with non-finite or repeated timestamps are dropped (the first of a repeat is
    kept) and the rest sorted by time. The grid starts at the first timestamp and has
    step ``1 / rate``. Channels flagged ``discrete`` are rounded after interpolation,
    which makes them nearest-neighbour.

    Args:
        values: The stream, without missing values.
        timestamps: Time of each point, in seconds.
        rate: Target rate in Hz.
        discrete: One flag per channel.

    Returns:
        The resampled stream (unchanged when fewer than two distinct times exist).

    Raises:
        ValueError: The grid would have over 1000 times more points than the stream
            (a corrupt timestamp), instead of allocating it.

    Shape:
        values: ``(t, c)``; timestamps: ``(t,)``; output: ``(t', c)``.

    """
    keep = np.isfinite(timestamps)
    times, first = np.unique(timestamps[keep], return_index=True)
    if times.shape[0] < 2:
        return values
    points = values[keep][first]  # (t'', c), sorted by time
    steps = int(np.floor((times[-1] - times[0]) * rate + 1e-9)) + 1
    if steps > 1000 * times.shape[0]:
        raise ValueError(f"timestamps span {times[-1] - times[0]:.4g} s for {len(times)} points")
    grid = times[0] + np.arange(steps) / rate
    out = np.stack([np.interp(grid, times, points[:, j]) for j in range(values.shape[1])], 1)
    for j, flag in enumerate(discrete):
        if flag:
            out[:, j] = np.round(out[:, j])
    return out
