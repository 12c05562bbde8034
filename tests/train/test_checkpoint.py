import json
import os
import pickle
import random

import numpy as np
import pytest
import safetensors.torch
import torch

import cpc
from cpc.checkpoints.store import (
    CheckpointError,
    TrainState,
    list_checkpoints,
    load_checkpoint,
    load_model,
    read_meta,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from cpc.data.registry import build_model
from cpc.train.schedule import build_optimizer

from .conftest import latest, tiny_config


@pytest.fixture
def setup(tmp_path):
    config = tiny_config(tmp_path / "data", tmp_path / "run")
    torch.manual_seed(0)
    model = build_model(config.model)
    optimizer = build_optimizer(model, config.optim)
    x = torch.randn(2, 1024)
    model(x).loss.backward()
    optimizer.step()
    return config, model, optimizer


def save(config, model, optimizer, step, keep_last=3):
    state = TrainState(step=step, epoch=1, batch_in_epoch=3)
    return save_checkpoint(
        config.run.out_dir, model=model, optimizer=optimizer, state=state, config=config,
        data_info={"kind": "audio"}, keep_last=keep_last,
    )  # fmt: skip


def test_round_trip_rebuilds_the_model_from_the_saved_config(setup):
    config, model, optimizer = setup
    path = save(config, model, optimizer, 5)
    assert path.name == "step_00000005"
    meta = read_meta(path)
    assert meta["config"] == config.to_dict()
    assert meta["cpc_version"] == cpc.__version__ and meta["torch_version"] == torch.__version__
    assert (meta["step"], meta["epoch"], meta["batch_in_epoch"]) == (5, 1, 3)

    x = torch.randn(3, 1024)
    model.eval()
    expected = model(x, generator=torch.Generator().manual_seed(1))
    for where in (config.run.out_dir, path, path / "model.safetensors"):
        loaded = load_model(where)
        assert not loaded.training
        got = loaded(x, generator=torch.Generator().manual_seed(1))
        assert torch.equal(got.loss, expected.loss)
        assert torch.equal(got.c, expected.c)

    fresh = build_model(config.model)
    fresh_opt = build_optimizer(fresh, config.optim)
    ckpt = load_checkpoint(config.run.out_dir, model=fresh, optimizer=fresh_opt)
    assert ckpt.state == TrainState(5, 1, 3)
    for a, b in zip(model.parameters(), fresh.parameters(), strict=True):
        assert torch.equal(a, b)
    for p, q in zip(model.parameters(), fresh.parameters(), strict=True):
        assert torch.equal(optimizer.state[p]["exp_avg"], fresh_opt.state[q]["exp_avg"])


def test_leftover_temp_dirs_and_incomplete_dirs_are_ignored_and_keep_last(setup):
    config, model, optimizer = setup
    for step in (1, 2, 3):
        save(config, model, optimizer, step, keep_last=2)
    root = latest(config.run.out_dir).parent
    names = [p.name for p in list_checkpoints(config.run.out_dir)]
    assert names == ["step_00000002", "step_00000003"]
    # A kill while writing step 9 leaves its temporary directory; a step dir without
    # meta.json is not a checkpoint either.
    leftover = root / ".tmp-step_00000009-4242"
    leftover.mkdir()
    (leftover / "model.safetensors").write_bytes(b"half a file")
    broken = root / "step_00000010"
    broken.mkdir()
    (broken / "model.safetensors").write_bytes(b"junk")
    assert latest(config.run.out_dir).name == "step_00000003"
    load_model(config.run.out_dir)  # the newest complete one loads
    save(config, model, optimizer, 4, keep_last=2)
    assert not leftover.exists()
    names = sorted(p.name for p in root.iterdir())
    assert names == ["step_00000003", "step_00000004", "step_00000010"]


class Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("how", ["torch.save", "raw pickle"])
def test_crafted_pickle_is_refused_without_running(setup, tmp_path, how):
    config, model, optimizer = setup
    path = save(config, model, optimizer, 7)
    marker = tmp_path / "pwned"
    evil = {"optimizer": Payload(marker), "state": {"step": 7, "epoch": 0, "batch": 0}}
    target = path / "train_state.pt"
    if how == "torch.save":
        torch.save(evil, target)
    else:
        target.write_bytes(pickle.dumps(evil, protocol=2))
    with pytest.raises(CheckpointError, match=r"train_state\.pt: refused to load"):
        load_checkpoint(path, model=build_model(config.model))
    assert not marker.exists()
    load_model(path)  # weights and config alone never touch the pickle


def test_weights_with_unknown_or_missing_keys_are_refused(setup, tmp_path):
    config, model, optimizer = setup
    path = save(config, model, optimizer, 1)
    tensors = safetensors.torch.load_file(str(path / "model.safetensors"))
    tensors["extra.weight"] = torch.zeros(2)
    safetensors.torch.save_file(tensors, str(path / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"unknown keys \['extra.weight'\]"):
        load_model(path)
    del tensors["extra.weight"]
    missing = next(iter(tensors))
    del tensors[missing]
    safetensors.torch.save_file(tensors, str(path / "model.safetensors"))
    with pytest.raises(CheckpointError, match="missing keys"):
        load_model(path)


def test_bad_paths_and_meta_give_clear_errors(setup, tmp_path):
    config, model, optimizer = setup
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_model(tmp_path / "nowhere")
    with pytest.raises(CheckpointError, match="neither a checkpoint"):
        load_model(tmp_path)
    path = save(config, model, optimizer, 1)
    (path / "meta.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"meta\.json: not readable JSON"):
        load_model(path)
    (path / "meta.json").write_text(json.dumps({"config": {"model": {"channels": "many"}}}))
    with pytest.raises(CheckpointError, match="bad config"):
        load_model(path)


def test_rng_states_round_trip():
    torch.manual_seed(3)
    np.random.seed(3)  # noqa: NPY002 (the global state is what is saved)
    random.seed(3)
    state = rng_state()
    first = (
        torch.rand(4),
        np.random.rand(4),  # noqa: NPY002
        [random.random() for _ in range(4)],
    )
    set_rng_state(state)
    second = (
        torch.rand(4),
        np.random.rand(4),  # noqa: NPY002
        [random.random() for _ in range(4)],
    )
    assert torch.equal(first[0], second[0])
    assert np.array_equal(first[1], second[1])
    assert first[2] == second[2]
