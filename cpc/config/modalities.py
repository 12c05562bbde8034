"""The modalities a config may name, registered by the data layer.

The schema knows no modality's code: each recipe (:mod:`cpc.data.registry`) registers its
name and the checks that need its code (the model its builder makes from a config, the
window it trains on). :class:`~cpc.config.Config` runs the registered check of the
modality it names, so every config built anywhere is checked the same way; an unknown
name is a :class:`~cpc.errors.ConfigError` listing the registered ones.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cpc.errors import ConfigError


@dataclass(frozen=True)
class Modality:
    """A registered modality: its name and its cross-checks of a whole config."""

    name: str
    check: Callable[[Any], None]
    """Called with a whole :class:`~cpc.config.Config`; raises
    :class:`~cpc.errors.ConfigError` for one its recipe cannot run."""


_REGISTERED: dict[str, Modality] = {}


def register_modality(entry: Modality) -> None:
    """Make ``entry.name`` a valid ``model.modality`` (a later entry replaces an earlier)."""
    _REGISTERED[entry.name] = entry


def known_modalities() -> list[str]:
    """The registered modality names, sorted."""
    return sorted(_REGISTERED)


def modality(name: str) -> Modality:
    """The registered modality ``name``.

    Raises:
        ConfigError: Not registered (lists the known ones).

    """
    if name not in _REGISTERED:
        raise ConfigError(f"unknown modality {name!r}; known: {known_modalities()}")
    return _REGISTERED[name]
