"""The modalities a config may name, registered by the data layer, and their own fields.

The schema knows no modality's code: each recipe (:mod:`cpc.data.registry`) registers its
name, the checks that need its code (the model its builder makes from a config, the
window it trains on) and two small dataclasses of its own settings: its ``model.*`` keys
(the builder's arguments that are not head settings) and its ``data.*`` keys.
:class:`~cpc.config.Config` reads those keys, flat beside the common ones, into the
modality's dataclasses and runs the registered check, so every config built anywhere is
checked the same way; an unknown name is a :class:`~cpc.errors.ConfigError` listing the
registered ones.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cpc.errors import ConfigError


@dataclass
class NoFields:
    """A modality that has no settings of its own in a section."""


@dataclass(frozen=True)
class Modality:
    """A registered modality: its name, its own settings and its cross-checks of a config."""

    name: str
    check: Callable[[Any], None]
    """Called with a whole :class:`~cpc.config.Config`; raises
    :class:`~cpc.errors.ConfigError` for one its recipe cannot run."""
    model_fields: type = NoFields
    """Dataclass of the modality's own ``model.*`` keys. Every field has a default (None:
    the builder's default) and a docstring; a numeric field carries its allowed range
    (:func:`cpc.config.ranges.ranged`); cross-field checks go in ``__post_init__``
    (raising :class:`~cpc.errors.ConfigError` naming ``model.key``)."""
    data_fields: type = NoFields
    """Dataclass of the modality's own ``data.*`` keys, with the same conventions."""


_REGISTERED: dict[str, Modality] = {}


def add_modality(entry: Modality, reserved: dict[str, set[str]]) -> None:
    """Store ``entry`` (a later entry of the same name replaces an earlier).

    ``reserved`` maps ``model`` and ``data`` to the common keys of those sections: a
    modality's own key may not take one of those names (YAML keys are flat).

    Raises:
        TypeError: Fields that are not a dataclass, a field without a default, or a key
            that a common key already has.

    """
    for section, kind in (("model", entry.model_fields), ("data", entry.data_fields)):
        if not (isinstance(kind, type) and dataclasses.is_dataclass(kind)):
            raise TypeError(f"modality {entry.name!r}: {section}_fields must be a dataclass")
        for f in dataclasses.fields(kind):
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise TypeError(f"modality {entry.name!r}: {section}.{f.name} needs a default")
        clash = sorted({f.name for f in dataclasses.fields(kind)} & reserved[section])
        if clash:
            raise TypeError(
                f"modality {entry.name!r}: {section} keys {clash} are common keys already"
            )
    _REGISTERED[entry.name] = entry


def remove_modality(name: str) -> None:
    """Forget modality ``name`` (no error if it is not registered)."""
    _REGISTERED.pop(name, None)


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
