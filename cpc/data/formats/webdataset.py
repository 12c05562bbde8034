"""WebDataset tar shards: ``shards-{000000..000127}.tar`` (the optional ``corpora`` extra).

A shard holds samples as consecutive members named ``KEY.EXT`` (``KEY.flac``,
``KEY.json``); the pattern is expanded and keys are split the way ``webdataset`` does
(:func:`webdataset.shardlists.expand_urls`, :func:`webdataset.tariterators.base_plus_ext`).
The audio is the member with an extension of :data:`AUDIO_EXTENSIONS`; the speaker is
the ``speaker`` (or ``speaker_id``) field of ``KEY.json`` when there is one. Records are
named ``KEY``.

Local shards are *indexed*: the tar headers are read once (no audio is decoded) and
every record points at its member's bytes (``tar:OFFSET:SIZE:SHARD``,
:mod:`cpc.data.formats.clips`), so shards train with random windows, exact resume and
the distributed sampler like any folder. A sample without audio, or a key seen twice,
is reported by key and skipped.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

from cpc.data.records import GroupFn, Record
from cpc.errors import DataError

AUDIO_EXTENSIONS = ("flac", "wav", "ogg")
SPEAKER_FIELDS = ("speaker", "speaker_id")


def is_pattern(spec: str) -> bool:
    """Whether a ``data.train`` value names tar shards (a brace pattern or ``.tar``)."""
    return ("{" in spec and ".." in spec) or spec.endswith((".tar", ".tar.gz", ".tgz"))


def shard_urls(pattern: str) -> list[str]:
    """The shards a pattern names, in order (``::`` joins patterns, as in webdataset)."""
    from webdataset.shardlists import expand_urls  # the optional ``corpora`` extra

    return list(expand_urls(pattern))


def speaker_of(meta: bytes | None) -> str:
    """The speaker field of a sample's ``.json`` member ('' when none)."""
    if not meta:
        return ""
    try:
        fields = json.loads(meta)
    except (ValueError, UnicodeDecodeError):
        return ""
    if not isinstance(fields, dict):
        return ""
    return next((str(fields[f]) for f in SPEAKER_FIELDS if fields.get(f) is not None), "")


def _index(shard: str) -> dict[str, dict[str, tarfile.TarInfo | bytes]]:
    """Members of one shard by key: audio members' headers, json bytes."""
    from webdataset.tariterators import base_plus_ext

    samples: dict[str, dict[str, tarfile.TarInfo | bytes]] = {}
    try:
        with tarfile.open(shard) as tar:
            for member in tar:
                key, ext = base_plus_ext(member.name)
                if key is None or ext is None or not member.isreg():
                    continue
                sample = samples.setdefault(key, {})
                ext = ext.lower()
                if ext == "json":
                    handle = tar.extractfile(member)
                    sample[ext] = handle.read() if handle is not None else b""
                elif ext in AUDIO_EXTENSIONS:
                    sample[ext] = member
    except (OSError, tarfile.TarError, EOFError) as err:
        raise DataError(shard, f"unreadable shard: {err}") from None
    return samples


def webdataset_records(pattern: str, group: GroupFn) -> list[Record]:
    """Indexed records of local shards (see the module docstring).

    Raises:
        DataError: A shard is missing or unreadable, or the pattern names a URL (stream
            those: :mod:`cpc.data.formats.stream`).

    """
    records: list[Record] = []
    seen: set[str] = set()
    for shard in shard_urls(pattern):
        if "://" in shard or shard.startswith("pipe:"):
            raise DataError(shard, "remote shard: only local shards are indexed")
        if not Path(shard).is_file():
            raise DataError(shard, "missing: no such shard")
        for key, sample in _index(shard).items():
            audio = next((sample[e] for e in AUDIO_EXTENSIONS if e in sample), None)
            if key in seen or not isinstance(audio, tarfile.TarInfo):
                why = "duplicate key" if key in seen else "no audio"
                records.append(Record(f"{shard}/{key}", "", problem=f"{why}: key {key}"))
                continue
            seen.add(key)
            meta = sample.get("json")
            speaker = speaker_of(meta if isinstance(meta, bytes) else None)
            locator = f"tar:{audio.offset_data}:{audio.size}:{Path(shard).resolve()}"
            row = {"speaker": speaker} if speaker else {}
            records.append(Record(key, group(Path(key), row), audio=locator))
    return records
