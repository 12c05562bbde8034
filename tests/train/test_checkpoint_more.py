"""Checkpoint details the round-trip tests leave open: cached normal draws, the gradient
scaler, overwriting a step, keeping everything, and each unreadable part named."""

import json
import random

import numpy as np
import pytest
import torch

from cpc.checkpoints.store import (
    FORMAT_VERSION,
    CheckpointError,
    TrainState,
    list_checkpoints,
    load_checkpoint,
    load_model,
    load_train_state,
    load_weights,
    read_meta,
    rng_state,
    set_rng_state,
)

from .conftest import save_step


def test_rng_round_trip_keeps_the_cached_normal_draws():
    # numpy and random both compute normal draws in pairs and cache the second one.
    np.random.seed(1)  # noqa: NPY002 (the global state is what is saved)
    random.seed(1)
    np.random.standard_normal()  # noqa: NPY002
    random.gauss(0, 1)
    state = rng_state()
    first = (np.random.standard_normal(3), [random.gauss(0, 1) for _ in range(3)])  # noqa: NPY002
    np.random.seed(2)  # noqa: NPY002
    random.seed(2)
    set_rng_state(state)
    second = (np.random.standard_normal(3), [random.gauss(0, 1) for _ in range(3)])  # noqa: NPY002
    assert np.array_equal(first[0], second[0]) and first[1] == second[1]


def test_gradient_scaler_state_round_trips(fresh_run):
    config, model, optimizer = fresh_run
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0, growth_interval=7)
    path = save_step(config, model, optimizer, 3, scaler=scaler)
    fresh = torch.amp.GradScaler("cpu")
    load_checkpoint(path, scaler=fresh)
    assert fresh.state_dict() == scaler.state_dict()
    assert fresh.get_scale() == 1024.0
    disabled = torch.amp.GradScaler("cpu", enabled=False)
    path = save_step(config, model, optimizer, 4, scaler=disabled)
    assert load_train_state(path / "train_state.pt")["scaler"] is None
    untouched = torch.amp.GradScaler("cpu", init_scale=8.0)
    load_checkpoint(path, scaler=untouched)
    assert untouched.get_scale() == 8.0


def test_saving_a_step_again_replaces_it_and_keep_last_below_one_keeps_all(fresh_run):
    config, model, optimizer = fresh_run
    for step in (1, 2, 3):
        save_step(config, model, optimizer, step, keep_last=0)
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    path = save_step(config, model, optimizer, 3, keep_last=-1, data_info={"kind": "again"})
    names = [p.name for p in list_checkpoints(config.run.out_dir)]
    assert names == ["step_00000001", "step_00000002", "step_00000003"]
    assert read_meta(path)["data"] == {"kind": "again"}
    loaded = load_model(path)
    assert torch.equal(next(loaded.parameters()), next(model.parameters()))
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".")] == []
    meta = json.loads((path / "meta.json").read_text())
    assert meta["format"] == FORMAT_VERSION == 1
    assert (meta["step"], meta["epoch"], meta["batch_in_epoch"]) == (3, 2, 1)
    state = load_checkpoint(path).state
    assert state == TrainState(3, 2, 1)
    assert load_checkpoint(path).rng[0].keys() == rng_state().keys()


def test_each_unreadable_part_is_named(fresh_run, tmp_path):
    config, model, optimizer = fresh_run
    path = save_step(config, model, optimizer, 1)
    other = tmp_path / "weights.bin"
    other.write_bytes(b"x")
    with pytest.raises(CheckpointError, match=r"weights\.bin: expected a \.safetensors"):
        load_model(other)
    state = path / "train_state.pt"
    good = state.read_bytes()
    state.write_bytes(good[:50])
    with pytest.raises(CheckpointError, match=r"train_state\.pt: not a readable training"):
        load_checkpoint(path)
    torch.save({"optimizer": {}}, state)
    with pytest.raises(CheckpointError, match=r"train_state\.pt: not a cpc training state"):
        load_checkpoint(path)
    state.unlink()
    with pytest.raises(CheckpointError, match=r"no train_state\.pt: not a training"):
        load_checkpoint(path)
    load_model(path)  # the weights alone still load
    (path / "meta.json").write_text(json.dumps(["no config"]))
    with pytest.raises(CheckpointError, match=r"meta\.json: no 'config' entry"):
        read_meta(path)
    (path / "meta.json").unlink()
    with pytest.raises(CheckpointError, match=r"meta\.json: missing"):
        read_meta(path / "model.safetensors")
    (path / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(CheckpointError, match=r"model\.safetensors: not a readable safetensors"):
        load_weights(model, path / "model.safetensors")
