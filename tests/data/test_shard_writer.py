"""``cpc data shard``: WebDataset shards from every source, read back item for item.

The sources are the tiny corpus of ``test_formats.py`` written by each toolkit's own
library; every sharded item must come back with its id, speaker and exactly the
samples the source gives (segments are cut losslessly).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from cpc.cli import main
from cpc.data.audio import audio_records
from cpc.data.formats.clips import read_clip
from cpc.data.formats.shard_writer import parse_size, sample_key
from cpc.data.formats.stream import ShardStream
from cpc.errors import ConfigError
from cpc.train import train
from tests.data.test_formats import WRITERS, wavs  # noqa: F401 (a fixture)
from tests.train.conftest import tiny_config

pytest.importorskip("lhotse")
pytest.importorskip("datasets")
pytest.importorskip("webdataset")

pytestmark = pytest.mark.usefixtures("one_thread")


def write_folder(wavs, root: Path) -> str:  # noqa: F811
    return str(wavs[0][0].parent.parent)


def write_manifest(wavs, root: Path) -> str:  # noqa: F811
    with open(root / "m.csv", "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["path", "speaker", "label"])
        out.writerows([str(p), s, f"tone{i}"] for i, (p, s) in enumerate(wavs))
    return str(root / "m.csv")


SOURCES = {"folder": write_folder, "manifest": write_manifest, **WRITERS}


def shard(source: str, out: Path, *extra: str) -> int:
    return main(["data", "shard", source, "--out", str(out), *extra])


@pytest.mark.parametrize("name", list(SOURCES))
def test_every_source_shards_and_reads_back_item_for_item(tmp_path, wavs, name):  # noqa: F811
    spec = SOURCES[name](wavs, tmp_path)
    before = [r for r in audio_records(spec) if r.problem is None]
    out = tmp_path / "out"
    assert shard(spec, out, "--shard-size", "30KB") == 0
    index = json.loads((out / "shards.json").read_text())
    assert index["items"] == 6 and index["shards"] >= 2
    files = sorted(out.glob("shards-*.tar"))
    assert len(files) == index["shards"] and all(f.stat().st_size <= 30_000 for f in files)
    after = audio_records(str(out / index["pattern"]))
    assert len(after) == 6 and all(r.problem is None for r in after)
    if name in ("folder", "manifest", "fairseq"):  # files: their path below the source
        audio = wavs[0][0].parent.parent
        assert [r.path for r in after] == [
            Path(r.path).relative_to(audio).with_suffix("").as_posix() for r in before
        ]
        assert after[0].path in ("ann/utt0", "bob/utt1")
    else:  # the format's own ids
        assert [r.path for r in after] == [sample_key(r.path, False) for r in before]
    assert [r.group for r in after] == [r.group for r in before]
    assert sorted({r.group for r in after}) == ["ann", "bob"]
    for old, new in zip(before, after, strict=True):  # the same samples, segments too
        assert torch.equal(read_clip(old, 16000), read_clip(new, 16000))


def test_shards_train_two_steps_indexed_and_streamed_with_the_same_ids(tmp_path, wavs):  # noqa: F811
    out = tmp_path / "shards"
    assert shard(write_manifest(wavs, tmp_path), out, "--shard-size", "20KB") == 0
    pattern = str(out / json.loads((out / "shards.json").read_text())["pattern"])
    result = train(tiny_config(pattern, tmp_path / "run", "optim.max_steps=2", "data.batch_size=2"))
    assert result.step == 2 and result.summary["data"]["train_files"]["checked"] == 6
    stream = ShardStream(f"file://{pattern}", 16000, 1024)
    keys = sorted(stream.keys())
    assert keys == sorted(f"{s}/utt{i}" for i, (_, s) in enumerate(wavs))
    meta = json.loads(next(iter(stream._order()))["json"])
    assert set(meta) == {"id", "speaker", "label"} and meta["id"].endswith(".wav")
    streamed = tiny_config(f"file://{pattern}", tmp_path / "run2", "optim.max_steps=2",
                           "data.batch_size=2", "data.val_fraction=0")  # fmt: skip
    assert train(streamed).step == 2


@pytest.mark.parametrize(
    ("text", "size"),
    [("1GB", 10**9), ("500MB", 500 * 10**6), ("2GiB", 2 * 2**30), ("1.5kb", 1500), ("4096", 4096)],
)
def test_sizes_parse(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("bad", ["0", "-1", "abc", "1XB", "0.0001B"])
def test_a_bad_size_is_one_line_and_writes_nothing(tmp_path, wavs, capsys, bad):  # noqa: F811
    with pytest.raises(ConfigError):
        parse_size(bad)
    out = tmp_path / "shards"
    assert shard(write_folder(wavs, tmp_path), out, f"--shard-size={bad}") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("cpc data shard: error: shard size")
    assert not out.exists()


def test_shards_already_there_are_refused_unless_overwrite(tmp_path, wavs, capsys):  # noqa: F811
    source, out = write_folder(wavs, tmp_path), tmp_path / "shards"
    assert shard(source, out, "--shard-size", "10KB") == 0
    many = sorted(out.glob("*.tar"))
    assert shard(source, out) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds shards already" in err[0] and "--overwrite" in err[0]
    assert sorted(out.glob("*.tar")) == many
    assert shard(source, out, "--overwrite") == 0  # 1GB: one shard, the old ones gone
    assert [f.name for f in out.glob("*.tar")] == ["shards-000000.tar"]


def test_an_error_midway_leaves_no_partial_shard(tmp_path, wavs, monkeypatch, capsys):  # noqa: F811
    source, out = write_folder(wavs, tmp_path), tmp_path / "shards"
    assert shard(source, out, "--shard-size", "10KB") == 0
    kept = {f.name: f.read_bytes() for f in out.iterdir()}
    from cpc.data.formats import shard_writer

    real, calls = shard_writer.sample_audio, []

    def disk_full_at_the_fourth(record):
        calls.append(record)
        if len(calls) == 4:
            raise OSError(28, "No space left on device")
        return real(record)

    monkeypatch.setattr(shard_writer, "sample_audio", disk_full_at_the_fourth)
    assert shard(source, out, "--shard-size", "10KB", "--overwrite") == 2
    assert "No space left on device" in capsys.readouterr().err
    assert {f.name: f.read_bytes() for f in out.iterdir()} == kept  # as it was
    fresh = tmp_path / "fresh"
    calls.clear()
    assert shard(source, fresh, "--shard-size", "10KB") == 2
    assert not fresh.exists()


def test_unusable_entries_are_reported_and_left_out(tmp_path, wavs, capsys):  # noqa: F811
    source = Path(write_folder(wavs, tmp_path))
    (source / "ann" / "broken.wav").write_bytes(b"RIFF nothing")
    assert shard(str(source), tmp_path / "shards") == 0
    captured = capsys.readouterr()
    assert "broken.wav: unreadable" in captured.err
    assert "6 items in 1 shards" in captured.out and "1 skipped" in captured.out
