"""Issue 19's edge cases: each input that gave a traceback, a silent wrong result or an
unbounded allocation, now refused in one line (exit 2) before anything is written.

Same contract as ``tests/test_bad_input.py`` (whose fixtures this module reuses): exit
code 2, ONE stderr line naming the culprit, no traceback, and no output folder left.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch

import cpc
from cpc.checkpoints.hub import from_pretrained, save_pretrained
from cpc.checkpoints.loading import file_sha256
from cpc.cli import main
from cpc.data.signals import SignalWindowDataset
from cpc.errors import CheckpointError, ConfigError
from tests import test_bad_input as base
from tests.test_bad_input import refused

pytestmark = pytest.mark.usefixtures("one_thread")
# The tiny corpus and trained run of tests/test_bad_input.py (module-scoped fixtures).
corpus = base.corpus
trained = base.trained
CPC_AUDIO = Path(__file__).parent / "fixtures" / "cpc_audio"


@pytest.fixture(scope="module")
def feats(trained: Path, corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("feats") / "feats"
    argv = ["extract", "--checkpoint", str(trained), "--input", str(corpus), "--output", str(out)]
    assert main(argv) == 0
    return out


@pytest.fixture(scope="module")
def files(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Manifests, an item file, garbage and CPC_audio checkpoints broken in one way each."""
    root = tmp_path_factory.mktemp("files")
    wavs = sorted(corpus.rglob("*.wav"))
    rows = [f"{p},{p.parent.name}" for p in wavs]
    (root / "two.csv").write_text("path,speaker\n" + "\n".join(rows) + "\n")
    (root / "one.csv").write_text("path,speaker\n" + "\n".join(f"{p},s" for p in wavs) + "\n")
    (root / "garbage.bin").write_bytes(bytes(range(256)) * 3)
    header = "#file onset offset #phone prev next speaker"
    (root / "x.item").write_text(f"{header}\nf0 0.01 0.05 a b c s\n")
    train = root / "ca_train"
    shutil.copytree(CPC_AUDIO / "paper_gru_bn", train)
    args = json.loads((train / "checkpoint_args.json").read_text())
    (train / "checkpoint_args.json").write_text(json.dumps({**args, "nPredicts": "abc"}))
    hub = torch.load(CPC_AUDIO / "default_hub" / "checkpoint.pt", weights_only=True)
    first = next(iter(hub["weights"]))
    torch.save({**hub, "weights": {**hub["weights"], first: 3}}, root / "ca_int.pt")
    nan = {k: v.clone() for k, v in hub["weights"].items()}
    nan["gEncoder.conv0.weight"][0, 0, 0] = float("nan")
    torch.save({**hub, "weights": nan}, root / "ca_nan.pt")
    bad = root / "feats_nonutf8"
    bad.mkdir()
    (bad / "index.csv").write_bytes(b"\xff\xfe\xfa\n")
    short = root / "feats_short_rows"
    short.mkdir()
    (short / "index.csv").write_text("path,features\nonly-a-path\n")
    return {
        "two": root / "two.csv",
        "one": root / "one.csv",
        "garbage": root / "garbage.bin",
        "item": root / "x.item",
        "ca_train": train,
        "ca_int": root / "ca_int.pt",
        "ca_nan": root / "ca_nan.pt",
        "nonutf8": bad,
        "short_rows": short,
    }


# Each case: the argv (placeholders: {run}, {feats}, {out} and the names in ``files``)
# and what the one line must name.
CASES: dict[str, tuple[str, str]] = {
    "convert nPredicts abc": ("convert cpc_audio {ca_train} --out {out}", "nPredicts"),
    "convert int weight": ("convert cpc_audio {ca_int} --out {out}", "not a tensor"),
    "convert NaN weight": ("convert cpc_audio {ca_nan} --out {out}", "gEncoder.conv0.weight"),
    "units fit non-UTF-8 index": ("units fit {nonutf8} --k 2 --out {out}", "index.csv"),
    "units fit short rows": ("units fit {short_rows} --k 2 --out {out}", "line 2"),
    "units fit max-frames 0": ("units fit {feats} --k 2 --out {out} --max-frames 0", "max_frames"),
    "units fit max-frames -1": (
        "units fit {feats} --k 2 --out {out} --max-frames -1",
        "max_frames",
    ),
    "units fit seed -1": ("units fit {feats} --k 2 --out {out} --seed -1", "seed"),
    "abx binary item": ("abx {feats} {garbage} --out {out}/a.json", "garbage.bin"),
    "abx rate nan": ("abx {feats} {item} --rate nan --out {out}/a.json", "--rate"),
    "abx shift inf": ("abx {feats} {item} --shift inf --out {out}/a.json", "--shift"),
    "probe binary manifest": ("probe {feats} --manifest {garbage} {label}", "garbage.bin"),
    "probe binary label names": (
        "probe {feats} --manifest {two} {label} --label-names {garbage}",
        "garbage.bin",
    ),
    "probe k 0": ("probe {feats} --manifest {two} {label} --k 0", "--k"),
    "probe epochs -1": ("probe {feats} --manifest {two} {label} --epochs -1", "--epochs"),
    "probe one class": ("probe {feats} --manifest {one} {label}", "needs two"),
    # 2 speakers x 2 files, one of each held out: 2 training files.
    "probe k above the training set": (
        "probe {feats} --manifest {two} {label} --k 3",
        "training examples",
    ),
    **{
        f"extract {flag} {value}": (f"extract {{x}} {flag} {value}", flag)
        for flag, value in [
            ("--stream", "nan"),
            ("--stream", "inf"),
            ("--stream", "0"),
            ("--stream", "-5"),
            ("--chunk-steps", "-5"),
        ]
    },
    **{
        f"espeak {flag} {value}": (f"data espeak --out {{out}} {flag} {value}", flag)
        for flag, values in {
            "--minutes": ["-1", "0", "nan", "inf", "1e9"],
            "--speakers": ["0", "-3", "1000000"],
            "--languages": ["xx"],
            "--seed": ["-1"],
        }.items()
        for value in values
    },
    "pen --seed -1": ("data pen --out {out} --seed -1", "--seed"),
    "pen --writers 1e9": ("data pen --out {out} --writers 1000000000", "--writers"),
    "pen --samples 1e12": (
        "data pen --out {out} --samples 1000000000000 --sessions 1",
        "--samples",
    ),
    "pen --forgeries 1e9": ("data pen --out {out} --forgeries 1000000000", "--forgeries"),
    "pen 20 million signatures": (
        "data pen --out {out} --writers 1000000 --setting easy",
        "signatures",
    ),
    "table1 corpus-minutes -1": ("table1 --out {out} --corpus-minutes -1", "--corpus-minutes"),
    "table1 speakers 0": ("table1 --out {out} --speakers 0", "--speakers"),
    "table1 threads 0": ("table1 --out {out} --threads 0", "--threads"),
    "table1 seed -1": ("table1 --out {out} --seed -1", "--seed"),
    "table1 duplicate row": (
        "table1 --out {out} --row x model.num_offsets=4 --row x model.num_offsets=8",
        "'x'",
    ),
    # Found by the fuzzer (tests/cli/test_fuzz.py), not in the list:
    "demo seconds 0": ("demo --out {out} --seconds 0", "--seconds"),
    "data ucr binary .ts": ("data ucr --out {out} --ts {garbage}", "garbage.bin"),
    "data pen sessions 0": ("data pen --out {out} --sessions 0", "cpc data pen: error: --sessions"),
    "quickstart threads 0": ("quickstart --out {out} --threads 0", "--threads"),
    "quickstart minutes nan": ("quickstart --out {out} --minutes nan", "--minutes"),
}


@pytest.mark.parametrize("case", CASES)
def test_refused_in_one_line_with_nothing_written(
    case: str,
    trained: Path,
    feats: Path,
    files: dict[str, Path],
    tmp_path: Path,
    capsys,
) -> None:
    template, culprit = CASES[case]
    out = tmp_path / "out"
    x = f"--checkpoint {trained} --input {feats} --output {out}"
    label = f"--label speaker --out {out}"
    argv = template.format(run=trained, feats=feats, out=out, x=x, label=label, **files)
    refused(argv.split(), capsys, culprit)
    assert not out.exists()


def test_parser_errors_are_one_line(capsys) -> None:
    """argparse's own errors (a usage block before) are one line like every other."""
    with pytest.raises(SystemExit) as exit_:
        main(["extract", "--checkpoint", "r", "--input", "i", "--output", "o", "--stream", "x"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and len(lines) == 1, lines
    assert lines[0].startswith("cpc extract: error: argument --stream: invalid float value")


# --- non-finite weights and features -------------------------------------------------


def _copy_checkpoint(trained: Path, tmp_path: Path, edit: Callable[[dict], None]) -> Path:
    ckpt = tmp_path / "ckpt"
    shutil.copytree(trained / "checkpoints" / "step_00000002", ckpt)
    tensors = safetensors.torch.load_file(str(ckpt / "model.safetensors"))
    edit(tensors)
    safetensors.torch.save_file(tensors, str(ckpt / "model.safetensors"))
    meta = json.loads((ckpt / "meta.json").read_text())
    meta["sha256"]["model.safetensors"] = file_sha256(ckpt / "model.safetensors")
    (ckpt / "meta.json").write_text(json.dumps(meta))
    return ckpt


def _first_conv(tensors: dict) -> str:
    return sorted(k for k in tensors if k.startswith("encoder.") and k.endswith("weight"))[0]


def test_non_finite_weights_are_refused_on_load_naming_the_tensor(
    trained: Path,
    tmp_path: Path,
) -> None:
    def poison(tensors: dict) -> None:
        tensors[_first_conv(tensors)][0] = float("nan")

    ckpt = _copy_checkpoint(trained, tmp_path, poison)
    with pytest.raises(CheckpointError, match=r"encoder\.layers\.0\.weight.*NaN or infinite"):
        cpc.load(str(ckpt))
    hub = save_pretrained(cpc.load(str(trained)), tmp_path / "hub")
    tensors = safetensors.torch.load_file(str(hub / "model.safetensors"))
    poison(tensors)
    safetensors.torch.save_file(tensors, str(hub / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"encoder\.layers\.0\.weight"):
        from_pretrained(hub)


def test_converted_run_carries_checksums_and_loads_without_warning(tmp_path: Path, caplog) -> None:
    run = tmp_path / "run"
    hub = CPC_AUDIO / "default_hub" / "checkpoint.pt"
    assert main(["convert", "cpc_audio", str(hub), "--out", str(run)]) == 0
    assert "sha256" in json.loads((run / "meta.json").read_text())
    with caplog.at_level(logging.WARNING):
        cpc.load(str(run))
    assert "no checksum" not in caplog.text


def test_checkpoint_without_checksums_loads_with_a_warning(
    trained: Path,
    tmp_path: Path,
    caplog,
) -> None:
    ckpt = tmp_path / "ckpt"
    shutil.copytree(trained / "checkpoints" / "step_00000002", ckpt)
    meta = json.loads((ckpt / "meta.json").read_text())
    del meta["sha256"]  # the older format
    (ckpt / "meta.json").write_text(json.dumps(meta))
    with caplog.at_level(logging.WARNING):
        cpc.load(str(ckpt))
    assert "no checksum saved with it" in caplog.text and "model.safetensors" in caplog.text


def test_extract_refuses_non_finite_features_naming_the_file(
    trained: Path,
    corpus: Path,
    tmp_path: Path,
    capsys,
) -> None:
    """Finite weights so large that the features overflow: no row, each file reported."""

    def blow_up(tensors: dict) -> None:
        tensors[_first_conv(tensors)].fill_(3e38)  # finite; the sums overflow

    ckpt = _copy_checkpoint(trained, tmp_path, blow_up)
    out = tmp_path / "feats"
    argv = ["extract", "--checkpoint", str(ckpt), "--input", str(corpus), "--output", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr()
    assert "features of 0 files written" in printed.out
    assert "non-finite features" in printed.out + printed.err
    assert (out / "index.csv").read_text().splitlines() == ["path,features,steps,dim"]
    assert not list(out.glob("*.npy"))


def test_units_apply_refuses_nan_centroids(feats: Path, tmp_path: Path, capsys) -> None:
    units = tmp_path / "units"
    assert main(["units", "fit", str(feats), "--k", "2", "--out", str(units)]) == 0
    with np.load(units / "units.npz") as data:
        arrays = dict(data)
    arrays["centers"][1] = np.nan
    np.savez(units / "units.npz", **arrays)
    out = tmp_path / "applied"
    argv = ["units", "apply", str(feats), "--units", str(units), "--out", str(out)]
    refused(argv, capsys, "centers")
    assert not out.exists()


# --- from_pretrained: config.json checked before anything is built --------------------


def test_from_pretrained_refuses_a_config_that_is_not_json(trained: Path, tmp_path: Path) -> None:
    hub = save_pretrained(cpc.load(str(trained)), tmp_path / "hub")
    (hub / "config.json").write_bytes(b"\xff{not json")
    with pytest.raises(CheckpointError, match=r"config\.json: not readable JSON"):
        from_pretrained(hub)


def test_from_pretrained_checks_the_weights_header_before_building(
    trained: Path,
    tmp_path: Path,
    monkeypatch,
) -> None:
    """A config.json within the config bounds but 137 GB of model: refused, nothing built."""
    hub = save_pretrained(cpc.load(str(trained)), tmp_path / "hub")
    config = json.loads((hub / "config.json").read_text())
    config["model"].update(channels=65536, context_dim=65536)
    (hub / "config.json").write_text(json.dumps(config))
    built = []
    monkeypatch.setattr("cpc.checkpoints.hub.build_model", lambda *a: built.append(a))
    with pytest.raises(CheckpointError, match=r"weight shapes differ|do not match"):
        from_pretrained(hub)
    assert built == []


# --- signals: lengths in samples, the channel count at the first usable file ---------


def test_signal_messages_count_samples_and_channels_fail_fast(tmp_path: Path, caplog) -> None:
    rng = np.random.default_rng(0)
    for i in range(3):
        np.save(tmp_path / f"a{i}_short.npy", rng.standard_normal((5, 2)).astype(np.float32))
    for i in range(40):
        np.save(tmp_path / f"b{i:02d}.npy", rng.standard_normal((64, 2)).astype(np.float32))
    with caplog.at_level(logging.WARNING):
        SignalWindowDataset(str(tmp_path), window=32, min_length=22)
    assert "too short: 5 samples < min_length 22" in caplog.text
    caplog.clear()
    with (
        caplog.at_level(logging.WARNING),
        pytest.raises(ConfigError, match=r"b00\.npy has 2 channels"),
    ):
        SignalWindowDataset(str(tmp_path), window=32, min_length=22, expect_channels=3)
    # Stopped at the first usable file: the three short files were reported, no more.
    assert caplog.text.count("skipping") == 3
