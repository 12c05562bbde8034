"""Kill a training process at any moment, resume it, and get the uninterrupted weights.

The model drops latents with torch's global RNG (:func:`dropout_in_models`), so a resume
that does not restore the RNG state ends with other weights.
"""

import json
import signal

import numpy as np
import pytest
import safetensors.torch
import soundfile as sf
import torch

from cpc.checkpoints.store import list_checkpoints, load_train_state
from cpc.train import train

from .conftest import dropout_in_models, latest, run_python, tiny_config, write_wavs

SCRIPT = """
import json, os, shutil, signal, sys
from pathlib import Path
import torch
torch.set_num_threads(1)
import cpc.checkpoints.store as ckpt
import cpc.train.trainer as trainer
from cpc.config import Config
from cpc.train import train
from tests.train.conftest import dropout_in_models

config = Config.from_dict(json.load(open(sys.argv[1])))
mode, at = sys.argv[2], int(sys.argv[3])
name = f"step_{at:08d}"

def die():
    os.kill(os.getpid(), signal.SIGKILL)

if mode == "while_saving":  # half-way through writing the training state of step `at`
    real_save = torch.save
    def save(obj, path, *args, **kwargs):
        real_save(obj, path, *args, **kwargs)
        if obj["state"]["step"] == at:
            with open(path, "r+b") as f:
                f.truncate(100)
            die()
    ckpt.torch.save = save

if mode == "mid_step":  # after the first micro-batch of step `at`, before the update
    real_micro, calls = trainer.micro_step, []
    def micro(*args, **kwargs):
        if kwargs["step"] == at:
            calls.append(1)
            if len(calls) == 2:
                die()
        return real_micro(*args, **kwargs)
    trainer.micro_step = micro

if mode in ("before_rename", "after_rename"):  # around the rename of checkpoint `at`
    real_replace = os.replace
    def replace(src, dst):
        ours = Path(dst).name == name and Path(src).name.startswith(".tmp-")
        if ours and mode == "before_rename":
            die()
        real_replace(src, dst)
        if ours:
            die()  # complete, but older checkpoints are not yet pruned
    ckpt.os.replace = replace

if mode == "while_pruning":  # half-way through deleting old checkpoint `at`
    real_rmtree = shutil.rmtree
    def rmtree(path, *args, **kwargs):
        if Path(path).name.startswith(f".trash-{name}-"):
            (Path(path) / "model.safetensors").unlink()
            die()
        return real_rmtree(path, *args, **kwargs)
    ckpt.shutil.rmtree = rmtree

def on_step(step, model):
    if mode == "after_step" and step == at:
        die()

with dropout_in_models():
    train(config, on_step=on_step)
"""

#: (how the process dies, at which step, the newest checkpoint left, leftovers left)
KILLS = [
    ("after_step", 5, "step_00000004", None),
    ("mid_step", 5, "step_00000004", None),
    ("while_saving", 6, "step_00000004", ".tmp-*"),
    ("before_rename", 6, "step_00000004", ".tmp-*"),
    ("after_rename", 6, "step_00000006", None),
    ("while_pruning", 2, "step_00000006", ".trash-*"),  # step 6 prunes step 2 (keep 2)
]


def config_for(data, out):
    return tiny_config(
        data, out, "data.batch_size=2", "optim.accumulate=2", "optim.max_steps=8",
        "data.val_fraction=0.2", "run.val_every=3", "run.ckpt_every=2", "run.keep_last=2",
        "model.negatives=batch", "data.wave_augment=[pitch,bandreject,noise,reverb]",
    )  # fmt: skip


def final_state(out):
    ckpt = latest(out)
    weights = safetensors.torch.load_file(str(ckpt / "model.safetensors"))
    optimizer = load_train_state(ckpt / "train_state.pt")["optimizer"]["state"]
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    timing = ("time", "items_per_s", "input_seconds_per_s")
    rows = [{k: v for k, v in r.items() if k not in timing} for r in rows]
    return ckpt.name, weights, optimizer, rows


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    data = write_wavs(root / "wavs", count=6)
    t = np.arange(700) / 16000  # shorter than the window: padded and masked
    sf.write(data / "spk0" / "short.wav", np.sin(900 * t).astype(np.float32), 16000)
    with dropout_in_models():
        reference = train(config_for(data, root / "reference"))
    assert reference.step == 8 and reference.summary["epoch"] >= 2  # crosses epochs
    return data, final_state(root / "reference")


@pytest.mark.parametrize(("mode", "at", "survivor", "leftover"), KILLS)
def test_killed_and_resumed_runs_end_with_the_uninterrupted_weights(
    tmp_path, corpus, mode, at, survivor, leftover
):
    data, (name, weights, optimizer, rows) = corpus
    (tmp_path / "killme.py").write_text(SCRIPT)
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text(json.dumps(config_for(data, out).to_dict()))
    proc = run_python([str(tmp_path / "killme.py"), str(out / "config.json"), mode, str(at)])
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert latest(out).name == survivor
    if leftover is not None:  # the torn write or deletion is left over, and ignored
        assert list((out / "checkpoints").glob(leftover))
    assert all(p.name.startswith("step_") for p in list_checkpoints(out))

    with dropout_in_models():
        resumed = train(config_for(data, out))
    assert resumed.summary["resumed_from"].endswith(survivor)
    got_name, got_weights, got_optimizer, got_rows = final_state(out)
    assert got_name == name
    assert got_weights.keys() == weights.keys()
    for key, value in weights.items():
        assert torch.equal(got_weights[key], value), key
    for index, state in optimizer.items():
        for key, value in state.items():
            assert torch.equal(got_optimizer[index][key], value), (index, key)
    leftovers = [p.name for p in (out / "checkpoints").iterdir() if p.name.startswith(".")]
    assert not leftovers
    assert [p.name for p in list_checkpoints(out)] == ["step_00000006", "step_00000008"]
    assert got_rows == rows  # each step logged once, with the uninterrupted run's numbers


# --- streamed shards: the data-loader state travels in the checkpoint ----------------


def stream_config(pattern, out, workers):
    return tiny_config(
        pattern, out, "data.batch_size=2", "optim.accumulate=2", "optim.max_steps=8",
        "run.ckpt_every=3", "run.keep_last=2", f"data.num_workers={workers}",
        "model.negatives=batch", "data.wave_augment=[pitch,noise]",
    )  # fmt: skip


@pytest.fixture(scope="module")
def shard_corpus(tmp_path_factory):
    wds = pytest.importorskip("webdataset")
    root = tmp_path_factory.mktemp("stream")
    data = write_wavs(root / "wavs", count=7)
    files = sorted(data.rglob("*.wav"))
    for s in range(3):
        with wds.TarWriter(str(root / f"shard-{s}.tar")) as sink:
            for f in files[s::3]:
                sink.write({"__key__": f.stem, "wav": f.read_bytes()})
    pattern = f"file://{root}/shard-{{0..2}}.tar"
    references = {}

    def reference(workers):  # the order depends on the workers (shards go to slots)
        if workers not in references:
            out = root / f"reference-{workers}"
            with dropout_in_models():
                result = train(stream_config(pattern, out, workers))
            assert result.step == 8 and result.summary["epoch"] >= 2
            references[workers] = final_state(out)
        return references[workers]

    return pattern, reference


@pytest.mark.parametrize(
    ("mode", "at", "survivor", "workers"),
    [("after_step", 5, "step_00000003", 0), ("mid_step", 7, "step_00000006", 2)],
)
def test_a_killed_streamed_run_resumes_to_the_uninterrupted_weights(
    tmp_path, shard_corpus, mode, at, survivor, workers
):
    pattern, reference = shard_corpus
    name, weights, optimizer, rows = reference(workers)
    (tmp_path / "killme.py").write_text(SCRIPT)
    out = tmp_path / "run"
    out.mkdir()
    config = stream_config(pattern, out, workers)
    (out / "config.json").write_text(json.dumps(config.to_dict()))
    proc = run_python([str(tmp_path / "killme.py"), str(out / "config.json"), mode, str(at)])
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert latest(out).name == survivor
    saved = load_train_state(latest(out) / "train_state.pt")["state"]["loaders"]
    assert saved is not None and len(saved) == 1  # one loader state per process
    with dropout_in_models():
        resumed = train(config)
    assert resumed.summary["resumed_from"].endswith(survivor)
    got_name, got_weights, got_optimizer, got_rows = final_state(out)
    assert got_name == name
    for key, value in weights.items():
        assert torch.equal(got_weights[key], value), key
    for index, state in optimizer.items():
        for key, value in state.items():
            assert torch.equal(got_optimizer[index][key], value), (index, key)
    assert got_rows == rows


# --- Graceful stops: a real signal to a real `cpc pretrain` process -----------------

STOP_SCRIPT = """
import os, signal, sys, time
import torch
torch.set_num_threads(1)
import cpc.checkpoints.store as ckpt
import cpc.train.trainer as trainer
from cpc.cli import main
from tests.train.conftest import dropout_in_models

config, where, at = sys.argv[1], sys.argv[2], int(sys.argv[3])
sig, times = getattr(signal, sys.argv[4]), int(sys.argv[5])

def send():
    for _ in range(times):
        os.kill(os.getpid(), sig)

real_micro, calls = trainer.micro_step, []
def micro(*args, **kwargs):
    if where == "mid_step" and kwargs["step"] == at:
        calls.append(1)
        if len(calls) == 1:  # during the first of the step's two micro-batches
            send()
    if where == "slow":
        time.sleep(0.25)
    return real_micro(*args, **kwargs)
trainer.micro_step = micro

real_save = torch.save
def save(obj, path, *args, **kwargs):
    real_save(obj, path, *args, **kwargs)
    if where == "while_saving" and obj["state"]["step"] == at:
        send()
ckpt.torch.save = save

with dropout_in_models():
    sys.exit(main(["pretrain", config]))
"""

#: (where the signal comes, at which step, signal, how many, exit code, newest checkpoint)
STOPS = [
    ("mid_step", 5, "SIGTERM", 1, 128 + signal.SIGTERM, "step_00000005"),
    ("while_saving", 4, "SIGUSR1", 1, 128 + signal.SIGUSR1, "step_00000005"),
    ("mid_step", 3, "SIGINT", 2, 128 + signal.SIGINT, "step_00000002"),  # twice: at once
]


def _stop_run(tmp_path, data, where, at, name, times):
    import subprocess
    import sys

    import yaml

    from .conftest import subprocess_env

    (tmp_path / "stopme.py").write_text(STOP_SCRIPT)
    out = tmp_path / "run"
    out.mkdir()
    config = out / "config.in.yaml"
    config.write_text(yaml.safe_dump(config_for(data, out).to_dict()))
    args = [sys.executable, str(tmp_path / "stopme.py"), str(config), where, str(at), name]
    return out, subprocess.Popen(
        [*args, str(times)],
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _resume_and_compare(out, data, reference):
    name, weights, optimizer, rows = reference
    with dropout_in_models():
        resumed = train(config_for(data, out))
    got_name, got_weights, got_optimizer, got_rows = final_state(out)
    assert got_name == name and resumed.stopped_by is None
    for key, value in weights.items():
        assert torch.equal(got_weights[key], value), key
    for index, state in optimizer.items():
        for key, value in state.items():
            assert torch.equal(got_optimizer[index][key], value), (index, key)
    assert got_rows == rows


@pytest.mark.parametrize(("where", "at", "name", "times", "code", "survivor"), STOPS)
def test_a_signalled_run_saves_its_last_step_and_resumes_bitwise(
    tmp_path, corpus, where, at, name, times, code, survivor
):
    data, reference = corpus
    out, proc = _stop_run(tmp_path, data, where, at, name, times)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err[-3000:]
    assert "Traceback" not in err
    ours = [line for line in err.splitlines() if line.startswith("cpc pretrain:")]
    assert len(ours) == 1, err[-3000:]
    assert latest(out).name == survivor
    assert not [p.name for p in (out / "checkpoints").iterdir() if p.name.startswith(".")]
    if times == 1:  # stopped after a whole step, with its checkpoint, named
        assert f"stopped by {name} after step {int(survivor[5:])}" in ours[0]
        assert str(out / "checkpoints" / survivor) in ours[0]
        assert json.loads((out / "summary.json").read_text())["stop_reason"] == name
    else:  # a second signal: at once, nothing more saved; the last checkpoint stands
        assert f"interrupted by {name}" in ours[0]
    _resume_and_compare(out, data, reference)


def test_a_signal_from_outside_stops_after_a_whole_step_and_resumes_bitwise(tmp_path, corpus):
    import time

    data, reference = corpus
    out, proc = _stop_run(tmp_path, data, "slow", 0, "SIGINT", 0)
    metrics = out / "metrics.jsonl"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and proc.poll() is None:  # wait for step 3's record
        if metrics.is_file() and '"step": 3,' in metrics.read_text():
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)  # Ctrl-C, as a terminal sends it
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGINT, err[-3000:]
    step = json.loads((out / "summary.json").read_text())["step"]
    assert 3 <= step < 8
    assert latest(out).name == f"step_{step:08d}"
    assert f"stopped by SIGINT after step {step}; checkpoint: " in err
    _resume_and_compare(out, data, reference)


# --- A full disk: the checkpoint is not written, nothing of it stays, the run resumes --

FULL_SCRIPT = """
import resource, signal, sys
import torch
torch.set_num_threads(1)
import cpc.train.trainer as trainer
from cpc.cli import main
from tests.train.conftest import dropout_in_models

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
real = trainer.save_checkpoint
def save(*args, **kwargs):
    path = real(*args, **kwargs)
    if kwargs["state"].step == 2:  # the disk "fills" after step 2's checkpoint
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.RLIM_INFINITY))
    return path
trainer.save_checkpoint = save
with dropout_in_models():
    sys.exit(main(["pretrain", sys.argv[1]]))
"""


def test_a_checkpoint_that_does_not_fit_is_one_line_leaves_nothing_and_the_run_resumes(
    tmp_path, corpus
):
    import yaml

    data, reference = corpus
    (tmp_path / "fill.py").write_text(FULL_SCRIPT)
    out = tmp_path / "run"
    out.mkdir()
    config = out / "config.in.yaml"
    config.write_text(yaml.safe_dump(config_for(data, out).to_dict()))
    proc = run_python([str(tmp_path / "fill.py"), str(config)])
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith(f"cpc pretrain: error: {out / 'checkpoints' / 'step_00000004'}: ")
    assert "File too large" in line and " free there, about " in line and " needed" in line
    assert "older checkpoints are intact" in line
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["step_00000002"]  # no .tmp-
    _resume_and_compare(out, data, reference)  # space is back: the same command resumes
