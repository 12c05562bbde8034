"""Whether a config can train: the model it builds against the windows it will be given.

The schema (:mod:`cpc.config`) checks types and ranges, the registry
(:func:`cpc.data.registry.check_config`) that the model builds; these checks build it on
the meta device (shapes only, nothing allocated) and compare its receptive field and
offsets with the training window, then look for the data and the device. A saved
model's config (a checkpoint's) skips them: it stays usable for features whatever its
window, on a machine without its data or GPU.
"""

from __future__ import annotations

import torch

from cpc.config import Config, apply_overrides
from cpc.data.registry import check_model, get_recipe
from cpc.errors import ConfigError


def check_geometry(config: Config) -> None:
    """Check that the encoder's receptive field and every offset fit in a window.

    The model's encoder (a meta-device skeleton) says how many latent steps (or grid
    rows) a training window gives, and every prediction offset must have a target
    inside it, else that offset's accuracy would be reported as 0.0 forever. A training
    check only: a saved model stays usable for features whatever its window.

    Raises:
        ConfigError: The window is shorter than the encoder's receptive field, or the
            largest offset never fits.

    """
    model = check_model(config.model)
    recipe = get_recipe(config.model.modality)
    key, unit = recipe.length_field, recipe.length_unit
    length = int(config.data.to_dict()[key])
    steps = int(model.encoder.output_lengths(torch.tensor([length]))[0])
    if steps < 1:
        raise ConfigError(
            f"data.{key}={length} {unit} is shorter than the encoder's receptive field "
            f"({model.receptive_field or 'one patch'}): no latent step would come out"
        )
    k_max = max(model.offsets)
    if steps <= k_max:
        raise ConfigError(
            f"data.{key}={length} {unit} gives {steps} latent step(s), but the offsets "
            f"{model.offsets[0]}..{k_max} (model.k_min, model.num_offsets) need at least "
            f"{k_max + 1}: make data.{key} larger or use fewer offsets"
        )


def fit_to_data(config: Config) -> tuple[Config, str | None]:
    """``config`` with its model fitted to the shortest training item, when needed.

    A recipe that fits (signals, with ``data.fit=true``, the default) names its shortest training
    item; when the configured encoder gives that item no target for the largest
    offset, the recipe's :meth:`~cpc.data.recipe.Recipe.fitted` overrides replace the
    encoder, window and offsets. Items that fit change nothing.

    Returns:
        The config to train, and the line to log (None: unchanged).

    """
    recipe = get_recipe(config.model.modality)
    shortest = recipe.shortest_item(config)
    if shortest is None:
        return config, None
    length, path = shortest
    model = check_model(config.model)
    window = min(length, int(config.data.to_dict()[recipe.length_field]))
    steps = int(model.encoder.output_lengths(torch.tensor([window]))[0])
    if steps > max(model.offsets):
        return config, None
    overrides = recipe.fitted(config, length)
    fitted = Config.from_dict(apply_overrides(config.to_dict(), overrides))
    return fitted, (
        f"data.fit: the shortest training series ({path}) has {length} "
        f"{recipe.length_unit}, which gives the configured encoder {max(steps, 0)} step(s) "
        f"for offsets up to {max(model.offsets)}; using {' '.join(overrides)} "
        "(data.fit=false keeps the config as given)"
    )


def check_runnable(config: Config) -> None:
    """What a training run needs beyond a valid config: offsets that fit in a window
    (:func:`check_geometry`), a data source and the device.

    Kept apart from the section checks because a saved config (a checkpoint's) must stay
    loadable on a machine without a GPU or without its training data.

    Raises:
        ConfigError: Offsets that cannot fit, ``data.train`` empty, or
            ``run.device=cuda`` without a GPU.

    """
    check_geometry(config)
    if not config.data.train.strip():
        raise ConfigError(
            "data.train is empty: name a folder, a manifest or a built-in source "
            "(an empty value would mean the current directory)"
        )
    if config.run.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("run.device=cuda, but torch sees no CUDA device: use auto or cpu")
