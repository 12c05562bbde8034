"""Configs: every shipped preset loads and builds; bad keys and values are named."""

import dataclasses
import typing
from pathlib import Path

import pytest
import torch

from cpc.config import (
    Config,
    ConfigError,
    DataConfig,
    ModelConfig,
    OptimConfig,
    RunConfig,
    known_modalities,
    load_config,
    modality,
    save_config,
)
from cpc.config.ranges import rule_of
from cpc.data.registry import build_model

PRESETS = sorted((Path(__file__).parents[2] / "configs").glob("*.yaml"))


def test_presets_exist():
    names = {p.stem for p in PRESETS}
    assert {"speech_paper", "speech_small_cpu", "signature_pen", "image_grid"} <= names


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.stem)
def test_every_preset_loads_and_builds(path):
    config = load_config(path)
    model = build_model(config.model)
    keys, data = config.model.to_dict(), config.data.to_dict()  # flat: common + modality keys
    if config.model.modality == "image":
        size = data["image_size"]
        x = torch.randn(2, keys["in_channels"], size, size)
        lengths = None
    elif config.model.modality == "signal":
        x = torch.randn(2, config.data.window, keys["in_channels"])
        lengths = torch.tensor([config.data.window, config.data.window // 2])
    else:
        x = torch.randn(2, config.data.window)
        lengths = torch.tensor([config.data.window, config.data.window // 2])
    with torch.no_grad():
        out = model(x, lengths)
    assert torch.isfinite(out.loss) and out.accuracy.numel() == config.model.num_offsets


def test_round_trip_through_dict_and_yaml(tmp_path):
    # model.kernels is a speech (and signal) key: an image preset refuses it
    config = load_config(
        "speech_paper", ["optim.lr=0.5", "model.kernels=[3, 3]", "model.strides=[1, 1]"]
    )
    assert config.optim.lr == 0.5 and config.model.to_dict()["kernels"] == [3, 3]
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


def _numeric(hint) -> bool:
    """Whether a type hint admits an int or a float (in a union or a list)."""
    if hint in (int, float):
        return True
    return any(_numeric(arg) for arg in typing.get_args(hint))


def _sections():
    """(section name, dataclass) of every common part and every modality's own part."""
    yield from [("model", ModelConfig), ("data", DataConfig)]
    yield from [("optim", OptimConfig), ("run", RunConfig)]
    for name in known_modalities():
        yield "model", modality(name).model_fields
        yield "data", modality(name).data_fields


def test_every_numeric_key_of_every_modality_has_a_range():
    """A size no rule bounds would be allocated as given (a typo, a crafted meta.json)."""
    assert {"audio", "signal", "image"} <= set(known_modalities())
    for section, kind in _sections():
        hints = typing.get_type_hints(kind)
        for f in dataclasses.fields(kind):
            if _numeric(hints[f.name]):
                assert rule_of(section, f) is not None, f"{section}.{f.name} of {kind.__name__}"


@pytest.mark.parametrize(
    ("modality_name", "override", "message"),
    [
        ("audio", "model.sample_rate=0", r"model.sample_rate must be >= 1"),
        ("audio", "model.patch_size=8", r"'model.patch_size' for modality 'audio'.*'sample_rate'"),
        ("signal", "data.image_size=32", r"'data.image_size' for modality 'signal'.*'normalize'"),
        ("image", "data.image_size=0", r"data.image_size must be >= 1"),
        ("image", "model.widths=[8, 0]", r"model.widths\[1\] must be >= 1"),
        ("image", "data.normalize=none", r"'data.normalize' for modality 'image'.*'image_size'"),
    ],
)
def test_modality_keys_are_checked_and_belong_to_their_modality(modality_name, override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [f"model.modality={modality_name}", override])
