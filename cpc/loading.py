"""Loading a trained model: ``cpc.load`` and what it needs, below ``cpc.train``.

Reading a checkpoint for use (weights + the config and data facts in ``meta.json``)
needs nothing of the training loop, so it lives here and ``cpc/__init__.py`` imports
it without importing ``cpc.train``. Only JSON and safetensors are read: nothing stored
in a checkpoint can run code.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from torch import nn

from cpc.config import Config, ConfigError, build_model
from cpc.models.cpc import CPCModel

WEIGHTS = "model.safetensors"
TRAIN_STATE = "train_state.pt"
META = "meta.json"
_STEP_DIR = re.compile(r"^step_(\d{8,})$")


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be found, read or applied; the message names the file."""


# --- finding checkpoints --------------------------------------------------------------


def checkpoint_dir(out_dir: str | Path) -> Path:
    """The folder of a run's checkpoints."""
    return Path(out_dir) / "checkpoints"


def _is_complete(path: Path) -> bool:
    return all((path / name).is_file() for name in (WEIGHTS, TRAIN_STATE, META))


def list_checkpoints(out_dir: str | Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first; temporary leftovers are ignored."""
    root = checkpoint_dir(out_dir)
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        match = _STEP_DIR.match(path.name)
        if match and path.is_dir() and _is_complete(path):
            found.append((int(match.group(1)), path))
    return [path for _, path in sorted(found)]


def latest_checkpoint(out_dir: str | Path) -> Path | None:
    """The newest complete checkpoint of a run directory, or None."""
    found = list_checkpoints(out_dir)
    return found[-1] if found else None


# --- reading ---


def resolve(path: str | Path) -> tuple[Path, Path]:
    """(weights file, meta file) for a run dir, a checkpoint dir or a weights file."""
    path = Path(path)
    if path.is_file():
        if path.suffix != ".safetensors":
            raise CheckpointError(f"{path}: expected a .safetensors weights file")
        return path, path.parent / META
    if not path.is_dir():
        raise CheckpointError(f"{path}: no such checkpoint, run directory or weights file")
    if (path / WEIGHTS).is_file():
        return path / WEIGHTS, path / META
    latest = latest_checkpoint(path)
    if latest is None:
        raise CheckpointError(f"{path}: neither a checkpoint nor a run directory with one")
    return latest / WEIGHTS, latest / META


def read_meta(path: str | Path) -> dict[str, Any]:
    """``meta.json`` of a checkpoint (a run dir, a checkpoint dir or a weights file)."""
    _, meta_path = resolve(path)
    if not meta_path.is_file():
        raise CheckpointError(f"{meta_path}: missing; it holds the config the model needs")
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{meta_path}: not readable JSON ({err})") from err
    if not isinstance(meta, dict) or "config" not in meta:
        raise CheckpointError(f"{meta_path}: no 'config' entry")
    return meta


def load_weights(model: nn.Module, weights: str | Path) -> None:
    """Load a safetensors file into ``model``, refusing missing, unknown or misshaped keys."""
    try:
        tensors = safetensors.torch.load_file(str(weights), device="cpu")
    except Exception as err:  # safetensors raises its own error types
        raise CheckpointError(f"{weights}: not a readable safetensors file ({err})") from err
    expected = model.state_dict()
    unknown = sorted(set(tensors) - set(expected))
    missing = sorted(set(expected) - set(tensors))
    if unknown or missing:
        raise CheckpointError(
            f"{weights}: weights do not match the model built from the config: "
            f"unknown keys {unknown[:5]}{'...' if len(unknown) > 5 else ''}, "
            f"missing keys {missing[:5]}{'...' if len(missing) > 5 else ''}"
        )
    bad = [
        f"{k}: file {tuple(v.shape)} vs model {tuple(expected[k].shape)}"
        for k, v in tensors.items()
        if v.shape != expected[k].shape
    ]
    if bad:
        raise CheckpointError(f"{weights}: shape mismatch: {'; '.join(bad[:5])}")
    model.load_state_dict(tensors, strict=True)


def load_model(path: str | Path, device: str | torch.device = "cpu") -> CPCModel:
    """Rebuild a trained model from its saved config and load its weights (eval mode).

    Only ``meta.json`` (JSON) and the safetensors weights are read: nothing in the files
    can run code.

    Args:
        path: A run directory (its newest checkpoint), a checkpoint directory, or a
            ``model.safetensors`` file with its ``meta.json`` beside it.
        device: Where to put the model.

    Raises:
        CheckpointError: No checkpoint, unreadable files, or weights that do not match
            the model the config describes.

    """
    weights, _ = resolve(path)
    meta = read_meta(path)
    try:
        config = Config.from_dict(meta["config"])
    except ConfigError as err:
        raise CheckpointError(f"{weights.parent / META}: bad config: {err}") from err
    model = build_model(config.model)
    load_weights(model, weights)
    from cpc.hub import hub_config  # the training config and data facts, for the Hub

    model.hub_config = hub_config(dataclasses.asdict(config.model), meta)
    return model.to(device).eval()
