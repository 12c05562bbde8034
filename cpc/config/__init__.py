"""The run configuration: a pure schema (dataclasses, YAML, value ranges) and the presets.

Nothing here knows a model, a data set or a file format: the modalities a config may
name, and the checks that need their code, are registered by :mod:`cpc.data.registry`.
"""

from cpc.config.modalities import Modality, known_modalities, modality, register_modality
from cpc.config.schema import (
    Config,
    DataConfig,
    ModelConfig,
    OptimConfig,
    RunConfig,
    apply_overrides,
    load_config,
    parse_yaml,
    save_config,
)
from cpc.errors import ConfigError

__all__ = [
    "Config",
    "ConfigError",
    "DataConfig",
    "Modality",
    "ModelConfig",
    "OptimConfig",
    "RunConfig",
    "apply_overrides",
    "known_modalities",
    "load_config",
    "modality",
    "parse_yaml",
    "register_modality",
    "save_config",
]
