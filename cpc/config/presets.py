"""Shipped presets (``configs/*.yaml``), found through ``importlib.resources``.

The presets travel inside the package (``cpc/configs`` is the repository's
``configs/`` folder), so an installed package (``pip install .``, not editable) finds
them wherever it is run from: ``cpc pretrain speech_small_cpu`` or
``load_config("speech_small_cpu")``.
"""

from __future__ import annotations

from importlib.resources import as_file, files
from pathlib import Path


def preset_names() -> list[str]:
    """Names of the shipped presets (file stems)."""
    folder = files("cpc") / "configs"
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def preset_text(name: str) -> str | None:
    """The YAML text of preset ``name`` (with or without ``.yaml``), or None."""
    stem = name[: -len(".yaml")] if name.endswith(".yaml") else name
    if "/" in stem or stem not in preset_names():
        return None
    return (files("cpc") / "configs" / f"{stem}.yaml").read_text()


def preset_path(name: str) -> Path:
    """A file system path of preset ``name`` (for tools that want a path).

    Raises:
        FileNotFoundError: No such preset (lists the shipped ones).

    """
    stem = name[: -len(".yaml")] if name.endswith(".yaml") else name
    if stem not in preset_names():
        raise FileNotFoundError(f"no preset {name!r}; shipped: {preset_names()}")
    with as_file(files("cpc") / "configs" / f"{stem}.yaml") as path:
        return Path(path)
