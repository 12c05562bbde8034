from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from cpc.data.audio import (
    AudioFileDataset,
    AudioRecord,
    AudioWindowDataset,
    audio_records,
    read_audio,
    resampled_length,
)
from cpc.errors import DataError, EmptyDatasetError


def tone(seconds: float, rate: int, freq: float = 440.0) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write(path: Path, data: np.ndarray, rate: int, **kw: object) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, data, rate, **kw)
    return str(path)


def noise(seconds: float, rate: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.1 * rng.standard_normal(round(seconds * rate))).astype(np.float32)


@pytest.mark.parametrize(
    ("rate", "suffix"), [(8000, ".flac"), (16000, ".wav"), (44100, ".ogg"), (44100, ".wav")]
)
def test_resampled_length_and_frequency_survive(tmp_path: Path, rate: int, suffix: str) -> None:
    path = write(tmp_path / f"a{suffix}", tone(0.5, rate, 1000.0), rate)
    x = read_audio(path, 16000)
    assert x.dtype == torch.float32
    assert x.shape == (resampled_length(sf.info(path).frames, rate, 16000),)
    spectrum = torch.fft.rfft(x[:8000]).abs()
    peak_hz = int(spectrum.argmax()) * 16000 / 8000
    assert peak_hz == pytest.approx(1000.0, abs=4.0)


def test_stereo_is_averaged(tmp_path: Path) -> None:
    left, right = tone(0.2, 16000, 300.0), noise(0.2, 16000)
    path = write(tmp_path / "s.wav", np.stack([left, right], axis=1), 16000, subtype="FLOAT")
    x = read_audio(path, 16000)
    torch.testing.assert_close(x, torch.from_numpy((left + right) / 2))


def test_window_read_equals_slice_of_whole_file(tmp_path: Path) -> None:
    path = write(tmp_path / "long.wav", noise(2.0, 44100), 44100, subtype="FLOAT")
    whole = read_audio(path, 16000)
    for offset in (0, 77, 5000, whole.shape[0] - 300):
        part = read_audio(path, 16000, offset, 1000)
        expected = whole[offset : offset + 1000]
        assert part.shape == expected.shape
        torch.testing.assert_close(part, expected, atol=1e-5, rtol=0)


def test_folder_listing_is_recursive_and_case_insensitive(tmp_path: Path) -> None:
    write(tmp_path / "alice" / "x.WAV", tone(0.1, 8000), 8000)
    write(tmp_path / "bob" / "deep" / "y.flac", tone(0.1, 8000), 8000)
    write(tmp_path / "bob" / "z.Ogg", tone(0.1, 8000), 8000)
    (tmp_path / "bob" / "notes.txt").write_text("not audio")
    records = audio_records(tmp_path)
    assert [Path(r.path).name for r in records] == ["x.WAV", "y.flac", "z.Ogg"]
    assert [r.group for r in records] == ["alice", "deep", "bob"]
    grand = audio_records(tmp_path, group_fn=lambda p: p.parts[len(tmp_path.parts)])
    assert [r.group for r in grand] == ["alice", "bob", "bob"]


def test_windows_reproducible_per_seed_and_epoch(tmp_path: Path) -> None:
    write(tmp_path / "spk" / "a.wav", noise(1.0, 16000), 16000, subtype="FLOAT")
    first = AudioWindowDataset(tmp_path, 16000, 2000, seed=3)
    again = AudioWindowDataset(tmp_path, 16000, 2000, seed=3)
    torch.testing.assert_close(first[0]["x"], again[0]["x"])
    torch.testing.assert_close(first[0]["x"], first[0]["x"])
    epoch0 = first[0]["x"]
    first.set_epoch(1)
    assert not torch.equal(first[0]["x"], epoch0)
    other_seed = AudioWindowDataset(tmp_path, 16000, 2000, seed=4)
    assert not torch.equal(other_seed[0]["x"], epoch0)


def test_cover_yields_windows_in_proportion(tmp_path: Path) -> None:
    write(tmp_path / "s" / "long.wav", noise(1.0, 16000), 16000)
    write(tmp_path / "s" / "short.wav", noise(0.1, 16000), 16000)
    ds = AudioWindowDataset(tmp_path, 16000, 4000, cover=True, min_length=100)
    assert len(ds) == 4 + 1
    assert ds.groups == [0] * 5


def test_short_clip_pad_reports_true_length(tmp_path: Path) -> None:
    write(tmp_path / "s" / "clip.wav", tone(0.3, 16000) + 0.1, 16000)
    item = AudioWindowDataset(tmp_path, 16000, 8000)[0]
    assert item["x"].shape == (8000,)
    assert item["length"] == 4800
    assert torch.all(item["x"][4800:] == 0)
    assert torch.all(item["x"][:4800] != 0)


def test_short_clip_skip_and_min_samples(tmp_path: Path) -> None:
    write(tmp_path / "s" / "clip.wav", tone(0.3, 16000), 16000)
    write(tmp_path / "s" / "tiny.wav", tone(0.01, 16000), 16000)
    write(tmp_path / "s" / "long.wav", tone(1.0, 16000), 16000)
    ds = AudioWindowDataset(tmp_path, 16000, 8000, short_clips="skip", min_length=465)
    assert len(ds) == 1
    assert ds.report.counts() == {"short clip": 1, "too short": 1}
    padded = AudioWindowDataset(tmp_path, 16000, 8000, min_length=465)
    assert len(padded) == 2


def bad_folder(root: Path) -> Path:
    write(root / "spk" / "good.wav", tone(0.5, 16000), 16000)
    (root / "spk" / "zero.wav").write_bytes(b"")
    (root / "spk" / "garbage.wav").write_bytes(b"RIFFnot really a wave file" * 20)
    return root


def test_bad_files_skipped_with_counts(tmp_path: Path) -> None:
    ds = AudioWindowDataset(bad_folder(tmp_path), 16000, 4000)
    assert len(ds) == 1
    assert ds.report.counts() == {"empty": 1, "unreadable": 1}
    assert {Path(p).name for p, _ in ds.report.skipped} == {"zero.wav", "garbage.wav"}
    assert ds.report.summary().startswith("1 of 3 files usable; skipped 2")


def test_strict_raises_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"garbage\.wav: unreadable"):
        AudioWindowDataset(bad_folder(tmp_path), 16000, 4000, strict=True)


def test_nothing_usable_names_source_and_counts(tmp_path: Path) -> None:
    (tmp_path / "zero.wav").write_bytes(b"")
    (tmp_path / "junk.flac").write_bytes(b"\x00\x01" * 50)
    with pytest.raises(EmptyDatasetError, match=r"empty: 1, unreadable: 1") as info:
        AudioFileDataset(tmp_path)
    assert str(tmp_path) in str(info.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(EmptyDatasetError, match=r"empty.*0 found"):
        AudioFileDataset(tmp_path / "empty")


def test_corrupt_on_decode_is_replaced_by_next_item(tmp_path: Path) -> None:
    write(tmp_path / "s" / "a.wav", tone(0.5, 16000), 16000)
    nan = np.full(8000, np.nan, dtype=np.float32)
    write(tmp_path / "s" / "b.wav", nan, 16000, subtype="FLOAT")
    write(tmp_path / "s" / "c.wav", tone(0.5, 16000), 16000)
    ds = AudioWindowDataset(tmp_path, 16000, 4000)
    strict = AudioWindowDataset(tmp_path, 16000, 4000, strict=True)
    assert len(ds) == 3  # NaN samples are only seen when decoded
    (tmp_path / "s" / "c.wav").write_bytes(b"corrupted after the header check")
    assert ds[1]["index"] == 0  # b is NaN, c is now corrupt: wrap around to a
    assert ds[2]["index"] == 0
    assert ds.report.counts() == {"non-finite": 1, "unreadable": 1}
    with pytest.raises(DataError, match=r"b\.wav: non-finite"):
        strict[1]


def test_manifest_relative_paths_and_columns(tmp_path: Path) -> None:
    write(tmp_path / "audio" / "one.wav", tone(0.2, 8000), 8000)
    write(tmp_path / "audio" / "two.flac", tone(0.3, 8000), 8000)
    (tmp_path / "list.tsv").write_text(
        "path\tspeaker\tlabel\tduration\naudio/one.wav\tann\tyes\t0.2\naudio/two.flac\t\t\t\n"
    )
    records = audio_records(tmp_path / "list.tsv")
    assert records[0] == AudioRecord(str(tmp_path / "audio/one.wav"), "ann", "yes", 0.2)
    assert records[1].group == "audio" and records[1].label is None
    ds = AudioFileDataset(tmp_path / "list.tsv", 16000)
    assert ds.group_names == ["ann", "audio"]
    item = ds[1]
    assert item["length"] == 4800 and item["x"].shape == (4800,)
    assert item["path"].endswith("two.flac") and item["group"] == 1


def test_manifest_without_path_column_names_columns(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_text("file,speaker\na.wav,x\n")
    with pytest.raises(DataError, match=r"no 'path' column.*\['file', 'speaker'\]"):
        audio_records(tmp_path / "m.csv")
