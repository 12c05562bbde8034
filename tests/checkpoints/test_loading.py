"""``cpc.checkpoints.loading``: what a loaded model carries, where it goes, bad files named."""

import json
import os
import re

import pytest
import torch

import cpc.checkpoints.loading
from cpc.checkpoints.loading import load_model, load_plain_torch, read_meta
from cpc.checkpoints.store import TrainState, save_checkpoint
from cpc.config import Config, ConfigError
from cpc.data.recipe import DataInfo
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
    assert loaded.hub_config["model"] == config.model.to_dict()  # flat, as saved
    assert loaded.hub_config["training"] == config.to_dict()
    assert (loaded.hub_config["step"], loaded.hub_config["data"]) == (5, {"kind": "audio"})
    # "meta" stands in for an accelerator on a CPU-only machine: nothing stays behind.
    on_meta = load_model(path, device="meta")
    assert {p.device.type for p in on_meta.parameters()} == {"meta"}
    assert not on_meta.training


#: meta.json of a checkpoint written before each modality owned its keys (a tiny speech
#: run, as cpc wrote it then): every key of the shared schema, the other modalities' at
#: their defaults or, as here for ``data.image_size``, at a value the code ignored then.
OLD_CONFIG = {
    "model": {
        "modality": "audio", "frontend": None, "sample_rate": None, "in_channels": None,
        "channels": 16, "kernels": [10, 8, 4], "strides": [5, 4, 2], "norm": None,
        "padding": None, "context": None, "context_dim": 16, "context_layers": None,
        "k_min": None, "num_offsets": 4, "num_negatives": 8, "negatives": None,
        "temperature": None, "predictor": None, "gather_distributed": None,
        "patch_size": None, "patch_stride": None, "widths": None, "blocks": None, "dim": None,
    },
    "data": {
        "kind": "audio", "train": "x", "val": "", "val_fraction": 0.0, "window": 1024,
        "short_clips": "pad", "batch_size": 4, "group_by": "none", "group_from": "auto",
        "groups_per_batch": 1, "num_workers": 0, "strict": False, "channels": None,
        "normalize": "file", "rate": None, "image_size": 64, "augment": True,
        "wave_augment": [],
    },
}  # fmt: skip
OLD_FACTS = {
    "kind": "audio", "modality": "audio", "sample_rate": 16000, "rate": None,
    "channels": None, "normalize": None, "stats": None, "image_size": None,
    "in_channels": None, "groups": ["spk0", "spk1"],
}  # fmt: skip


def test_a_checkpoint_of_the_shared_schema_still_loads_and_extracts(saved, tmp_path):
    config, path = saved
    meta = read_meta(path)
    old = json.loads(json.dumps(meta["config"]))  # keep optim and run
    old.update(json.loads(json.dumps(OLD_CONFIG)))
    (path / "meta.json").write_text(json.dumps({**meta, "config": old, "data": OLD_FACTS}))
    loaded_config, _ = cpc.checkpoints.loading.checked_config(path)
    assert loaded_config.model == config.model and loaded_config.data.window == 1024
    assert loaded_config.data.kind == "audio"
    load_model(path)
    info = DataInfo.from_dict(OLD_FACTS, "audio")
    assert (info.seconds_per_sample, info.groups) == (1 / 16000, ["spk0", "spk1"])
    # As a user's config, another modality's key away from its old default is refused.
    with pytest.raises(ConfigError, match=r"'data.image_size' for modality 'audio'"):
        Config.from_dict(json.loads(json.dumps(old)))
    old["data"]["image_size"] = 256  # its default then: read as absent
    assert Config.from_dict(old).model == config.model
