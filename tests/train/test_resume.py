"""Kill a training process at any moment, resume it, and get the uninterrupted weights."""

import json
import signal

import numpy as np
import safetensors.torch
import soundfile as sf
import torch

from cpc.train import train
from cpc.train.checkpoint import load_train_state

from .conftest import latest, run_python, tiny_config, write_wavs

SCRIPT = """
import json, os, signal, sys
import torch
torch.set_num_threads(1)
import cpc.train.checkpoint as ckpt
from cpc.config import Config
from cpc.train import train

config = Config.from_dict(json.load(open(sys.argv[1])))
mode, at = sys.argv[2], int(sys.argv[3])

def die():
    os.kill(os.getpid(), signal.SIGKILL)

if mode == "while_saving":  # die half-way through writing the checkpoint of step `at`
    real_save = torch.save
    def save(obj, path, *args, **kwargs):
        real_save(obj, path, *args, **kwargs)
        if obj["state"]["step"] == at:
            with open(path, "r+b") as f:
                f.truncate(100)
            die()
    ckpt.torch.save = save

train(config, on_step=lambda step, model: die() if mode == "after_step" and step == at else None)
"""


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
    return ckpt.name, weights, optimizer, rows


def test_killed_and_resumed_runs_end_with_the_uninterrupted_weights(tmp_path):
    data = write_wavs(tmp_path / "wavs", count=6)
    t = np.arange(700) / 16000  # shorter than the window: padded and masked
    sf.write(data / "spk0" / "short.wav", np.sin(900 * t).astype(np.float32), 16000)
    script = tmp_path / "killme.py"
    script.write_text(SCRIPT)

    reference = train(config_for(data, tmp_path / "reference"))
    assert reference.step == 8 and reference.summary["epoch"] >= 2  # crosses epochs
    name, weights, optimizer, rows = final_state(tmp_path / "reference")

    for mode, at, survivor in [("after_step", 5, "step_00000004"),
                               ("while_saving", 6, "step_00000004")]:  # fmt: skip
        out = tmp_path / mode
        cfg = out / "config.json"
        out.mkdir()
        cfg.write_text(json.dumps(config_for(data, out).to_dict()))
        proc = run_python([str(script), str(cfg), mode, str(at)])
        assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
        assert latest(out).name == survivor
        if mode == "while_saving":
            assert list((out / "checkpoints").glob(".tmp-*"))  # the torn write is left over

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
        assert not list((out / "checkpoints").glob(".tmp-*"))
        # Each step is logged once, with the same numbers as the uninterrupted run.
        strip = [{k: v for k, v in r.items() if k not in ("time", "items_per_s",
                  "input_seconds_per_s")} for r in rows]  # fmt: skip
        got_strip = [{k: v for k, v in r.items() if k not in ("time", "items_per_s",
                      "input_seconds_per_s")} for r in got_rows]  # fmt: skip
        assert got_strip == strip
