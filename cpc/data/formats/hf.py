"""Hugging Face ``datasets`` saved with ``save_to_disk``: one record per row.

Read with ``datasets.load_from_disk`` (the optional ``corpora`` extra). The audio is the
first column of type ``datasets.Audio``; it is read undecoded (the stored file bytes,
or a path) and decoded by soundfile (:mod:`cpc.data.formats.clips`), so ``torchcodec``
is not needed. The speaker is the first of :data:`SPEAKER_COLUMNS` the data set has
(LibriSpeech on the Hub: ``speaker_id``; Common Voice: ``client_id``); a record is
named by the ``id`` column when there is one, else ``DIR#ROW``. A folder saved from a
``DatasetDict`` holds one folder per split: pass that split's folder.
"""

from __future__ import annotations

from pathlib import Path

from cpc.data.records import GroupFn, Record
from cpc.errors import DataError

SPEAKER_COLUMNS = ("speaker_id", "speaker", "client_id")

#: Files ``save_to_disk`` writes in a data set's folder (and a DatasetDict's).
MARKERS = ("state.json", "dataset_info.json", "dataset_dict.json")


def hf_records(folder: str | Path, group: GroupFn) -> list[Record]:
    """One record per row of a saved data set (see the module docstring).

    Raises:
        DataError: Not a saved data set, a DatasetDict, or no audio column.

    """
    import datasets  # the optional ``corpora`` extra

    root = Path(folder)
    try:
        loaded = datasets.load_from_disk(str(root))
    except (OSError, ValueError, FileNotFoundError) as err:
        raise DataError(str(root), f"unreadable Hugging Face dataset: {err}") from None
    if isinstance(loaded, datasets.DatasetDict):
        splits = ", ".join(str(root / name) for name in loaded)
        raise DataError(str(root), f"a DatasetDict: pass one split's folder ({splits})")
    audio = [n for n, f in loaded.features.items() if isinstance(f, datasets.Audio)]
    if not audio:
        raise DataError(str(root), f"no Audio column: columns are {loaded.column_names}")
    column = audio[0]
    speaker = next((c for c in SPEAKER_COLUMNS if c in loaded.column_names), None)
    names = loaded["id"] if "id" in loaded.column_names else None
    speakers = loaded[speaker] if speaker is not None else None
    records = []
    for row in range(len(loaded)):
        name = str(names[row]) if names is not None else f"{root}#{row}"
        values = {"speaker": str(speakers[row])} if speakers is not None else {}
        locator = f"hf:{row}:{column}:{root.resolve()}"
        records.append(Record(name, group(Path(name), values), audio=locator))
    return records
