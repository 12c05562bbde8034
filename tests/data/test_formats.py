"""Every corpus format trains and extracts from a tiny corpus written by its own library.

The corpus: six short recordings of two speakers. Each format's writer is the
toolkit's own (Lhotse writes the Kaldi folder and the cuts, ``datasets`` the saved data
set, ``webdataset`` the shards); fairseq is not a dependency, so its ``.tsv`` is written
as ``wav2vec_manifest.py`` writes it.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from cpc.cli import main
from cpc.data.audio import AudioFileDataset, AudioWindowDataset, audio_records, read_audio
from cpc.data.formats import detect_format, list_source
from cpc.data.formats.clips import read_clip
from cpc.data.records import Record, group_rule
from cpc.errors import DataError
from cpc.train import train
from tests.train.conftest import tiny_config

lhotse = pytest.importorskip("lhotse")
datasets = pytest.importorskip("datasets")
wds = pytest.importorskip("webdataset")

pytestmark = pytest.mark.usefixtures("one_thread")

SPEAKERS = ["ann", "bob"]


@pytest.fixture(scope="module")
def wavs(tmp_path_factory):
    """Six 0.2-0.3 s recordings, speaker ``SPEAKERS[i % 2]``, as (path, speaker)."""
    root = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(0)
    files = []
    for i in range(6):
        n = int(rng.integers(3200, 4800))
        t = np.arange(n) / 16000
        x = 0.3 * np.sin(2 * np.pi * (150 + 40 * i) * t) + 0.05 * rng.standard_normal(n)
        path = root / "audio" / SPEAKERS[i % 2] / f"utt{i}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, x.astype(np.float32), 16000)
        files.append((path, SPEAKERS[i % 2]))
    return files


def lhotse_sets(wavs, segment=(0.02, 0.18)):
    """Lhotse recordings and one supervision per recording (a stretch, with its speaker)."""
    recordings = lhotse.RecordingSet.from_recordings(
        lhotse.Recording.from_file(path, recording_id=f"rec{i}") for i, (path, _) in enumerate(wavs)
    )
    start, end = segment
    supervisions = lhotse.SupervisionSet.from_segments(
        lhotse.SupervisionSegment(f"utt{i}", f"rec{i}", start, end - start, speaker=speaker)
        for i, (_, speaker) in enumerate(wavs)
    )
    return recordings, supervisions


def write_fairseq(wavs, root: Path) -> str:
    audio = wavs[0][0].parent.parent
    lines = [str(audio)] + [f"{p.relative_to(audio)}\t{sf.info(p).frames}" for p, _ in wavs]
    (root / "train.tsv").write_text("\n".join(lines) + "\n")
    return str(root / "train.tsv")


def write_kaldi(wavs, root: Path) -> str:
    recordings, supervisions = lhotse_sets(wavs)
    lhotse.kaldi.export_to_kaldi(recordings, supervisions, root / "kaldi")
    return str(root / "kaldi")


def write_lhotse_cuts(wavs, root: Path) -> str:
    recordings, supervisions = lhotse_sets(wavs)
    cuts = lhotse.CutSet.from_manifests(recordings=recordings, supervisions=supervisions)
    cuts.trim_to_supervisions().to_file(root / "cuts.jsonl.gz")
    return str(root / "cuts.jsonl.gz")


def write_lhotse_pair(wavs, root: Path) -> str:
    recordings, supervisions = lhotse_sets(wavs)
    supervisions.to_file(root / "corpus_supervisions_train.jsonl.gz")
    recordings.to_file(root / "corpus_recordings_train.jsonl.gz")
    return str(root / "corpus_recordings_train.jsonl.gz")


def write_hf(wavs, root: Path) -> str:
    rows = {
        "id": [f"utt{i}" for i in range(len(wavs))],
        "audio": [{"bytes": p.read_bytes(), "path": p.name} for p, _ in wavs],
        "speaker_id": [speaker for _, speaker in wavs],
    }
    data = datasets.Dataset.from_dict(rows).cast_column("audio", datasets.Audio(decode=False))
    data.save_to_disk(str(root / "hf"))
    return str(root / "hf")


def write_shards(wavs, root: Path) -> str:
    (root / "shards").mkdir()
    for shard in range(2):
        with wds.TarWriter(str(root / "shards" / f"shards-{shard:06d}.tar")) as sink:
            for i, (path, speaker) in enumerate(wavs):
                if i % 2 == shard:
                    meta = {"speaker": speaker}
                    sink.write({"__key__": f"utt{i}", "wav": path.read_bytes(), "json": meta})
    return str(root / "shards" / "shards-{000000..000001}.tar")


WRITERS = {
    "fairseq": write_fairseq,
    "kaldi": write_kaldi,
    "lhotse": write_lhotse_cuts,
    "lhotse-pair": write_lhotse_pair,
    "hf": write_hf,
    "webdataset": write_shards,
}


@pytest.mark.parametrize("name", list(WRITERS))
def test_each_format_trains_and_extracts(tmp_path, wavs, name):
    spec = WRITERS[name](wavs, tmp_path)
    assert detect_format(spec) == name.split("-")[0]
    records = audio_records(spec)
    assert len(records) == 6 and all(r.problem is None for r in records)
    if name != "fairseq":  # the format's own speaker field; fairseq has none
        assert sorted({r.group for r in records}) == SPEAKERS
    result = train(tiny_config(spec, tmp_path / "run", "optim.max_steps=2", "data.batch_size=2"))
    files = result.summary["data"]["train_files"]
    assert result.step == 2 and files["checked"] == 6 and files["skipped"] == 0
    out = tmp_path / "feats"
    code = main(["extract", "--checkpoint", str(tmp_path / "run"), "--input", spec,
                 "--output", str(out)])  # fmt: skip
    assert code == 0
    rows = list(csv.DictReader(open(out / "index.csv")))
    assert len(rows) == 6
    segment = name in ("kaldi", "lhotse", "lhotse-pair")
    # every segment is 0.16 s (2560 samples: 62 steps of the tiny unpadded encoder);
    # whole files have lengths of their own
    steps = {int(r["steps"]) for r in rows}
    assert steps == {62} if segment else len(steps) > 1
    # probes take the same input: rows by id or path, speakers from the format
    probe = ["probe", str(out), "--manifest", spec, "--label", "speaker", "--probes", "knn"]
    assert main([*probe, "--k", "1", "--test-fraction", "0.5"]) == 0


def test_segments_read_only_their_stretch_and_equal_the_whole_file_slice(wavs):
    path = str(wavs[0][0])
    whole = read_audio(path, 16000)
    clip = Record("u", "s", audio=path, start=0.05, end=0.15)
    assert torch.equal(read_clip(clip, 16000), whole[800:2400])
    assert torch.equal(read_clip(clip, 16000, 100, 300), whole[900:1200])
    at_8k = read_audio(path, 8000)
    # resampled: equal to the whole clip's slice up to the filter's rounding (as files)
    torch.testing.assert_close(
        read_clip(clip, 8000, 10, 50), read_clip(clip, 8000)[10:60], atol=1e-5, rtol=0
    )
    assert read_clip(clip, 8000).shape[0] == 800 and at_8k.shape[0] > 800


def test_a_kaldi_command_is_refused_by_id_with_its_reason(tmp_path, wavs, caplog):
    folder = Path(write_kaldi(wavs, tmp_path))
    lines = (folder / "wav.scp").read_text().splitlines()
    lines[1] = f"rec1 sox {wavs[1][0]} -t wav - |"
    lines.append("rec9")  # malformed: no path
    (folder / "wav.scp").write_text("\n".join(lines) + "\n")
    data = AudioFileDataset(str(folder), 16000)
    assert len(data) == 5
    skipped = dict(data.report.skipped)
    assert skipped["utt1"].startswith("command: wav.scp runs 'sox")
    assert any(p.endswith("wav.scp:7") and r.startswith("malformed") for p, r in skipped.items())
    assert [m for m in caplog.messages if "utt1" in m] == [f"skipping utt1: {skipped['utt1']}"]
    with pytest.raises(DataError, match=r"wav\.scp:7: malformed"):  # the first, in strict mode
        AudioFileDataset(str(folder), 16000, strict=True)


def test_bad_entries_of_each_format_are_reported_once_and_skipped(tmp_path, wavs):
    # a fairseq line without a count, and a file that is missing
    tsv = Path(write_fairseq(wavs, tmp_path))
    tsv.write_text(tsv.read_text() + "nothing.wav\n" + "gone.wav\t1600\n")
    data = AudioWindowDataset(str(tsv), 16000, 1024)
    assert len(data.source.paths) == 6
    reasons = sorted(r.split(":")[0] for _, r in data.report.skipped)
    assert reasons == ["malformed", "missing"]
    # a cut that points past the end of its recording, and a duplicated id in HF
    recordings, supervisions = lhotse_sets(wavs)
    cuts = lhotse.CutSet.from_manifests(recordings=recordings, supervisions=supervisions)
    cuts = cuts.trim_to_supervisions().to_eager()
    bad = cuts[0].with_id("late")
    bad.start = 5.0
    lhotse.CutSet.from_cuts([*cuts, bad]).to_file(tmp_path / "bad.jsonl.gz")
    data = AudioFileDataset(str(tmp_path / "bad.jsonl.gz"), 16000)
    assert len(data) == 6 and dict(data.report.skipped)["late"].startswith("bad segment")


def test_shards_name_samples_without_audio_and_duplicate_keys(tmp_path, wavs):
    for n in range(2):
        with wds.TarWriter(str(tmp_path / f"s-{n}.tar")) as sink:
            sink.write({"__key__": "a", "wav": wavs[n][0].read_bytes()})
            sink.write({"__key__": f"b{n}", "json": {"speaker": "x"}})
    records = list_source(str(tmp_path / "s-{0..1}.tar"), "auto", (), group_rule("auto"))
    problems = [(Path(r.path).name, r.problem.split(":")[0]) for r in records if r.problem]
    assert problems == [("b0", "no audio"), ("a", "duplicate key"), ("b1", "no audio")]
    assert [r.path for r in records if not r.problem] == ["a"]


def test_a_hf_dataset_dict_and_a_forced_format_are_explained(tmp_path, wavs):
    with pytest.raises(DataError, match="DatasetDict: pass one split"):
        folder = write_hf(wavs, tmp_path)
        datasets.DatasetDict({"train": datasets.load_from_disk(folder)}).save_to_disk(
            str(tmp_path / "dd")
        )
        audio_records(str(tmp_path / "dd"))
    tsv = write_fairseq(wavs, tmp_path)
    assert len(audio_records(f"fairseq:{tsv}")) == 6
    with pytest.raises(DataError, match="not for this modality"):
        list_source(tsv, "kaldi", (".npy",), group_rule("auto"), ("folder", "manifest"))


def test_hf_audio_bytes_decode_without_torchcodec(tmp_path, wavs):
    folder = write_hf(wavs, tmp_path)
    data = AudioFileDataset(folder, 16000)
    expected = torch.from_numpy(sf.read(io.BytesIO(wavs[3][0].read_bytes()), dtype="float32")[0])
    assert torch.equal(data[3]["x"], expected) and data[3]["path"] == "utt3"
    info = json.loads((Path(folder) / "dataset_info.json").read_text())
    assert info["features"]["audio"]["_type"] == "Audio"


def test_fairseq_counts_are_the_training_lengths_and_no_header_is_read(tmp_path, wavs, monkeypatch):
    # the manifest exists so that 100,000 headers are not read at startup (benchmarks/
    # corpus_io.py): training windows take its counts; strict mode and extraction probe
    tsv = Path(write_fairseq(wavs, tmp_path))
    lines = tsv.read_text().splitlines()
    root, first = lines[0], lines[1].split("\t")
    lines[1] = f"{first[0]}\t{int(first[1]) + 16000}"  # one count longer than the file
    tsv.write_text("\n".join([root, *lines[1:]]) + "\n")
    true = [sf.info(p).frames for p, _ in wavs]
    opened = []
    real = sf.SoundFile

    def counting(*args, **kwargs):
        opened.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(sf, "SoundFile", counting)
    data = AudioWindowDataset(str(tsv), 16000, 1024)
    assert opened == []  # not one header read
    assert data.source.lengths == [true[0] + 16000, *true[1:]]
    assert AudioWindowDataset(str(tsv), 16000, 1024, strict=True).source.lengths == true
    assert AudioFileDataset(str(tsv), 16000).source.lengths == true
    # a window past the real end of the over-counted file is an error (the window data
    # set reports it and reads the next item), not an empty window
    with pytest.raises(DataError, match="shorter than listed"):
        data.source.read(0, true[0] + 100, 1024)
    assert data.source.read(0, 0, 1024).shape == (1024,)
