"""The run configuration: a pure schema (dataclasses, YAML, value ranges) and the presets.

Nothing here knows a model, a data set or a file format: the modalities a config may
name, their own ``model.*``/``data.*`` keys and the checks that need their code are
registered by :mod:`cpc.data.registry`.
"""

from cpc.config.modalities import (
    Modality,
    NoFields,
    known_modalities,
    modality,
    remove_modality,
)
from cpc.config.schema import (
    Config,
    DataConfig,
    ModelConfig,
    OptimConfig,
    RunConfig,
    apply_overrides,
    load_config,
    parse_yaml,
    register_modality,
    save_config,
)
from cpc.errors import ConfigError

__all__ = [
    "Config",
    "ConfigError",
    "DataConfig",
    "Modality",
    "ModelConfig",
    "NoFields",
    "OptimConfig",
    "RunConfig",
    "apply_overrides",
    "known_modalities",
    "load_config",
    "modality",
    "parse_yaml",
    "register_modality",
    "remove_modality",
    "save_config",
]
