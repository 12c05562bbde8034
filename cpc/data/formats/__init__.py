"""Corpora as toolkits prepare them: one reader per format, the format found from the path.

``data.train``, ``data.val``, ``cpc extract --input`` and ``cpc probe --manifest``
accept, besides a folder and a CSV/TSV manifest (:mod:`cpc.data.records`):

=============  ===============================================  ==========================
format         what ``data.train`` names                        read by
=============  ===============================================  ==========================
``fairseq``    a wav2vec ``.tsv`` (root line, path<TAB>samples)  :mod:`.text`
``kaldi``      a Kaldi data folder (``wav.scp``, ``segments``,   :mod:`.text`
               ``utt2spk``)
``lhotse``     a Lhotse ``.jsonl.gz`` (cuts, or recordings and   :mod:`.lhotse` (lhotse)
               supervisions)
``hf``         a Hugging Face data set saved with ``save_to_disk``  :mod:`.hf` (datasets)
``webdataset`` tar shards ``shards-{000000..000127}.tar``        :mod:`.webdataset`
=============  ===============================================  ==========================

:func:`detect_format` finds the format from the path; ``data.format`` (or a
``FORMAT:`` prefix, as in ``kaldi:data/train``) forces it. Every reader returns
:class:`~cpc.data.records.Record` lists: entries found bad while listing carry a
``problem`` and are reported once by path or id, like unusable files of a folder. The
libraries come with the ``corpora`` extra (``pip install cpc[corpora]``).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from cpc.data.formats.hf import MARKERS, hf_records
from cpc.data.formats.lhotse import SUFFIXES, lhotse_records
from cpc.data.formats.text import fairseq_records, kaldi_records
from cpc.data.formats.webdataset import is_pattern, webdataset_records
from cpc.data.records import GroupFn, Record, list_records
from cpc.errors import DataError

#: Every value of ``data.format`` but ``auto``.
FORMATS = ("folder", "manifest", "fairseq", "kaldi", "lhotse", "hf", "webdataset")

#: Formats that list files by path, so any modality can use them.
PATH_FORMATS = ("folder", "manifest", "fairseq")


def _first_line(path: Path) -> str:
    try:
        with open(path, encoding="utf-8-sig") as f:
            return next((line for line in f if line.strip()), "")
    except (OSError, UnicodeDecodeError):
        return ""


def split_prefix(spec: str) -> tuple[str | None, str]:
    """``("kaldi", "data/train")`` for ``"kaldi:data/train"``; ``(None, spec)`` otherwise."""
    name, sep, rest = spec.partition(":")
    if sep and name in FORMATS and not rest.startswith("//"):
        return name, rest
    return None, spec


def detect_format(spec: str) -> str:
    """The format of a ``data.train`` value, from its prefix, name and contents.

    A folder holding ``wav.scp`` is Kaldi, one holding ``state.json`` /
    ``dataset_info.json`` / ``dataset_dict.json`` a saved HF data set, any other folder
    a folder of files; a brace pattern or ``.tar`` names shards; ``.jsonl.gz`` is
    Lhotse; a ``.tsv`` whose first line has no tab is fairseq; anything else a manifest.
    """
    forced, path_text = split_prefix(spec)
    if forced is not None:
        return forced
    path = Path(path_text)
    if path.is_dir():
        if (path / "wav.scp").is_file():
            return "kaldi"
        if any((path / marker).is_file() for marker in MARKERS):
            return "hf"
        return "folder"
    if is_pattern(path_text):
        return "webdataset"
    if path.name.endswith(SUFFIXES):
        return "lhotse"
    first = _first_line(path)
    if path.suffix.lower() == ".tsv" and "\t" not in first and first.strip().lower() != "path":
        return "fairseq" if path.is_file() else "manifest"
    return "manifest"


def list_source(
    spec: str,
    fmt: str,
    extensions: Iterable[str],
    group: GroupFn,
    allowed: Iterable[str] = FORMATS,
) -> list[Record]:
    """The records of a source in a format (``auto``: :func:`detect_format`).

    Raises:
        DataError: The source cannot be read, or the format is not one ``allowed`` for
            this modality (names both).

    """
    forced, path = split_prefix(spec)
    name = forced or (detect_format(spec) if fmt == "auto" else fmt)
    if name not in allowed:
        raise DataError(spec, f"format {name!r} is not for this modality; use {list(allowed)}")
    if name in ("folder", "manifest"):
        return list_records(path, extensions, group)
    readers = {
        "fairseq": fairseq_records,
        "kaldi": kaldi_records,
        "lhotse": lhotse_records,
        "hf": hf_records,
        "webdataset": webdataset_records,
    }
    if name not in readers:
        raise DataError(spec, f"unknown format {name!r}; known: {list(FORMATS)}")
    return unique_names(readers[name](path, group))


def unique_names(records: list[Record]) -> list[Record]:
    """Records whose names repeat an earlier usable one become problems named ``ID#N``
    (a name is what a skipped entry is reported by, so it must be unique).
    """
    seen: set[str] = set()
    out = []
    for n, record in enumerate(records):
        if record.problem is None and record.path in seen:
            why = f"duplicate id: {record.path} is listed twice"
            record = Record(f"{record.path}#{n}", "", problem=why)
        seen.add(record.path)
        out.append(record)
    return out
