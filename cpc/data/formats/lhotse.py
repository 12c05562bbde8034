"""Lhotse manifests (``.jsonl.gz``): cuts, or recordings with their supervisions.

Read with Lhotse itself (``lhotse.load_manifest``, the optional ``corpora`` extra).

- A **cut set**: one record per cut, the cut's stretch of its recording (``start``,
  ``duration``), the speaker of its first supervision.
- A **recording set**: with a supervision set beside it (Lhotse recipes write
  ``PREFIX_recordings_PART.jsonl.gz`` and ``PREFIX_supervisions_PART.jsonl.gz``), one
  record per supervision segment, with its speaker; without one, whole recordings.
- A **supervision set**: the same, with the recording set found beside it.

Records are named by the cut or supervision id. A recording whose audio is not a
local file (a URL, a command, audio in memory) or that carries transforms (speed
perturbation, resampling) is refused by id with the reason. Channels are averaged to
mono, as for every other file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cpc.data.records import GroupFn, Record
from cpc.errors import DataError

#: The file names a Lhotse manifest may have.
SUFFIXES = (".jsonl.gz", ".jsonl", ".json.gz", ".json")


def _load(path: Path) -> Any:
    import lhotse  # the optional ``corpora`` extra

    try:
        return lhotse.load_manifest(path)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise DataError(str(path), f"unreadable Lhotse manifest: {err}") from None


def _audio(recording: Any) -> tuple[str, str | None]:
    """(the recording's file, a problem or None)."""
    if recording is None:
        return "", "no recording: the manifest has none for it"
    if recording.transforms:
        return "", "transforms: the recording has Lhotse transforms; cpc reads plain files"
    source = recording.sources[0]
    if source.type != "file":
        return "", f"{source.type} source: cpc reads local files, not {source.type} audio"
    return str(source.source), None


def _record(
    name: str, recording: Any, start: float, end: float | None, speaker: Any, group: GroupFn
) -> Record:
    file, problem = _audio(recording)
    if problem is not None:
        return Record(name, "", problem=problem)
    row = {"speaker": str(speaker)} if speaker else {}
    return Record(name, group(Path(file), row), audio=file, start=start, end=end)


def _partner(path: Path, have: str, want: str) -> Path | None:
    other = path.with_name(path.name.replace(have, want))
    return other if other != path and other.is_file() else None


def lhotse_records(manifest: str | Path, group: GroupFn) -> list[Record]:
    """Records of a Lhotse cut, recording or supervision manifest (module docstring).

    Raises:
        DataError: Unreadable, or supervisions without their recordings beside them.

    """
    import lhotse

    path = Path(manifest)
    loaded = _load(path)
    if isinstance(loaded, lhotse.CutSet):
        out = []
        for cut in loaded:
            speaker = cut.supervisions[0].speaker if cut.supervisions else None
            recording = cut.recording if cut.has_recording else None
            out.append(_record(cut.id, recording, cut.start, cut.end, speaker, group))
        return out
    if isinstance(loaded, lhotse.SupervisionSet):
        partner = _partner(path, "supervisions", "recordings")
        if partner is None:
            raise DataError(str(path), "no recordings: put the recording manifest beside it")
        recordings, supervisions = _load(partner), loaded
    elif isinstance(loaded, lhotse.RecordingSet):
        recordings = loaded
        partner = _partner(path, "recordings", "supervisions")
        supervisions = _load(partner) if partner is not None else None
    else:
        raise DataError(str(path), f"unsupported Lhotse manifest: {type(loaded).__name__}")
    if supervisions is None:
        return [_record(r.id, r, 0.0, None, None, group) for r in recordings]
    return [
        _record(
            s.id,
            recordings[s.recording_id] if s.recording_id in recordings else None,
            s.start,
            s.end,
            s.speaker,
            group,
        )
        for s in supervisions
    ]
