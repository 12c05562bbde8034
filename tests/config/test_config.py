"""Configs: every shipped preset loads and builds; bad keys and values are named."""

from pathlib import Path

import pytest
import torch

from cpc.config import Config, ConfigError, load_config, save_config
from cpc.data.registry import build_model

PRESETS = sorted((Path(__file__).parents[2] / "configs").glob("*.yaml"))


def test_presets_exist():
    names = {p.stem for p in PRESETS}
    assert {"speech_paper", "speech_small_cpu", "signature_pen", "image_grid"} <= names


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.stem)
def test_every_preset_loads_and_builds(path):
    config = load_config(path)
    model = build_model(config.model)
    if config.model.modality == "image":
        size = config.data.image_size
        x = torch.randn(2, config.model.in_channels, size, size)
        lengths = None
    elif config.model.modality == "signal":
        x = torch.randn(2, config.data.window, config.model.in_channels)
        lengths = torch.tensor([config.data.window, config.data.window // 2])
    else:
        x = torch.randn(2, config.data.window)
        lengths = torch.tensor([config.data.window, config.data.window // 2])
    with torch.no_grad():
        out = model(x, lengths)
    assert torch.isfinite(out.loss) and out.accuracy.numel() == config.model.num_offsets


def test_round_trip_through_dict_and_yaml(tmp_path):
    config = load_config(
        PRESETS[0], ["optim.lr=0.5", "model.kernels=[3, 3]", "model.strides=[1, 1]"]
    )
    assert config.optim.lr == 0.5 and config.model.kernels == [3, 3]
    assert Config.from_dict(config.to_dict()) == config
    save_config(config, tmp_path / "c.yaml")
    assert load_config(tmp_path / "c.yaml") == config


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.channel=4", r"unknown key 'model.channel'.*allowed keys"),
        ("model.context=wavenet", r"model.context='wavenet' is not allowed.*'gru'"),
        ("optim.lr=fast", r"optim.lr must be a number"),
        ("data.batch_size=0", r"data.batch_size must be >= 1"),
        ("model.kernels=[3]", r"need one entry per layer"),
        ("lr=3", r"section.key=value"),
        ("training.lr=3", r"unknown config section"),
        ("data.kind=image", r"does not match"),
    ],
)
def test_bad_keys_and_values_are_named(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(PRESETS[0].parent / "speech_paper.yaml", [override])


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
