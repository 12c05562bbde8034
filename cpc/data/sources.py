"""Where records come from: a folder scanned recursively, or a manifest table.

Both audio and signal data sets list their files the same way, so the listing lives
here once. A manifest is a CSV (comma) or TSV (tab) file whose header names a ``path``
column and any optional columns a modality understands (``speaker``, ``label``,
``writer``, ``duration``). Relative paths are resolved against the manifest's folder,
so a corpus and its manifest can move together.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path

from cpc.data.errors import DataError


def list_files(folder: str | Path, extensions: Iterable[str]) -> list[Path]:
    """Every file under ``folder`` whose suffix is one of ``extensions``, sorted.

    Args:
        folder: The root folder, searched recursively.
        extensions: Suffixes with the dot (``".wav"``); matched case-insensitively.

    Returns:
        The matching files in sorted order, so listings are reproducible.

    """
    root = Path(folder)
    if not root.is_dir():
        raise DataError(str(root), "not found: no such folder")
    wanted = {ext.lower() for ext in extensions}
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in wanted and p.is_file())


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
