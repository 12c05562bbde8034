"""Write WebDataset shards from any corpus ``data.train`` takes (``cpc data shard``).

Every usable entry of the source (a folder, a manifest, fairseq, Kaldi, Lhotse, HF or
shards: :func:`cpc.data.audio.audio_records`) becomes one sample, in the source's
order, of tar shards ``PREFIX-000000.tar``, ``PREFIX-000001.tar`` ... that
:mod:`cpc.data.formats.webdataset` and :mod:`cpc.data.formats.stream` read back:

- ``KEY.flac`` / ``.wav`` / ``.ogg``: a whole file's encoded bytes, copied as they are
  (a file in another format, e.g. MP3 in an HF data set, is decoded and written as a
  float WAV); a *segment* (Kaldi ``segments``, a Lhotse cut) is cut out at its own rate
  and channels, as FLAC with the source's sample width for 8/16/24-bit sources (the
  same samples, bit for bit), else as WAV (32-bit integer or float);
- ``KEY.json``: ``{"id": ..., "speaker": ..., "label": ...}``: the entry's id in its
  source, its speaker (the group: ``data.group_from`` applies) and its manifest label
  when it has one. The id of an utterance, cut, row or shard sample is its own; the id
  of a file is its path relative to the source folder, or for a manifest to the deepest
  folder holding all its files (``train-clean-100/103/1240/103-1240-0000.flac`` listed
  with the rest of the subset: ``103/1240/103-1240-0000.flac``).

``KEY`` is the id without a file's extension, with any other dot of its last part
written ``_`` (webdataset splits a member name at the first dot of its file name).
A shard is closed before a sample would take it past ``shard_size`` bytes (tar headers
and padding counted: every shard file is at most that size), so an entry larger than the
limit gets a shard of its own. Entries that cannot be used are reported by id with the
reason and left out, as training does.

Nothing half-written is left behind: shards are written in a hidden folder inside the
output folder and moved into place once all are complete; on any error that folder is
removed and the output folder is as it was. ``shards.json`` records the pattern, the
counts and the source.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from cpc.data.audio import audio_records
from cpc.data.formats.clips import is_plain, locate_clip, open_audio
from cpc.data.records import Record, group_rule
from cpc.errors import ConfigError, DataError

#: Size units of :func:`parse_size`: decimal (as disks are sold) and binary.
UNITS = {
    "": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
    "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40,
}  # fmt: skip
_SIZE = re.compile(r"^\s*([-+]?(?:\d+(?:\.\d*)?|\.\d+))\s*([A-Za-z]*)\s*$")
#: soundfile's container name -> the extension the shard readers know.
_EXTENSIONS = {"FLAC": "flac", "WAV": "wav", "OGG": "ogg"}
#: How a segment is written, by its source's subtype: (read dtype, container, subtype).
_SEGMENT = {
    "PCM_S8": ("int16", "FLAC", "PCM_S8"),
    "PCM_16": ("int16", "FLAC", "PCM_16"),
    "PCM_24": ("int32", "FLAC", "PCM_24"),
    "PCM_32": ("int32", "WAV", "PCM_32"),
}
_FLOAT = ("float32", "WAV", "FLOAT")
_BLOCK, _RECORD = 512, tarfile.RECORDSIZE
SHARDS_JSON = "shards.json"


def parse_size(text: str) -> int:
    """Bytes of a size written ``1GB``, ``500MB``, ``2GiB``, ``1.5GB`` or ``1000000``.

    Raises:
        ConfigError: Not a size, an unknown unit, or not more than 0 bytes (one line).

    """
    match = _SIZE.match(str(text))
    unit = match.group(2).upper() if match else ""
    if match is None or unit not in UNITS:
        raise ConfigError(f"shard size {text!r} is not a size: write e.g. 1GB, 500MB or 2GiB")
    size = int(float(match.group(1)) * UNITS[unit])
    if size < 1:
        raise ConfigError(f"shard size {text!r} must be more than 0 bytes")
    return size


@dataclass
class ShardSummary:
    """What :func:`write_shards` wrote: ``pattern`` is what ``data.train`` takes."""

    pattern: str
    shards: int = 0
    items: int = 0
    bytes: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)


def _tar_size(name: str, size: int) -> int:
    """Bytes a member takes in a tar file: its header, its data padded to blocks, and a
    PAX header (an upper bound) when its name is long or not ASCII.
    """
    encoded = name.encode("utf-8")
    pax = 2 * _BLOCK + -(-len(encoded) // _BLOCK) * _BLOCK
    extra = pax if len(encoded) >= 100 or not name.isascii() else 0
    return _BLOCK + -(-size // _BLOCK) * _BLOCK + extra


def _file_size(members: int) -> int:
    """Bytes of a tar file whose members take ``members`` bytes (end blocks, record)."""
    return -(-(members + 2 * _BLOCK) // _RECORD) * _RECORD


def sample_id(record: Record, base: Path | None) -> str:
    """The id of an entry in its source: a file relative to ``base``, else its own id."""
    if not is_plain(record):
        return record.path
    path = os.path.abspath(record.path)
    if base is not None:
        rel = os.path.relpath(path, base)
        if not rel.startswith(".."):
            return Path(rel).as_posix()
    return Path(path).as_posix().lstrip("/")


def sample_key(ident: str, is_file: bool) -> str:
    """The tar key of an id (module docstring)."""
    head, _, last = ident.rpartition("/")
    if is_file and "." in last:
        last = last[: last.rindex(".")]
    last = last.replace(".", "_") or "_"
    return f"{head}/{last}" if head else last


def _encode(data: np.ndarray, rate: int, container: str, subtype: str) -> bytes:
    out = io.BytesIO()
    sf.write(out, data, rate, format=container, subtype=subtype)
    return out.getvalue()


def _clip_bytes(record: Record) -> tuple[bytes, str]:
    """A segment (or a file in a format the readers do not take), cut and encoded."""
    clip = locate_clip(record)
    with sf.SoundFile(open_audio(record.audio or record.path)) as f:
        dtype, container, subtype = _SEGMENT.get(f.subtype, _FLOAT)
        f.seek(clip.first)
        data = f.read(clip.frames, dtype=dtype, always_2d=True)
    if data.shape[0] != clip.frames:
        raise DataError(record.path, "unreadable: ends before its header says")
    return _encode(data, clip.rate, container, subtype), container.lower()


def sample_audio(record: Record) -> tuple[bytes, str]:
    """The encoded audio of an entry and its extension (module docstring).

    Raises:
        DataError: The audio cannot be read, or the segment lies outside its recording.

    """
    try:
        if record.start != 0.0 or record.end is not None:
            return _clip_bytes(record)
        opened = open_audio(record.audio or record.path)
        data = opened.getvalue() if isinstance(opened, io.BytesIO) else Path(opened).read_bytes()
        kind = _EXTENSIONS.get(sf.info(io.BytesIO(data)).format)
        if kind is None:
            return _clip_bytes(record)
        locate_clip(record)  # refuses empty files as training does
        return data, kind
    except (OSError, RuntimeError, sf.LibsndfileError) as err:
        raise DataError(record.path, f"unreadable: {err}") from None


def _meta(record: Record, ident: str) -> bytes:
    meta: dict[str, Any] = {"id": ident}
    if record.group:
        meta["speaker"] = record.group
    if record.label is not None:
        meta["label"] = record.label
    return json.dumps(meta, ensure_ascii=False).encode("utf-8")


def _base(source: str, records: list[Record]) -> Path | None:
    """What files' ids are relative to: the source folder, else the files' common folder."""
    if Path(source).is_dir():
        return Path(os.path.abspath(source))
    folders = [os.path.dirname(os.path.abspath(r.path)) for r in records if is_plain(r)]
    return Path(os.path.commonpath(folders)) if folders else None


class _Shards:
    """Shards being written in a staging folder, each closed before it would overflow."""

    def __init__(self, staging: Path, prefix: str, limit: int) -> None:
        self.staging, self.prefix, self.limit = staging, prefix, limit
        self.files: list[Path] = []
        self.writer: Any = None
        self.used = 0

    def add(self, key: str, members: dict[str, bytes]) -> None:
        from webdataset import TarWriter  # the optional ``corpora`` extra

        size = sum(_tar_size(f"{key}.{ext}", len(v)) for ext, v in members.items())
        if self.writer is not None and _file_size(self.used + size) > self.limit:
            self.close()
        if self.writer is None:
            self.files.append(self.staging / f"{self.prefix}-{len(self.files):06d}.tar")
            # a fixed integer mtime: the same corpus gives the same bytes (a float one
            # would cost a PAX header per member)
            self.writer = TarWriter(str(self.files[-1]), encoder=False, mtime=0)
            self.used = 0
        self.writer.write({"__key__": key, **members})
        self.used += size

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def _check_out(out: Path, prefix: str, overwrite: bool) -> list[Path]:
    """The shards already in ``out`` (refused unless ``overwrite``)."""
    if out.exists() and not out.is_dir():
        raise DataError(str(out), "not a folder: shards are written into a folder")
    old = sorted(out.glob(f"{prefix}-*.tar")) if out.is_dir() else []
    if old and not overwrite:
        raise DataError(
            str(out), f"holds shards already ({old[0].name}...): pass --overwrite to replace them"
        )
    return old


def _fill(shards: _Shards, records: list[Record], base: Path | None, summary: ShardSummary) -> None:
    seen: set[str] = set()
    for record in records:
        if record.problem is not None:
            summary.skipped.append((record.path, record.problem))
            continue
        ident = sample_id(record, base)
        key = sample_key(ident, is_plain(record))
        try:
            if key in seen:
                raise DataError(record.path, f"duplicate key: {key} is taken by another entry")
            data, kind = sample_audio(record)
        except DataError as err:
            summary.skipped.append((err.path, err.reason))
            continue
        seen.add(key)
        shards.add(key, {kind: data, "json": _meta(record, ident)})
        summary.items += 1


def write_shards(
    source: str,
    out: str | Path,
    shard_size: int,
    *,
    fmt: str = "auto",
    group_from: str = "auto",
    prefix: str = "shards",
    overwrite: bool = False,
) -> ShardSummary:
    """Write the shards of a corpus into ``out`` (see the module docstring).

    Raises:
        DataError: The source cannot be listed or has no usable entry, or ``out`` holds
            shards already and ``overwrite`` is false.

    """
    out = Path(out)
    try:
        group_rule(group_from)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    old = _check_out(out, prefix, overwrite)
    records = audio_records(source, group_from=group_from, fmt=fmt)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    staging = out / f".{prefix}-writing-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    summary = ShardSummary(pattern="")
    try:
        shards = _Shards(staging, prefix, shard_size)
        _fill(shards, records, _base(source, records), summary)
        shards.close()
        if summary.items == 0:
            raise DataError(source, f"no usable entries ({len(summary.skipped)} left out)")
        for file in [*old, out / SHARDS_JSON]:
            file.unlink(missing_ok=True)
        for file in shards.files:
            summary.bytes += file.stat().st_size
            os.replace(file, out / file.name)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if created and not any(out.iterdir()):
            out.rmdir()
        raise
    shutil.rmtree(staging, ignore_errors=True)
    summary.shards = len(shards.files)
    summary.pattern = str(out / f"{prefix}-{{000000..{summary.shards - 1:06d}}}.tar")
    index = {"pattern": Path(summary.pattern).name, "shards": summary.shards,
             "items": summary.items, "bytes": summary.bytes, "shard_size": shard_size,
             "source": str(source), "skipped": len(summary.skipped)}  # fmt: skip
    (out / SHARDS_JSON).write_text(json.dumps(index, indent=2) + "\n")
    return summary
