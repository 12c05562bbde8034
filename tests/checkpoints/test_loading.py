"""``cpc.checkpoints.loading``: what a loaded model carries, where it goes, bad files named."""

import dataclasses
import json
import os
import re

import pytest
import torch

import cpc.checkpoints.loading
from cpc.checkpoints.loading import load_model, load_plain_torch, read_meta
from cpc.checkpoints.store import TrainState, save_checkpoint
from cpc.data.registry import build_model
from cpc.errors import CheckpointError
from cpc.train.schedule import build_optimizer
from tests.train.conftest import tiny_config


@pytest.fixture
def saved(tmp_path):
    config = tiny_config(tmp_path / "data", tmp_path / "run")
    torch.manual_seed(0)
    model = build_model(config.model)
    path = save_checkpoint(
        config.run.out_dir, model=model, optimizer=build_optimizer(model, config.optim),
        state=TrainState(step=5), config=config, data_info={"kind": "audio"},
    )  # fmt: skip
    return config, path


class Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def refusal(path) -> str:
    with pytest.raises(CheckpointError, match="refused to load") as err:
        load_plain_torch(path, "training state")
    return str(err.value)


def test_a_crafted_pickle_is_refused_naming_what_it_asks_for_whatever_the_environment(
    tmp_path, monkeypatch
):
    marker = tmp_path / "pwned"
    evil = tmp_path / "train_state.pt"
    torch.save({"optimizer": Payload(marker)}, evil)
    # torch lets this variable turn weights_only off where a caller did not ask for it.
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    message = refusal(evil)
    assert not marker.exists()
    named = re.search(r"could run code(.*); read with", message)
    assert named is not None
    assert named.group(1) in (" (it asks for posix.system)", " (it asks for os.system)")


@pytest.mark.parametrize(
    "junk", [b"garbage bytes here", b"hello world this is not a file", bytes(range(256))]
)
def test_damaged_bytes_are_not_a_readable_file_not_a_refusal(tmp_path, junk):
    """Bytes that name no global are damage, not a request to run code (and never a
    KeyError traceback from the unpickler)."""
    path = tmp_path / "train_state.pt"
    path.write_bytes(junk)
    with pytest.raises(CheckpointError) as err:
        load_plain_torch(path, "training state")
    message = str(err.value)
    assert message.startswith(f"{path}: not a readable training state (damaged or not a PyTorch")
    assert "could run code" not in message and len(message.splitlines()) == 1


def test_meta_must_be_a_mapping_with_a_config_and_within_the_size_limit(saved, monkeypatch):
    _, path = saved
    meta = path / "meta.json"
    meta.write_text(json.dumps({"step": 5}))
    with pytest.raises(CheckpointError, match=r"meta\.json: no 'config' entry"):
        read_meta(path)
    meta.write_text(json.dumps({"config": {}, "pad": "x" * 100}))
    size = meta.stat().st_size
    monkeypatch.setattr(cpc.checkpoints.loading, "MAX_META_BYTES", size)
    assert read_meta(path)["pad"] == "x" * 100  # exactly at the limit: read
    monkeypatch.setattr(cpc.checkpoints.loading, "MAX_META_BYTES", size - 1)
    with pytest.raises(CheckpointError, match=rf"meta\.json: {size} bytes is too large"):
        read_meta(path)


def test_a_loaded_model_knows_its_training_config_for_the_hub_and_goes_where_asked(saved):
    config, path = saved
    loaded = load_model(path)
    assert loaded.hub_config is not None
    assert loaded.hub_config["model"] == dataclasses.asdict(config.model)
    assert loaded.hub_config["training"] == config.to_dict()
    assert (loaded.hub_config["step"], loaded.hub_config["data"]) == (5, {"kind": "audio"})
    # "meta" stands in for an accelerator on a CPU-only machine: nothing stays behind.
    on_meta = load_model(path, device="meta")
    assert {p.device.type for p in on_meta.parameters()} == {"meta"}
    assert not on_meta.training
