"""Presets ship inside the package and load by name from any directory."""

from pathlib import Path

import pytest

from cpc.config import ConfigError, load_config
from cpc.config.presets import preset_names, preset_path

REPO_CONFIGS = Path(__file__).parents[2] / "configs"


def test_every_repository_preset_is_a_package_resource(tmp_path, monkeypatch):
    assert preset_names() == sorted(p.stem for p in REPO_CONFIGS.glob("*.yaml"))
    monkeypatch.chdir(tmp_path)  # nothing relative to the repository
    for name in preset_names():
        assert load_config(name) == load_config(REPO_CONFIGS / f"{name}.yaml")
        assert (
            preset_path(f"{name}.yaml").read_text() == (REPO_CONFIGS / f"{name}.yaml").read_text()
        )


def test_unknown_name_lists_the_presets(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"not found: speech_huge.*speech_small_cpu"):
        load_config("speech_huge")
