"""Where records come from: a folder scanned recursively, or a manifest table.

Both audio and signal data sets list their files the same way, so the listing lives
here once. A manifest is a CSV (comma) or TSV (tab) file whose header names a ``path``
column and any optional columns a modality understands (``speaker``, ``label``,
``writer``, ``duration``). Relative paths are resolved against the manifest's folder,
so a corpus and its manifest can move together.

Every record has a *group* (speaker, writer): what same-group batches and
same-group negatives use. ``data.group_from`` names where it comes from
(:func:`group_rule`): ``parent`` (the folder holding the file), ``grandparent``
(LibriSpeech and LibriLight keep ``speaker/chapter/file.flac``), ``regex:PATTERN``
(the first capture group of a search in the path, e.g. ``regex:/([0-9]+)/[^/]+$``)
or ``column:NAME`` (a manifest column). The default, ``auto``, takes the modality's
manifest column (``speaker`` for audio, ``label`` or ``writer`` for signals) when a row
has one and the parent folder otherwise.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cpc.data.scan import scan_folder
from cpc.errors import DataError

GroupFn = Callable[[Path, dict[str, str]], str]
"""A group name from a file's path and its manifest row (empty for folder listings)."""


@dataclass(frozen=True)
class Record:
    """One file and what is known about it before reading.

    Attributes:
        path: The file.
        group: Speaker or writer name (see the module docstring).
        label: Optional label from the manifest's ``label`` column.
        duration: Optional duration in seconds from the manifest (informative only).
        problem: Why the entry cannot be used, found while listing (a folder named
            ``x.wav``, a dangling link, a link loop); the source reports it as skipped.
        audio: Where the samples are when ``path`` is an id (a Kaldi utterance, a
            Lhotse cut, a row of a Hugging Face dataset, a WebDataset key): a file, or a
            locator of :mod:`cpc.data.formats.clips`. None: ``path`` is the file.
        start: First second of the segment read from that recording.
        end: Second where the segment ends; None: the end of the recording.
        samples: The file's length in samples as its listing gives it (a fairseq
            manifest's ``num_samples``, at the model's rate as wav2vec manifests are);
            training windows use it instead of reading the file's header. None: unknown.

    """

    path: str
    group: str
    label: str | None = None
    duration: float | None = None
    problem: str | None = None
    audio: str | None = None
    start: float = 0.0
    end: float | None = None
    samples: int | None = None


def group_rule(
    spec: str, columns: Sequence[str] = (), from_path: Callable[[Path], str] | None = None
) -> GroupFn:
    """The group of a file from a ``data.group_from`` spec (see the module docstring).

    Args:
        spec: ``auto``, ``parent``, ``grandparent``, ``regex:PATTERN`` or ``column:NAME``.
        columns: The manifest columns ``auto`` tries first, in order.
        from_path: A Python rule replacing the parent folder in ``auto`` (e.g.
            :func:`cpc.data.signals.svc2004_writer`).

    Raises:
        ValueError: An unknown spec or a pattern that does not compile (names it).

    """
    if from_path is not None:
        fallback = from_path
        return lambda path, row: next((row[c] for c in columns if row.get(c)), fallback(path))
    if spec == "parent":
        return lambda path, row: path.parent.name
    if spec == "grandparent":
        return lambda path, row: path.parent.parent.name
    if spec == "auto":
        return lambda path, row: next((row[c] for c in columns if row.get(c)), path.parent.name)
    if spec.startswith("regex:"):
        try:
            pattern = re.compile(spec[len("regex:") :])
        except re.error as err:
            raise ValueError(f"data.group_from={spec!r}: bad regular expression ({err})") from err

        def by_pattern(path: Path, row: dict[str, str]) -> str:
            found = pattern.search(path.as_posix())
            if found is None:
                raise DataError(str(path), f"no group: {pattern.pattern!r} does not match")
            return found.group(1) if pattern.groups else found.group(0)

        return by_pattern
    if spec.startswith("column:"):
        name = spec[len("column:") :].strip().lower()

        def by_column(path: Path, row: dict[str, str]) -> str:
            if not row.get(name):
                raise DataError(str(path), f"no group: manifest column {name!r} is empty")
            return row[name]

        return by_column
    raise ValueError(
        f"data.group_from={spec!r}: use auto, parent, grandparent, regex:PATTERN or column:NAME"
    )


def list_records(
    source: str | Path,
    extensions: Iterable[str],
    group: GroupFn,
) -> list[Record]:
    """The files of a folder, or the rows of a manifest, as records.

    Args:
        source: A folder (searched recursively for ``extensions``, any case) or a
            CSV/TSV manifest with a ``path`` column and optional ``label``,
            ``duration`` and group columns.
        extensions: Suffixes with the dot.
        group: The group of each file (:func:`group_rule`).

    Raises:
        DataError: An unreadable manifest, a bad duration, a file without a group.

    """
    root = Path(source)
    if root.is_dir():
        scan = scan_folder(root, extensions)
        found = [Record(str(f), group(f, {})) for f in scan.files]
        return found + [Record(path, "", problem=why) for path, why in scan.skipped]
    records = []
    for row in read_manifest(root):
        try:
            duration = float(row["duration"]) if row.get("duration") else None
        except ValueError as err:
            raise DataError(str(root), f"malformed: bad duration for {row['path']}") from err
        path = Path(row["path"])
        records.append(Record(row["path"], group(path, row), row.get("label") or None, duration))
    return records


def list_files(folder: str | Path, extensions: Iterable[str]) -> list[Path]:
    """Every file under ``folder`` whose suffix is one of ``extensions``, sorted.

    Args:
        folder: The root folder, searched recursively.
        extensions: Suffixes with the dot (``".wav"``); matched case-insensitively.

    Returns:
        The matching regular files in sorted order, so listings are reproducible
        (symlinked folders followed once; see :func:`cpc.data.scan.scan_folder`).

    """
    root = Path(folder)
    if not root.is_dir():
        raise DataError(str(root), "not found: no such folder")
    return scan_folder(root, extensions).files


def _delimiter(path: Path, header: str) -> str:
    if path.suffix.lower() == ".tsv":
        return "\t"
    if path.suffix.lower() == ".csv":
        return ","
    return "\t" if "\t" in header else ","


def read_manifest(path: str | Path) -> list[dict[str, str]]:
    """Rows of a manifest, each a dict keyed by lower-cased column name.

    The ``path`` entry of every row is resolved against the manifest's folder when it
    is relative. Blank lines are ignored.

    Args:
        path: A ``.csv`` or ``.tsv`` file (other suffixes: tab if the header has one,
            else comma).

    Returns:
        One dict per row, with at least a non-empty ``"path"``.

    Raises:
        DataError: The manifest cannot be read, has no ``path`` column (the message
            lists the columns found), or a row has an empty path.

    """
    manifest = Path(path)
    try:
        text = manifest.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(str(manifest), f"unreadable: {err}") from err
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise DataError(str(manifest), "empty: the manifest has no header")
    reader = csv.reader(lines, delimiter=_delimiter(manifest, lines[0]))
    header = [name.strip().lower() for name in next(reader)]
    if "path" not in header:
        raise DataError(str(manifest), f"no 'path' column: the header has columns {header}")
    rows = []
    for line_no, fields in enumerate(reader, start=2):
        row = {name: value.strip() for name, value in zip(header, fields, strict=False)}
        if not row.get("path"):
            raise DataError(str(manifest), f"malformed: line {line_no} has no path")
        file = Path(row["path"])
        row["path"] = str(file if file.is_absolute() else manifest.parent / file)
        rows.append(row)
    return rows
