"""The registry of modality recipes: the only place that maps a modality name to code.

A new modality is one module: a :class:`~cpc.data.recipe.Recipe` subclass passed to
:func:`register` (the three shipped ones are registered below). The recipe owns
everything modality-specific: its builder, its own ``model.*`` and ``data.*`` keys (two
small dataclasses), its part of the data facts saved in checkpoints, its data sets.
Registering makes the name a valid ``model.modality`` whose keys the config schema
reads, with :func:`check_config` as its cross-check, so every
:class:`~cpc.config.Config` built anywhere is checked against the recipe that will run
it. ``tests/data/test_fourth_modality.py`` adds a modality this way, in one file.
"""

from __future__ import annotations

import torch

from cpc.config import Config, Modality, ModelConfig, register_modality, remove_modality
from cpc.data.recipe import RECIPES, Recipe
from cpc.data.recipes.audio import AudioRecipe
from cpc.data.recipes.image import ImageRecipe
from cpc.data.recipes.signal import SignalRecipe
from cpc.errors import ConfigError
from cpc.models.cpc import CPCModel

__all__ = [
    "RECIPES",
    "build_model",
    "check_config",
    "check_model",
    "get_recipe",
    "register",
    "unregister",
]


def register(recipe: Recipe) -> Recipe:
    """Make ``recipe`` the code of modality ``recipe.name`` (replacing an earlier one).

    Raises:
        TypeError: Its ``model_fields``/``data_fields`` are not dataclasses with
            defaults, or one of their keys is a common key already.

    """
    register_modality(Modality(recipe.name, check_config, recipe.model_fields, recipe.data_fields))
    RECIPES[recipe.name] = recipe
    return recipe


def unregister(name: str) -> None:
    """Forget modality ``name`` and its recipe (a plugin or a test's modality)."""
    RECIPES.pop(name, None)
    remove_modality(name)


def get_recipe(name: str | None) -> Recipe:
    """The recipe of a modality.

    Raises:
        ConfigError: An unknown modality (lists the known ones).

    """
    if name not in RECIPES:
        raise ConfigError(f"unknown modality {name!r}; known: {sorted(RECIPES)}")
    return RECIPES[name]


def build_model(model: ModelConfig) -> CPCModel:
    """The :class:`CPCModel` a model config describes, through its modality's builder.

    The model's ``hub_config`` records the config (for ``cpc.save_pretrained``).
    """
    built = get_recipe(model.modality).build_model(model)
    built.hub_config = {"model": model.to_dict()}
    return built


def check_model(model: ModelConfig) -> CPCModel:
    """Build the described model on the meta device: its shapes, no memory allocated.

    Cheap and safe whatever the sizes (they are range-checked first); a combination the
    builder rejects becomes a :class:`ConfigError`.
    """
    try:
        with torch.device("meta"):
            return build_model(model)
    except (ValueError, TypeError, ZeroDivisionError, IndexError, RuntimeError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ConfigError(f"model: these settings do not build a model: {first}") from None


def check_config(config: Config) -> None:
    """What every config of a registered modality must satisfy: the recipe's cross-checks
    and a model that builds. :class:`~cpc.config.Config` runs it on construction.

    Raises:
        ConfigError: Naming the key at fault.

    """
    get_recipe(config.model.modality).check(config)
    check_model(config.model)


for _recipe in (AudioRecipe(), SignalRecipe(), ImageRecipe()):
    register(_recipe)
