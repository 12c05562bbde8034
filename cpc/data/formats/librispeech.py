"""LibriSpeech and Libri-light trees as a manifest with speaker, chapter and transcript.

Both corpora keep ``SPEAKER/CHAPTER/…flac`` (Libri-light: ``SPEAKER/BOOK/…flac``), so
they train as folders with ``data.group_from: grandparent``
(``configs/speech_librispeech.yaml``). This module writes the manifest that also brings
what the folder names and side files know, for probes and for speaker grouping without
``group_from``:

- **LibriSpeech** (openslr.org/12): ``SPEAKER/CHAPTER/SPEAKER-CHAPTER-UTT.flac`` and one
  ``SPEAKER-CHAPTER.trans.txt`` per chapter, lines ``SPEAKER-CHAPTER-UTT TRANSCRIPT``.
  A file whose name is ``SPEAKER-CHAPTER-UTT`` but whose folders say another speaker or
  chapter is reported as ``misplaced`` and left out (its speaker would be a guess).
- **Libri-light** (facebookresearch/libri-light ``data_preparation``):
  ``SPEAKER/BOOK_TITLE/FILE.flac`` beside ``FILE.json`` (``{"speaker": "960",
  "book_meta": {...}, "snr": ..., "voice_activity": ...}``): no transcript; a side file
  whose ``speaker`` differs from the folder is ``misplaced`` too.

Columns: ``path`` (relative to the manifest's folder), ``id`` (the file's stem),
``speaker``, ``chapter`` (the chapter or book folder), ``transcript`` (empty for
Libri-light or an utterance missing from its ``.trans.txt``) and ``duration`` (seconds,
from the header: nothing is decoded). Unreadable files are reported by path and left
out, as everywhere else.
"""

from __future__ import annotations

import csv
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import soundfile as sf

from cpc.data.scan import scan_folder
from cpc.errors import DataError

#: The manifest's columns, in order.
COLUMNS = ("path", "id", "speaker", "chapter", "transcript", "duration")
_UTTERANCE = re.compile(r"^(\d+)-(\d+)-(\d+)$")


@dataclass
class LibriManifest:
    """What :func:`write_librispeech_manifest` wrote and left out."""

    path: Path
    rows: int = 0
    speakers: set[str] = field(default_factory=set)
    transcripts: int = 0
    seconds: float = 0.0
    skipped: list[tuple[str, str]] = field(default_factory=list)


def _transcripts(chapter: Path, cache: dict[Path, dict[str, str]]) -> dict[str, str]:
    """``utterance id -> transcript`` of a chapter folder's ``*.trans.txt`` (read once)."""
    if chapter not in cache:
        table: dict[str, str] = {}
        for trans in sorted(chapter.glob("*.trans.txt")):
            for line in trans.read_text(encoding="utf-8").splitlines():
                utt, _, text = line.strip().partition(" ")
                if utt:
                    table[utt] = text.strip()
        cache[chapter] = table
    return cache[chapter]


def _side_speaker(file: Path) -> str | None:
    """The ``speaker`` of a Libri-light ``.json`` side file (None: no usable one)."""
    side = file.with_suffix(".json")
    if not side.is_file():
        return None
    try:
        meta = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    speaker = meta.get("speaker") if isinstance(meta, dict) else None
    return None if speaker is None else str(speaker)


def librispeech_row(
    file: Path, cache: dict[Path, dict[str, str]]
) -> dict[str, str] | tuple[str, str]:
    """The manifest row of one file (``path`` absolute), or ``(path, reason)``."""
    speaker, chapter, stem = file.parent.parent.name, file.parent.name, file.stem
    transcript = ""
    named = _UTTERANCE.match(stem)
    if named is not None:
        if named.group(1, 2) != (speaker, chapter):
            return str(file), f"misplaced: {stem} lies in {speaker}/{chapter}"
        transcript = _transcripts(file.parent, cache).get(stem, "")
    else:
        side = _side_speaker(file)
        if side is not None and side != speaker:
            return str(file), f"misplaced: its .json says speaker {side}, its folder {speaker}"
    try:
        info = sf.info(str(file))
    except (RuntimeError, sf.LibsndfileError) as err:
        return str(file), f"unreadable: {err}"
    if info.frames <= 0:
        return str(file), "empty: no audio frames"
    return {
        "path": str(file),
        "id": stem,
        "speaker": speaker,
        "chapter": chapter,
        "transcript": transcript,
        "duration": f"{info.frames / info.samplerate:.4f}",
    }


def write_librispeech_manifest(
    root: str | Path, out: str | Path, *, overwrite: bool = False
) -> LibriManifest:
    """Write the manifest of a LibriSpeech or Libri-light tree (module docstring).

    ``root`` may be the corpus folder (``LibriSpeech/``, holding ``train-clean-100/`` and
    more) or one subset. The file is written beside itself and renamed into place.

    Raises:
        DataError: ``root`` is not a folder, holds no ``.flac``, or ``out`` exists and
            ``overwrite`` is false.

    """
    root, out = Path(root), Path(out)
    if not root.is_dir():
        raise DataError(str(root), "not found: no such folder")
    if out.exists() and not overwrite:
        raise DataError(str(out), "exists: pass --overwrite to replace it")
    scan = scan_folder(root, (".flac",))
    result = LibriManifest(out, skipped=list(scan.skipped))
    cache: dict[Path, dict[str, str]] = {}
    rows = []
    for file in scan.files:
        row = librispeech_row(file, cache)
        if isinstance(row, tuple):
            result.skipped.append(row)
            continue
        row["path"] = os.path.relpath(os.path.abspath(row["path"]), os.path.abspath(out.parent))
        rows.append(row)
        result.speakers.add(row["speaker"])
        result.transcripts += bool(row["transcript"])
        result.seconds += float(row["duration"])
    if not rows:
        raise DataError(str(root), f"no usable .flac ({len(result.skipped)} left out)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, out)
    result.rows = len(rows)
    return result
