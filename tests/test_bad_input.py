"""A user's mistake, a damaged file or a concurrent run through the command line.

Every case asserts the contract of the README's "Data and bad input": exit code 2 (or
success where the input is fine), ONE line on stderr that names the culprit (key, file
or value), no traceback, and nothing written that should not be. Most cases run
in-process through ``cpc.cli.main`` (fast); the cases that need a real process (a lock
held by another process, a memory limit, the installed entry point) use subprocesses.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import safetensors.torch
import torch

from cpc.checkpoints.store import list_checkpoints
from cpc.cli import main
from cpc.config.ranges import RULES
from tests.train.conftest import TINY_MODEL, subprocess_env, write_wavs

FAST = [
    *TINY_MODEL,
    "data.window=1024",
    "data.batch_size=2",
    "optim.max_steps=2",
    "optim.warmup_steps=1",
    "run.ckpt_every=1",
    "run.val_every=1000",
    "run.progress=false",
    "run.device=cpu",
]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_wavs(tmp_path_factory.mktemp("wavs"), count=4)


@pytest.fixture(scope="module")
def trained(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished tiny run with two checkpoints (steps 1 and 2)."""
    torch.set_num_threads(1)
    run = tmp_path_factory.mktemp("run") / "run"
    # optim.lr=1e-3 is also a case: YAML 1.1 reads it as a string; it must be accepted.
    argv = ["pretrain", "configs/speech_small_cpu.yaml", *FAST, "optim.lr=1e-3"]
    assert main([*argv, f"data.train={corpus}", f"run.out_dir={run}"]) == 0
    assert [p.name for p in list_checkpoints(run)] == ["step_00000001", "step_00000002"]
    return run


def refused(argv: list[str], capsys: pytest.CaptureFixture[str], culprit: str) -> str:
    """Run the CLI in-process; assert exit 2 and one stderr line naming ``culprit``.

    A value the parser itself refuses (a choice, a type) exits through argparse's
    ``SystemExit(2)``, as the installed command does; any other refusal returns 2.
    """
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as stop:
        code = stop.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert culprit in lines[0], lines[0]
    return lines[0]


# --- config values: refused before any data is read or anything written -------------

CONFIG_CASES = {
    "channels 0": (["model.channels=0"], "model.channels"),
    "num_offsets 0": (["model.num_offsets=0"], "model.num_offsets"),
    "num_negatives -1": (["model.num_negatives=-1"], "model.num_negatives"),
    "context_dim 0": (["model.context_dim=0"], "model.context_dim"),
    "kernels empty": (["model.kernels=[]", "model.strides=[]"], "model.kernels"),
    "kernels zero": (["model.kernels=[10, 0, 4]"], "model.kernels[1]"),
    "strides zero": (["model.strides=[5, 0, 2]"], "model.strides[1]"),
    "kernels/strides lengths": (["model.kernels=[10, 8]"], "model.kernels"),
    "sample_rate 0": (["model.sample_rate=0"], "model.sample_rate"),
    "temperature 0": (["model.temperature=0"], "model.temperature"),
    "lr negative": (["optim.lr=-0.1"], "optim.lr"),
    "lr NaN": (["optim.lr=.nan"], "optim.lr"),
    "lr 1e400": (["optim.lr=1e400"], "optim.lr"),
    "betas": (["optim.betas=[0.9]"], "optim.betas"),
    "log_every 0": (["run.log_every=0"], "run.log_every"),
    "val_every 0": (["run.val_every=0"], "run.val_every"),
    "ckpt_every 0": (["run.ckpt_every=0"], "run.ckpt_every"),
    "window 0": (["data.window=0"], "data.window"),
    "window < receptive field": (["data.window=100"], "receptive field"),
    "offsets never fit": (["model.num_offsets=40"], "data.window=1024"),
    "10**400": ([f"model.channels={10**400}"], "model.channels"),
    "5000 digits": ([f"model.channels=1{'0' * 5000}"], "model.channels"),
    "scanner error": (["model.channels=[1,"], "model.channels=[1,"),
    "nesting": (["model.kernels=" + "[" * 1200], "model.kernels"),
    "unknown key": (["model.chanels=4"], "model.chanels"),
    "not key=value": (["model"], "'model'"),
    "empty data.train": (["data.train="], "data.train"),
    "string for int": (["data.batch_size=many"], "data.batch_size"),
}


@pytest.mark.parametrize("case", CONFIG_CASES)
def test_bad_config_value(case: str, corpus: Path, tmp_path: Path, capsys) -> None:
    overrides, culprit = CONFIG_CASES[case]
    out = tmp_path / "run"
    argv = ["pretrain", "configs/speech_small_cpu.yaml", *FAST, f"data.train={corpus}"]
    refused([*argv, f"run.out_dir={out}", *overrides], capsys, culprit)
    assert not out.exists()


def test_cuda_without_gpu(corpus: Path, tmp_path: Path, capsys) -> None:
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    out = tmp_path / "run"
    argv = ["pretrain", "configs/speech_small_cpu.yaml", *FAST, f"data.train={corpus}"]
    refused([*argv, f"run.out_dir={out}", "run.device=cuda"], capsys, "run.device=cuda")
    assert not out.exists()


def test_every_rule_names_a_real_field() -> None:
    """A renamed config field must not silently lose its range check."""
    from cpc.config import Config

    sections = {f: getattr(Config(), f) for f in ("model", "data", "optim", "run")}
    for key in RULES:
        section, name = key.split(".")
        assert hasattr(sections[section], name), key


YAML_FILES = {
    "a string": (b"just some words\n", "not a str"),
    "a list": (b"- model\n- data\n", "not a list"),
    "binary": (bytes(range(256)) * 4, "not a text"),
    "empty": (b"", "data.train"),
    "scanner error": (b"model: {channels: [1,\n", "not valid YAML"),
    "deep nesting": (b"model: " + b"[" * 1200 + b"\n", "nested too deeply"),
    "non-string keys": (b"1: 2\n3: 4\n", "unknown config section"),
}


@pytest.mark.parametrize("case", YAML_FILES)
def test_bad_yaml_file(case: str, tmp_path: Path, capsys) -> None:
    text, culprit = YAML_FILES[case]
    path = tmp_path / "config.yaml"
    path.write_bytes(text)
    refused(["pretrain", str(path), f"run.out_dir={tmp_path / 'run'}"], capsys, culprit)
    assert not (tmp_path / "run").exists()


# --- run directory: lock, permissions ------------------------------------------------


def test_out_dir_under_a_file(corpus: Path, tmp_path: Path, capsys) -> None:
    (tmp_path / "file").write_text("x")
    argv = ["pretrain", "configs/speech_small_cpu.yaml", *FAST, f"data.train={corpus}"]
    refused([*argv, f"run.out_dir={tmp_path / 'file' / 'run'}"], capsys, "run.out_dir")
    assert (tmp_path / "file").read_text() == "x"


def test_out_dir_not_writable(corpus: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    """Read-only folder: chmod where it binds (not as root), else a read-only mount."""
    argv = ["pretrain", "configs/speech_small_cpu.yaml", *FAST, f"data.train={corpus}"]
    if os.geteuid() == 0:
        refused([*argv, "run.out_dir=/sys/cpc-run"], capsys, "run.out_dir=/sys/cpc-run")
        return
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        refused([*argv, f"run.out_dir={folder}"], capsys, "cannot write")
        assert list(folder.iterdir()) == []
    finally:
        folder.chmod(0o700)


def _hold_lock(out_dir: Path) -> int:
    """A forked child that takes the run lock and sleeps; returns its pid."""
    from cpc.checkpoints.lock import RunLock

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: hold the lock until killed
        try:
            RunLock(out_dir).acquire()
            os.write(write, b"held")
            signal.pause()
        finally:
            os._exit(0)
    os.close(write)
    assert os.read(read, 4) == b"held"
    os.close(read)
    return pid


def _kill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


def test_busy_run_dir_is_refused_naming_the_holder(
    corpus: Path, trained: Path, tmp_path: Path, capsys
) -> None:
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    before = sorted(p.name for p in (run / "checkpoints").iterdir())
    metrics = (run / "metrics.jsonl").read_text()
    holder = _hold_lock(run)
    argv = ["pretrain", "configs/speech_small_cpu.yaml", *FAST, "optim.max_steps=4"]
    try:
        line = refused([*argv, f"data.train={corpus}", f"run.out_dir={run}"], capsys, "in use")
    finally:
        _kill(holder)
    assert f"pid {holder} on host" in line
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == before
    assert (run / "metrics.jsonl").read_text() == metrics


def test_stale_lock_is_taken_over(corpus: Path, trained: Path, tmp_path: Path, caplog) -> None:
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    holder = _hold_lock(run)
    _kill(holder)  # dies holding it: the lock file stays
    assert f'"pid": {holder}' in (run / ".lock").read_text()
    argv = ["pretrain", "configs/speech_small_cpu.yaml", *FAST, "optim.max_steps=3"]
    with caplog.at_level("INFO"):
        assert main([*argv, f"data.train={corpus}", f"run.out_dir={run}"]) == 0
    assert f"pid {holder}" in caplog.text and "has exited" in caplog.text
    assert list_checkpoints(run)[-1].name == "step_00000003"


def test_save_never_deletes_a_live_process_temp_folder(trained: Path, tmp_path: Path) -> None:
    import socket

    from cpc.checkpoints.store import TrainState, load_model, save_checkpoint
    from cpc.config import load_config

    run = tmp_path / "run"
    shutil.copytree(trained, run)
    host = socket.gethostname()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    root = run / "checkpoints"
    mine = root / f".tmp-step_00000009-{live.pid}@{host}"
    gone = root / f".tmp-step_00000008-{dead.pid}@{host}"
    other_host = root / f".tmp-step_00000007-{dead.pid}@elsewhere"
    for folder in (mine, gone, other_host):
        folder.mkdir()
    try:
        model = load_model(run)
        config = load_config(run / "config.yaml")
        opt = torch.optim.AdamW(model.parameters())
        save_checkpoint(run, model=model, optimizer=opt, state=TrainState(5), config=config)
        assert mine.exists() and other_host.exists() and not gone.exists()
    finally:
        live.kill()
        live.wait()


# --- checkpoints: damaged, crafted, oversized ----------------------------------------


def _damage(ckpt: Path, how: str) -> None:
    weights = ckpt / "model.safetensors"
    if how == "truncated weights":
        weights.write_bytes(weights.read_bytes()[:100])
    elif how == "flipped byte":  # header intact: only the checksum notices
        data = bytearray(weights.read_bytes())
        data[-3] ^= 0xFF
        weights.write_bytes(bytes(data))
    elif how == "meta not json":
        (ckpt / "meta.json").write_text("{")


@pytest.mark.parametrize("how", ["truncated weights", "flipped byte", "meta not json"])
def test_resume_falls_back_past_a_damaged_newest_checkpoint(
    how: str, corpus: Path, trained: Path, tmp_path: Path, caplog
) -> None:
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    _damage(run / "checkpoints" / "step_00000002", how)
    argv = ["pretrain", "configs/speech_small_cpu.yaml", *FAST, "optim.max_steps=3"]
    with caplog.at_level("INFO"):
        assert main([*argv, f"data.train={corpus}", f"run.out_dir={run}"]) == 0
    assert "skipped checkpoint step_00000002" in caplog.text
    assert "resumed from" in caplog.text and "step_00000001" in caplog.text
    names = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert names == ["step_00000001", "step_00000002", "step_00000002.corrupt", "step_00000003"]


def test_resume_with_no_checkpoint_that_verifies(
    corpus: Path, trained: Path, tmp_path: Path, capsys
) -> None:
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    for ckpt in list_checkpoints(run):
        _damage(ckpt, "truncated weights")
    argv = ["pretrain", "configs/speech_small_cpu.yaml", *FAST, "optim.max_steps=3"]
    line = refused([*argv, f"data.train={corpus}", f"run.out_dir={run}"], capsys, "verifies")
    assert "step_00000001" in line and "step_00000002" in line
    assert len(list_checkpoints(run)) == 2  # nothing set aside when nothing loaded


class Payload:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_pickled_train_state_is_refused_without_the_unsafe_hint(
    trained: Path, tmp_path: Path, corpus: Path, capsys
) -> None:
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    shutil.rmtree(run / "checkpoints" / "step_00000001")
    state = run / "checkpoints" / "step_00000002" / "train_state.pt"
    torch.save({"optimizer": Payload(), "state": {}}, state)
    argv = ["pretrain", "configs/speech_small_cpu.yaml", *FAST, "optim.max_steps=3"]
    line = refused([*argv, f"data.train={corpus}", f"run.out_dir={run}"], capsys, "refused")
    assert "train_state.pt" in line and "system" in line  # names what it asked for
    assert "weights_only=False" not in line and "pwned" not in capsys.readouterr().out


def _edit_meta(ckpt: Path, text: str) -> None:
    (ckpt / "meta.json").write_text(text)


def _meta_with(trained: Path, **model: object) -> str:
    meta = json.loads((trained / "checkpoints" / "step_00000002" / "meta.json").read_text())
    meta["config"]["model"].update(model)
    return json.dumps(meta)


META_CASES = {
    "channels 1e9": (lambda t: _meta_with(t, channels=1_000_000_000), "model.channels"),
    "num_offsets 1e8": (lambda t: _meta_with(t, num_offsets=1e8), "model.num_offsets"),
    "channels 10**400": (lambda t: _meta_with(t, channels=10**400), "model.channels"),
    "nesting bomb": (lambda t: '{"config": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested"),
    # Inside the bounds, yet 4096 channels is not what the weights hold: the header says so.
    "channels 4096": (lambda t: _meta_with(t, channels=4096), "weight shapes differ"),
    "config a list": (lambda t: '{"config": [1, 2]}', "'config' is not a mapping"),
}


@pytest.mark.parametrize("command", ["info", "extract"])
@pytest.mark.parametrize("case", META_CASES)
def test_untrusted_meta_is_checked_before_building(
    case: str, command: str, trained: Path, corpus: Path, tmp_path: Path, capsys
) -> None:
    make, culprit = META_CASES[case]
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    ckpt = run / "checkpoints" / "step_00000002"
    _edit_meta(ckpt, make(trained))
    out = tmp_path / "feats"
    if command == "info":
        argv = ["info", str(ckpt)]
    else:
        argv = ["extract", "--checkpoint", str(ckpt), "--input", str(corpus), "--output", str(out)]
    refused(argv, capsys, culprit)
    assert not out.exists()


def test_oversized_safetensors_header(trained: Path, tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    weights = run / "checkpoints" / "step_00000002" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[:8] = (2**40).to_bytes(8, "little")
    weights.write_bytes(bytes(data))
    refused(["info", str(weights.parent)], capsys, "header of 1099511627776 bytes")


def test_meta_bomb_in_a_memory_limited_process(trained: Path, tmp_path: Path) -> None:
    """The real entry point under a 16 GB address-space limit (imports map several GB of
    libraries): building the model this meta.json describes (60000 channels, about 400
    GB) would die; the header check must refuse first."""
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    ckpt = run / "checkpoints" / "step_00000002"
    _edit_meta(ckpt, _meta_with(trained, channels=60_000, context_dim=60_000))

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (16 << 30, 16 << 30))

    proc = subprocess.run(
        [sys.executable, "-m", "cpc.cli", "info", str(ckpt)],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=limit,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert "weight shapes differ" in proc.stderr


def test_info_reads_a_good_checkpoint_without_building_weights(
    trained: Path, capsys, monkeypatch
) -> None:
    import cpc.checkpoints.loading

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("info built the model")

    monkeypatch.setattr(cpc.checkpoints.loading, "build_model", forbidden)
    assert main(["info", str(trained)]) == 0
    out = capsys.readouterr().out
    assert "step: 2" in out and "parameters:" in out


# --- extraction arguments ------------------------------------------------------------


def test_extract_bad_device(trained: Path, corpus: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "feats"
    argv = ["extract", "--checkpoint", str(trained), "--input", str(corpus), "--output", str(out)]
    refused([*argv, "--device", "bogus"], capsys, "'bogus'")
    if not torch.cuda.is_available():
        refused([*argv, "--device", "cuda"], capsys, "--device cuda")
    assert not out.exists()


def test_extract_output_under_a_file(trained: Path, corpus: Path, tmp_path: Path, capsys):
    (tmp_path / "file").write_text("x")
    out = tmp_path / "file" / "feats"
    argv = ["extract", "--checkpoint", str(trained), "--input", str(corpus), "--output", str(out)]
    refused(argv, capsys, "is a file")
    assert (tmp_path / "file").read_text() == "x"


def test_extract_refuses_a_folder_with_features_unless_overwrite(
    trained: Path, corpus: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "feats"
    argv = ["extract", "--checkpoint", str(trained), "--input", str(corpus), "--output", str(out)]
    assert main(argv) == 0
    index = (out / "index.csv").read_text()
    (out / "index.csv").write_text("path,features,steps,dim\nold,old.npy,1,16\n")
    refused(argv, capsys, "already holds features")
    assert "old.npy" in (out / "index.csv").read_text()  # untouched
    assert main([*argv, "--overwrite"]) == 0
    assert (out / "index.csv").read_text() == index


def test_non_finite_loss_is_one_line(corpus: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    """A NaN in the batch makes the real loss NaN; the message names the step."""
    import cpc.train.trainer as trainer

    real = trainer.micro_step

    def poisoned(net, batch, **kwargs):
        batch["x"] = batch["x"] * float("nan")
        return real(net, batch, **kwargs)

    monkeypatch.setattr(trainer, "micro_step", poisoned)
    run = tmp_path / "run"
    argv = ["pretrain", "configs/speech_small_cpu.yaml", *FAST, f"data.train={corpus}"]
    line = refused([*argv, f"run.out_dir={run}"], capsys, "non-finite loss")
    assert "step 1" in line and "Last good checkpoint: none" in line
    assert list_checkpoints(run) == []


def test_entry_point_prints_no_traceback(tmp_path: Path) -> None:
    """The installed-command path (python -m cpc.cli) for a binary config file."""
    path = tmp_path / "config.yaml"
    path.write_bytes(bytes(range(256)))
    proc = subprocess.run(
        [sys.executable, "-m", "cpc.cli", "pretrain", str(path)],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"cpc pretrain: error: {path}: not a text (UTF-8) file: is it a config?"
    ]


def test_weights_file_is_loaded_only_after_the_header_matches(trained: Path) -> None:
    """The checked loader still loads good weights bit for bit."""
    import cpc

    model = cpc.load(str(trained))
    saved = safetensors.torch.load_file(
        str(trained / "checkpoints/step_00000002/model.safetensors")
    )
    assert all(torch.equal(v, saved[k]) for k, v in model.state_dict().items())


# --- data: extraction never substitutes, files counted once, odd folder entries ----


@pytest.fixture(scope="module")
def messy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three good files, two that pass the header check but fail to decode (NaN, inf
    samples, several training windows long), a folder named like a file, a dangling
    link and a link loop."""
    import numpy as np
    import soundfile as sf

    root = write_wavs(tmp_path_factory.mktemp("messy"), count=3, low=3000, high=4000)
    rng = np.random.default_rng(5)
    for name, value in [("nan.wav", np.nan), ("inf.wav", np.inf)]:
        x = (0.1 * rng.standard_normal(12000)).astype(np.float32)
        x[9000::500] = value  # from 0.56 s on: the first blocks decode fine
        sf.write(root / "spk0" / name, x, 16000, subtype="FLOAT")
    (root / "folder.wav").mkdir()
    os.symlink(root / "gone.wav", root / "dangling.wav")
    os.symlink(root / "loop.wav", root / "loop.wav")
    return root


def test_extraction_never_substitutes(trained: Path, messy: Path, tmp_path: Path, capsys):
    out = tmp_path / "feats"
    argv = ["extract", "--checkpoint", str(trained), "--input", str(messy), "--output", str(out)]
    argv += ["--chunk-steps", "7"]  # several chunks per file: a failure comes half-way
    assert main(argv) == 0
    printed = capsys.readouterr().out
    rows = (out / "index.csv").read_text().splitlines()[1:]
    names = sorted(Path(row.split(",")[0]).name for row in rows)
    assert names == ["f0.wav", "f1.wav", "f2.wav"]
    assert f"features of {len(rows)} files written" in printed
    assert sorted(p.name for p in out.glob("*.npy")) == sorted(r.split(",")[1] for r in rows)
    for bad in ("nan.wav", "inf.wav", "folder.wav", "dangling.wav", "loop.wav"):
        assert bad not in (out / "index.csv").read_text()
    assert "skipped 5" in printed and "non-finite: 2" in printed and "not a file: 3" in printed


def test_training_counts_each_bad_file_once(trained: Path, messy: Path, tmp_path: Path):
    run = tmp_path / "run"
    argv = ["pretrain", "configs/speech_small_cpu.yaml", *FAST, "optim.max_steps=12"]
    argv += ["data.batch_size=4", "data.val_fraction=0"]  # 12 steps: over an epoch
    assert main([*argv, f"data.train={messy}", f"run.out_dir={run}"]) == 0
    data = json.loads((run / "summary.json").read_text())["data"]
    # nan.wav and inf.wav are 11 windows long each, most of them failing: each counts once.
    assert data["skipped_by_reason"] == {"non-finite": 2, "not a file": 3}
    assert data["skipped"] == 5


DATA_FACTS = {
    "rate a string": ({"sample_rate": "fast"}, "data.sample_rate"),
    "rate zero": ({"sample_rate": 0}, "data.sample_rate"),
    "std zero": ({"stats": {"channels": ["x"], "mean": [0.0], "std": [0.0]}}, "data.stats.std"),
    "std NaN": ({"stats": {"channels": ["x"], "mean": [0.0], "std": [float("nan")]}}, "std"),
    "stats short": ({"stats": {"channels": ["x", "y"], "mean": [0.0], "std": [1.0]}}, "stats"),
    "stats a list": ({"stats": [1, 2]}, "data.stats"),
    "channels a number": ({"channels": 5}, "data.channels"),
    "facts a list": ([1, 2], "data=[1, 2]"),
}


@pytest.mark.parametrize("case", DATA_FACTS)
def test_garbage_data_facts_are_refused(
    case: str, trained: Path, corpus: Path, tmp_path: Path, capsys
) -> None:
    facts, culprit = DATA_FACTS[case]
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    ckpt = run / "checkpoints" / "step_00000002"
    meta = json.loads((ckpt / "meta.json").read_text())
    meta["data"] = facts
    (ckpt / "meta.json").write_text(json.dumps(meta))
    out = tmp_path / "feats"
    argv = ["extract", "--checkpoint", str(ckpt), "--input", str(corpus), "--output", str(out)]
    line = refused(argv, capsys, culprit)
    assert "meta.json" in line
    assert not out.exists()
