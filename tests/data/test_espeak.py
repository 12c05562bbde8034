import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from cpc.data.corpora.espeak import (
    ENGLISH_PHONES,
    build_espeak_corpus,
    load_phone_labels,
    read_phone_inventory,
)
from cpc.data.corpora.texts import sample_sentences

pytest.importorskip("espeakng_loader")

VOWELS = {"a", "aI", "aU", "E", "I", "i", "i:", "0", "V", "oU", "eI", "u:", "3", "A@", "a#"}


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("espeak") / "a"
    build_espeak_corpus(root, minutes=12 / 60, num_speakers=4, seed=0)
    return root


def test_same_seed_is_byte_identical_and_other_seed_differs(corpus: Path, tmp_path: Path) -> None:
    build_espeak_corpus(tmp_path / "b", minutes=12 / 60, num_speakers=4, seed=0)
    build_espeak_corpus(tmp_path / "c", minutes=12 / 60, num_speakers=4, seed=1)
    reference = _digest(corpus)
    assert _digest(tmp_path / "b") == reference
    assert _digest(tmp_path / "c") != reference


def test_refuses_to_overwrite(corpus: Path) -> None:
    with pytest.raises(FileExistsError):
        build_espeak_corpus(corpus, minutes=0.05, num_speakers=1)


def test_manifest_and_labels_match_the_wavs(corpus: Path) -> None:
    with open(corpus / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0])[:3] == ["path", "speaker", "duration"]
    assert {r["speaker"] for r in rows} == {f"spk{i:03d}" for i in range(4)}
    total = sum(float(r["duration"]) for r in rows)
    assert 8 < total < 18
    inventory = read_phone_inventory(corpus)
    assert inventory["hop_length"] == 160 and inventory["silence_id"] == 0
    assert inventory["phones"][: len(ENGLISH_PHONES)] == list(ENGLISH_PHONES)
    labels = load_phone_labels(corpus)
    assert set(labels) == {r["path"] for r in rows}
    for row in rows:
        audio, rate = sf.read(corpus / row["path"], dtype="int16")
        assert rate == 16000 and audio.ndim == 1
        assert abs(len(audio) / rate - float(row["duration"])) < 1e-3
        frames = labels[row["path"]]
        assert frames.dtype == np.int16
        assert len(frames) == len(audio) // 160  # floor: the partial last frame is dropped
        assert frames[0] == 0 and frames[-1] == 0  # silent pads at both ends
        assert frames.max() < len(inventory["phones"])


def test_silence_frames_are_quiet_and_vowels_loud(corpus: Path) -> None:
    phones = read_phone_inventory(corpus)["phones"]
    vowel_ids = [phones.index(v) for v in VOWELS if v in phones]
    silent, voiced = [], []
    for path, frames in load_phone_labels(corpus).items():
        audio = sf.read(corpus / path, dtype="float32")[0]
        energy = (audio[: len(frames) * 160].reshape(-1, 160) ** 2).mean(axis=1)
        silent.append(energy[frames == 0])
        voiced.append(energy[np.isin(frames, vowel_ids)])
    sil, vow = np.concatenate(silent), np.concatenate(voiced)
    assert len(sil) > 20 and len(vow) > 20
    assert np.median(vow) > 1000 * np.median(sil)


def _median_f0(audio: np.ndarray, frames: np.ndarray, vowel_ids: list[int]) -> list[float]:
    f0 = []
    for j in np.flatnonzero(np.isin(frames, vowel_ids)):
        window = audio[j * 160 : j * 160 + 640]
        if len(window) < 640:
            continue
        window = window - window.mean()
        ac = np.correlate(window, window, mode="full")[639:]
        lag = 40 + int(np.argmax(ac[40:268]))  # 60 to 400 Hz
        f0.append(16000 / lag)
    return f0


def test_female_variants_have_higher_pitch(corpus: Path) -> None:
    phones = read_phone_inventory(corpus)["phones"]
    vowel_ids = [phones.index(v) for v in VOWELS if v in phones]
    speakers = {s["name"]: s for s in json.loads((corpus / "speakers.json").read_text())}
    pitch: dict[str, list[float]] = {name: [] for name in speakers}
    for path, frames in load_phone_labels(corpus).items():
        audio = sf.read(corpus / path, dtype="float32")[0]
        pitch[path.split("/")[1]] += _median_f0(audio, frames, vowel_ids)
    median = {name: float(np.median(values)) for name, values in pitch.items()}
    female = [median[n] for n, s in speakers.items() if s["gender"] == "female"]
    male = [median[n] for n, s in speakers.items() if s["gender"] == "male"]
    assert female and male
    assert min(female) > 1.2 * max(male)
    assert len({s["voice"] for s in speakers.values()}) == len(speakers)


def test_other_languages_extend_the_inventory(tmp_path: Path) -> None:
    info = build_espeak_corpus(tmp_path, minutes=0.1, num_speakers=2, languages=("en", "de"))
    assert [s.language for s in info.speakers] == ["en", "de"]
    assert len(info.phones) > len(ENGLISH_PHONES)
    assert info.total_seconds > 3 and info.speed > 1


def test_sentences_are_varied_and_validated() -> None:
    rng = np.random.default_rng(0)
    sentences = sample_sentences("en", 300, rng)
    assert len(set(sentences)) > 290
    assert all(s[0].isupper() and s[-1] in ".?" for s in sentences)
    with pytest.raises(ValueError, match="klingon"):
        sample_sentences("klingon", 1, rng)
    with pytest.raises(ValueError, match="sample_rate"):
        build_espeak_corpus(Path("unused"), sample_rate=22050)
