"""The LibriSpeech / Libri-light preset on synthetic trees with the corpora's own layout.

LibriSpeech (openslr 12): ``SUBSET/SPEAKER/CHAPTER/SPEAKER-CHAPTER-UTT.flac`` and one
``SPEAKER-CHAPTER.trans.txt`` per chapter; Libri-light: ``SUBSET/SPEAKER/BOOK/FILE.flac``
with ``FILE.json`` beside each (``{"speaker": ..., "book_meta": ...}``). Clips are tiny
FLACs written with soundfile.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from cpc.cli import main
from cpc.config import load_config
from cpc.data.audio import audio_records
from cpc.train import train
from tests.train.conftest import TINY_MODEL

pytestmark = pytest.mark.usefixtures("one_thread")

#: speaker -> its chapters (LibriSpeech numbers them; the tree has 3 utterances each).
CHAPTERS = {"103": ["1240", "1241"], "1034": ["121119"], "19": ["198"]}


def _clip(rng: np.random.Generator, i: int) -> np.ndarray:
    n = int(rng.integers(4000, 6000))
    t = np.arange(n) / 16000
    return (0.3 * np.sin(2 * np.pi * (120 + 30 * i) * t) + 0.05 * rng.standard_normal(n)).astype(
        np.float32
    )


def write_librispeech(root: Path, utterances: int = 3) -> Path:
    """``root/train-clean-100`` with LibriSpeech's folders, names and transcripts."""
    rng = np.random.default_rng(0)
    subset = root / "LibriSpeech" / "train-clean-100"
    i = 0
    for speaker, chapters in CHAPTERS.items():
        for chapter in chapters:
            folder = subset / speaker / chapter
            folder.mkdir(parents=True)
            lines = []
            for utt in range(utterances):
                uid = f"{speaker}-{chapter}-{utt:04d}"
                sf.write(folder / f"{uid}.flac", _clip(rng, i), 16000, subtype="PCM_16")
                lines.append(f"{uid} CHAPTER {chapter.upper()} WORD {utt} OF SPEAKER {speaker}")
                i += 1
            (folder / f"{speaker}-{chapter}.trans.txt").write_text("\n".join(lines) + "\n")
    return subset


def write_librilight(root: Path) -> Path:
    """``root/small`` with Libri-light's folders, file names and ``.json`` side files."""
    rng = np.random.default_rng(1)
    subset = root / "librilight" / "small"
    books = {"100": "sea_fairies_0812_librivox_64kb_mp3", "960": "history_holland_1006_librivox"}
    for i, (speaker, book) in enumerate(books.items()):
        folder = subset / speaker / book
        folder.mkdir(parents=True)
        for part in range(2):
            stem = f"{part + 1:02d}_{book.split('_')[0]}_{i}_64kb"
            sf.write(folder / f"{stem}.flac", _clip(rng, 2 * i + part), 16000)
            meta = {"speaker": speaker, "book_meta": {"id": str(300 + i), "title": book},
                    "snr": 9.5, "voice_activity": [[0.01, 0.2]]}  # fmt: skip
            (folder / f"{stem}.json").write_text(json.dumps(meta))
    return subset


def test_the_preset_pretrains_and_extracts_on_a_librispeech_tree(tmp_path):
    subset = write_librispeech(tmp_path)
    # the preset's data section as shipped; a tiny model and short windows for speed
    config = load_config(
        "speech_librispeech",
        [*TINY_MODEL, "model.padding=[3, 2, 1]", f"data.train={subset}", "data.window=2048",
         "data.batch_size=3", "data.num_workers=0", "optim.max_steps=2", "run.device=cpu",
         f"run.out_dir={tmp_path / 'run'}", "run.progress=false"],
    )  # fmt: skip
    assert config.data.group_from == "grandparent" and config.data.group_by == "speaker"
    records = audio_records(str(subset), group_from=config.data.group_from)
    assert sorted({r.group for r in records}) == sorted(CHAPTERS)  # speakers, not chapters
    result = train(config)
    assert result.step == 2
    assert result.summary["data"]["train_files"]["skipped"] == 0
    out = tmp_path / "feats"
    code = main(["extract", "--checkpoint", str(tmp_path / "run"), "--input", str(subset),
                 "--output", str(out)])  # fmt: skip
    assert code == 0
    assert len(list(csv.DictReader(open(out / "index.csv")))) == 12
    # the manifest brings speakers, chapters and transcripts to probes of those features
    manifest = tmp_path / "train.csv"
    assert main(["data", "librispeech", str(subset), "--out", str(manifest)]) == 0
    probe = ["probe", str(out), "--manifest", str(manifest), "--probes", "knn", "--k", "1"]
    assert main([*probe, "--label", "chapter", "--test-fraction", "0.5"]) == 0


def test_the_manifest_has_speaker_chapter_transcript_and_feeds_probes(tmp_path, capsys):
    subset = write_librispeech(tmp_path)
    manifest = tmp_path / "train.csv"
    assert main(["data", "librispeech", str(subset.parent), "--out", str(manifest)]) == 0
    assert "12 files" in capsys.readouterr().out
    rows = list(csv.DictReader(open(manifest)))
    assert [r["id"] for r in rows][:2] == ["103-1240-0000", "103-1240-0001"]
    first = rows[0]
    assert (first["speaker"], first["chapter"]) == ("103", "1240")
    assert first["transcript"] == "CHAPTER 1240 WORD 0 OF SPEAKER 103"
    assert not Path(first["path"]).is_absolute()  # the corpus and manifest move together
    seconds = sf.info(subset / "103/1240/103-1240-0000.flac").duration
    assert abs(float(first["duration"]) - seconds) < 1e-3
    # the manifest's speaker column groups without data.group_from
    assert sorted({r.group for r in audio_records(str(manifest))}) == sorted(CHAPTERS)
    # refused when it exists, replaced with --overwrite
    assert main(["data", "librispeech", str(subset), "--out", str(manifest)]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_misplaced_and_unreadable_files_are_reported_and_left_out(tmp_path, capsys):
    subset = write_librispeech(tmp_path)
    moved = subset / "103/1240/103-1240-0002.flac"
    moved.rename(subset / "19/198/103-1240-0002.flac")  # named for 103/1240, lies in 19/198
    (subset / "103/1241/103-1241-0001.flac").write_bytes(b"not audio")
    (subset / "103/1241/103-1241.trans.txt").write_text("103-1241-0000 ONLY THE FIRST\n")
    manifest = tmp_path / "m.csv"
    assert main(["data", "librispeech", str(subset), "--out", str(manifest)]) == 0
    err = capsys.readouterr().err
    assert "103-1240-0002.flac: misplaced: 103-1240-0002 lies in 19/198" in err
    assert "103-1241-0001.flac: unreadable" in err
    rows = {r["id"]: r for r in csv.DictReader(open(manifest))}
    assert len(rows) == 10 and rows["103-1241-0002"]["transcript"] == ""


def test_a_librilight_tree_takes_speakers_from_folders_and_checks_the_side_files(tmp_path):
    subset = write_librilight(tmp_path)
    records = audio_records(str(subset), group_from="grandparent")
    assert len(records) == 4 and sorted({r.group for r in records}) == ["100", "960"]
    manifest = tmp_path / "light.csv"
    assert main(["data", "librispeech", str(subset), "--out", str(manifest)]) == 0
    rows = list(csv.DictReader(open(manifest)))
    assert {(r["speaker"], r["chapter"]) for r in rows} == {
        ("100", "sea_fairies_0812_librivox_64kb_mp3"),
        ("960", "history_holland_1006_librivox"),
    }
    assert all(r["transcript"] == "" for r in rows)
    side = next(subset.glob("960/*/*.json"))
    side.write_text(json.dumps({"speaker": "100"}))  # the side file disagrees: left out
    assert main(["data", "librispeech", str(subset), "--out", str(manifest), "--overwrite"]) == 0
    assert len(list(csv.DictReader(open(manifest)))) == 3
