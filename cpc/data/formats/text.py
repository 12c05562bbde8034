"""Toolkit manifests that are plain text: fairseq/wav2vec ``.tsv`` and Kaldi data folders.

No kept library reads these two (fairseq is not a dependency; Lhotse's Kaldi reader
runs ``wav.scp`` commands to learn durations, and its text reader stops on the first
malformed line without naming it), and each is one line per entry, so they are read
here, reporting every bad line by manifest line or id.

- **fairseq** (``examples/wav2vec/wav2vec_manifest.py``): a root folder on the first
  line, then ``relative/path<TAB>num_samples`` per file. No speakers: the group comes
  from ``data.group_from`` on the path (``grandparent`` for LibriSpeech). The counts
  are kept (:attr:`Record.samples`): training takes them as the files' lengths at the
  model's rate, as fairseq does, instead of reading 100,000 headers at startup.
- **Kaldi** data folder: ``wav.scp`` (``recording-id path``), optional ``segments``
  (``utterance-id recording-id start end`` in seconds) and ``utt2spk``
  (``utterance-id speaker``). An entry that is a command (``... |``) or an archive
  offset (``file.ark:123``) is refused by id with the reason: cpc reads files. Relative
  paths are resolved against the current folder, as Kaldi does.
"""

from __future__ import annotations

import re
from pathlib import Path

from cpc.data.records import GroupFn, Record
from cpc.errors import DataError


def fairseq_records(manifest: str | Path, group: GroupFn) -> list[Record]:
    """The files a fairseq ``.tsv`` lists (root line, then ``path<TAB>num_samples``).

    Raises:
        DataError: The manifest is unreadable or has no root line.

    """
    path = Path(manifest)
    lines = _lines(path)
    if not lines:
        raise DataError(str(path), "empty: a fairseq manifest starts with its root folder")
    root = Path(lines[0][1].strip())
    if not root.is_absolute():
        root = path.parent / root
    records = []
    for line_no, line in lines[1:]:
        fields = line.split("\t")
        where = f"{path}:{line_no}"
        if len(fields) != 2 or not fields[1].strip().isdigit():
            reason = f"malformed: line {line_no} is not path<TAB>num_samples: {line[:80]!r}"
            records.append(Record(where, "", problem=reason))
            continue
        file = root / fields[0]
        records.append(Record(str(file), group(file, {}), samples=int(fields[1])))
    return records


def _lines(path: Path) -> list[tuple[int, str]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(str(path), f"unreadable: {err}") from err
    return [(n, line) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]


def kaldi_table(path: Path, fields: int) -> tuple[dict[str, list[str]], list[Record]]:
    """``id -> fields`` of a Kaldi text table, and a problem record for each bad line."""
    table: dict[str, list[str]] = {}
    bad = []
    for line_no, line in _lines(path):
        key, *values = line.split(maxsplit=1) if fields == 1 else line.split()
        if len(values) != fields or key in table:
            why = "duplicate id" if key in table else "malformed"
            where = f"{path}:{line_no}"
            bad.append(Record(where, "", problem=f"{why}: line {line_no}: {line[:80]!r}"))
            continue
        table[key] = values
    return table, bad


_ARCHIVE = re.compile(r"\.ark:\d+$")


def _wav_problem(value: str) -> str | None:
    if value.rstrip().endswith("|"):
        return (
            f"command: wav.scp runs {value[:60]!r}; cpc reads files, not commands "
            "(write the audio to files and list them)"
        )
    if _ARCHIVE.search(value):
        return f"archive: {value!r} is an offset in a Kaldi archive; list audio files"
    return None


def kaldi_records(folder: str | Path, group: GroupFn) -> list[Record]:
    """Utterances of a Kaldi data folder (segments when present, else recordings).

    Raises:
        DataError: The folder has no ``wav.scp``.

    """
    root = Path(folder)
    if not (root / "wav.scp").is_file():
        raise DataError(str(root), "not a Kaldi data folder: no wav.scp")
    wavs, records = kaldi_table(root / "wav.scp", 1)
    speakers: dict[str, list[str]] = {}
    if (root / "utt2spk").is_file():
        speakers, bad = kaldi_table(root / "utt2spk", 1)
        records += bad
    if (root / "segments").is_file():
        segments, bad = kaldi_table(root / "segments", 3)
        records += bad
    else:
        segments = {rec: [rec, "0", "-1"] for rec in wavs}
    for utt, (rec, start, end) in segments.items():
        value = wavs.get(rec, [""])[0]
        speaker = speakers.get(utt, [""])[0]
        problem = _wav_problem(value) if rec in wavs else f"no recording: {rec} not in wav.scp"
        try:
            begin, stop = float(start), float(end)
        except ValueError:
            problem = problem or f"malformed: segment times {start!r} {end!r}"
            begin, stop = 0.0, -1.0
        row = {"speaker": speaker} if speaker else {}
        records.append(
            Record(
                utt,
                group(Path(value), row) if problem is None else "",
                problem=problem,
                audio=value,
                start=begin,
                end=None if stop < 0 else stop,
            )
        )
    return records
