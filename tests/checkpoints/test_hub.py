"""Hub folders (cpc.save_pretrained / cpc.from_pretrained): exact round trip, offline, card."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import cpc
from cpc.checkpoints.store import TrainState, save_checkpoint
from cpc.config import Config
from cpc.data.registry import build_model

ROOT = Path(__file__).resolve().parents[2]
SMALL = {"channels": 16, "context_dim": 8, "kernels": [10, 8, 4], "strides": [5, 4, 2]}


def small_config(**extra) -> Config:
    return Config.from_dict({"model": {**SMALL, "num_offsets": 2, **extra}})


def small_model(**extra) -> cpc.CPCModel:
    torch.manual_seed(0)
    model = build_model(small_config(**extra).model)
    for p in model.parameters():  # nothing left at its initial value
        torch.nn.init.normal_(p, std=0.3)
    return model.eval()


@pytest.mark.parametrize("extra", [{}, {"norm": "batch", "context": "lstm", "context_layers": 2}])
def test_round_trip_is_exact(tmp_path, extra):
    model = small_model(**extra)
    cpc.save_pretrained(model, tmp_path / "hub")
    assert {p.name for p in (tmp_path / "hub").iterdir()} == {
        "config.json",
        "model.safetensors",
        "README.md",
    }
    loaded = cpc.from_pretrained(tmp_path / "hub")
    ours, theirs = model.state_dict(), loaded.state_dict()
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    x = torch.randn(2, 3000)
    assert torch.equal(model.features(x)[0], loaded.features(x)[0])
    assert not loaded.training


def test_card_and_config_carry_training_config_and_data_facts(tmp_path):
    model = small_model()
    config = small_config()
    config.optim.max_steps = 777
    opt = torch.optim.AdamW(model.parameters())
    facts = {"rate": 16000, "files": 12}
    save_checkpoint(
        tmp_path / "run",
        model=model,
        optimizer=opt,
        state=TrainState(step=5),
        config=config,
        data_info=facts,
    )
    cpc.save_pretrained(cpc.load(str(tmp_path / "run")), tmp_path / "hub")
    saved = json.loads((tmp_path / "hub" / "config.json").read_text())
    assert saved["training"]["optim"]["max_steps"] == 777 and saved["data"] == facts
    card = (tmp_path / "hub" / "README.md").read_text()
    assert "library_name: cpc" in card and "max_steps: 777" in card and '"files": 12' in card
    assert "pretrained for 5 steps" in card


def test_model_without_config_is_refused(tmp_path):
    with pytest.raises(ValueError, match="config"):
        cpc.save_pretrained(cpc.cpc_audio_small(), tmp_path / "hub")


OFFLINE = """
import sys, numpy as np, torch, cpc
model = cpc.from_pretrained(sys.argv[1])
x = torch.from_numpy(np.load(sys.argv[2]))
np.save(sys.argv[3], model.features(x)[0].detach().numpy())
try:
    cpc.from_pretrained("someone/not-here")
except Exception as err:
    print("repo refused:", type(err).__name__)
"""


def test_local_folder_loads_offline_with_no_network(tmp_path):
    model = small_model()
    cpc.save_pretrained(model, tmp_path / "hub")
    x = torch.randn(1, 3000)
    np.save(tmp_path / "x.npy", x.numpy())
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_ENDPOINT": "http://127.0.0.1:9",  # any request would fail
        "HF_HOME": str(tmp_path / "hf_home"),  # an empty cache
        "PYTHONPATH": str(ROOT),
        "OMP_NUM_THREADS": "1",
    }
    args = [str(tmp_path / "hub"), str(tmp_path / "x.npy"), str(tmp_path / "y.npy")]
    done = subprocess.run(
        [sys.executable, "-c", OFFLINE, *args], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "repo refused" in done.stdout  # offline, a repo id not in the cache fails cleanly
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), model.features(x)[0].detach())
