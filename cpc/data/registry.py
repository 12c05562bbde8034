"""The registry of modality recipes: the only place that maps a modality name to code.

A new modality is one module in :mod:`cpc.data.recipes` (a :class:`~cpc.data.recipe.Recipe`
subclass) and one line here.
"""

from __future__ import annotations

from cpc.data.recipe import Recipe
from cpc.data.recipes.audio import AudioRecipe
from cpc.data.recipes.image import ImageRecipe
from cpc.data.recipes.signal import SignalRecipe

RECIPES: dict[str, Recipe] = {
    recipe.name: recipe for recipe in (AudioRecipe(), SignalRecipe(), ImageRecipe())
}


def get_recipe(name: str | None) -> Recipe:
    """The recipe of a modality.

    Raises:
        ConfigError: An unknown modality (lists the known ones).

    """
    if name not in RECIPES:
        from cpc.config import ConfigError

        raise ConfigError(f"unknown modality {name!r}; known: {sorted(RECIPES)}")
    return RECIPES[name]
