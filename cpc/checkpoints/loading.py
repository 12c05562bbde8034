"""Loading a trained model: ``cpc.load`` and what it needs, below ``cpc.train``.

Reading a checkpoint for use (weights + the config and data facts in ``meta.json``)
needs nothing of the training loop, so it lives here and ``cpc/__init__.py`` imports
it without importing ``cpc.train``. Only JSON and safetensors are read: nothing stored
in a checkpoint can run code.
"""

from __future__ import annotations

import hashlib
import json
import logging
import pickle
import re
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from torch import nn

from cpc.checkpoints.safe_load import check_weights, weight_mismatch
from cpc.config import Config, ConfigError
from cpc.data.registry import build_model
from cpc.errors import CheckpointError, UnsafeCheckpointError
from cpc.models.cpc import CPCModel
from cpc.version import __version__

WEIGHTS = "model.safetensors"
TRAIN_STATE = "train_state.pt"
META = "meta.json"
_STEP_DIR = re.compile(r"^step_(\d{8,})$")
MAX_META_BYTES = 16 << 20
logger = logging.getLogger(__name__)


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


def checkpoint_files(path: str | Path) -> tuple[Path, Path]:
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
    _, meta_path = checkpoint_files(path)
    if not meta_path.is_file():
        raise CheckpointError(f"{meta_path}: missing; it holds the config the model needs")
    if meta_path.stat().st_size > MAX_META_BYTES:
        raise CheckpointError(f"{meta_path}: {meta_path.stat().st_size} bytes is too large")
    try:
        meta = json.loads(meta_path.read_text())
    except RecursionError:
        raise CheckpointError(f"{meta_path}: nested too deeply to be checkpoint metadata") from None
    except (OSError, ValueError) as err:  # UnicodeDecodeError, JSONDecodeError, long ints
        raise CheckpointError(f"{meta_path}: not readable JSON ({err})") from None
    if not isinstance(meta, dict) or "config" not in meta:
        raise CheckpointError(f"{meta_path}: no 'config' entry")
    return meta


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file, as hex."""
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def verify_files(ckpt_dir: Path, meta: dict[str, Any], names: tuple[str, ...]) -> list[str]:
    """Compare files with the checksums ``meta.json`` recorded (older checkpoints: none).

    Returns:
        The names that have no recorded checksum and so could not be verified.

    Raises:
        CheckpointError: A file changed or was damaged after it was saved.

    """
    sums = meta.get("sha256")
    if not isinstance(sums, dict):
        return list(names)
    for name in names:
        if name in sums and file_sha256(ckpt_dir / name) != sums[name]:
            raise CheckpointError(
                f"{ckpt_dir / name}: contents differ from the checksum saved with it "
                "(damaged or changed after saving)"
            )
    return [name for name in names if name not in sums]


def load_plain_torch(path: str | Path, kind: str) -> Any:
    """``torch.load(weights_only=True)`` of a file that should hold only tensors and values.

    A file asking for other pickled objects is refused naming what it asks for, never
    with torch's advice to retry with ``weights_only=False`` (which would run it); any
    other failure names the file as not a readable ``kind``.
    """
    try:
        return torch.load(Path(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"GLOBAL ([\w.]+)", str(err))
        if found is None:  # damaged bytes ("Unsupported operand ..."), not a request
            raise CheckpointError(
                f"{path}: not a readable {kind} (damaged or not a PyTorch file)"
            ) from None
        raise CheckpointError(
            f"{path}: refused to load: it holds pickled objects other than tensors and "
            f"plain values, which could run code (it asks for {found.group(1)}); "
            "read with weights_only=True only"
        ) from None
    except OSError as err:
        raise CheckpointError(f"{path}: not a readable {kind} ({err})") from err
    except Exception as err:  # junk bytes raise KeyError, IndexError, ... from the unpickler
        detail = " ".join([type(err).__name__, *str(err).splitlines()[:1]])
        raise CheckpointError(
            f"{path}: not a readable {kind} (damaged or not a PyTorch file: {detail})"
        ) from err


def load_weights(model: nn.Module, weights: str | Path) -> None:
    """Load a safetensors file into ``model``, refusing missing, unknown or misshaped keys."""
    try:
        tensors = safetensors.torch.load_file(str(weights), device="cpu")
    except Exception as err:  # safetensors raises its own error types
        raise CheckpointError(f"{weights}: not a readable safetensors file ({err})") from err
    problem = weight_mismatch(
        {k: tuple(v.shape) for k, v in tensors.items()},
        {k: tuple(v.shape) for k, v in model.state_dict().items()},
    )
    if problem:
        raise CheckpointError(f"{weights}: {problem}")
    check_finite(tensors, weights)
    model.load_state_dict(tensors, strict=True)


def check_finite(tensors: dict[str, torch.Tensor], source: str | Path) -> None:
    """Refuse weights holding NaN or infinite values, naming the first such tensor.

    Raises:
        CheckpointError: A floating-point tensor is not finite everywhere.

    """
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise CheckpointError(
                f"{source}: tensor {name!r} holds {bad} NaN or infinite values of "
                f"{tensor.numel()} (damaged, or saved from a diverged run)"
            )


def hub_config(model_config: dict[str, Any], meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``config.json`` contents for a model config and (optionally) checkpoint meta."""
    out: dict[str, Any] = {"cpc_version": __version__, "model": model_config}
    if meta:
        out["training"] = meta.get("config")
        out["step"] = meta.get("step")
        out["data"] = meta.get("data", {})
        if "imported" in meta:
            out["imported"] = meta["imported"]
    return out


def load_model(path: str | Path, device: str | torch.device = "cpu") -> CPCModel:
    """Rebuild a trained model from its saved config and load its weights (eval mode).

    Only ``meta.json`` (JSON) and the safetensors weights are read: nothing in the files
    can run code. The weights are compared with the SHA-256 saved in ``meta.json`` and
    must be finite; a checkpoint saved without checksums (older ones) still loads, with
    a warning that damage leaving the values finite cannot be detected
    (``docs/reliability.md`` says why it is not refused).

    Args:
        path: A run directory (its newest checkpoint), a checkpoint directory, or a
            ``model.safetensors`` file with its ``meta.json`` beside it.
        device: Where to put the model.

    Raises:
        CheckpointError: No checkpoint, unreadable files, or weights that do not match
            the model the config describes.

    """
    weights, _ = checkpoint_files(path)
    config, meta = checked_config(path)
    verified = weights.name == WEIGHTS and not verify_files(weights.parent, meta, (WEIGHTS,))
    if not verified:
        logger.warning(
            "%s: no checksum saved with it (an older checkpoint or a bare weights file): "
            "damage that leaves the values finite cannot be detected",
            weights,
        )
    model = build_model(config.model)
    load_weights(model, weights)
    model.hub_config = hub_config(config.model.to_dict(), meta)
    return model.to(device).eval()


def checked_config(path: str | Path) -> tuple[Config, dict[str, Any]]:
    """A checkpoint's config, validated and matched with its weight file's header.

    Nothing is allocated: the config's sizes are range-checked, and the tensor names and
    shapes of the model it describes (built on the meta device) are compared with the
    safetensors header (:mod:`cpc.checkpoints.safe_load`).

    Returns:
        The config and the whole ``meta.json``.

    Raises:
        CheckpointError: Bad metadata or a config that does not match the weights.

    """
    weights, meta_path = checkpoint_files(path)
    meta = read_meta(path)
    if not isinstance(meta["config"], dict):
        raise CheckpointError(f"{meta_path}: 'config' is not a mapping")
    return config_matching_weights(meta["config"], weights, meta_path), meta


def config_matching_weights(data: dict[str, Any], weights: Path, where: str | Path) -> Config:
    """A saved config, validated and matched with its weight file's header.

    Nothing is allocated: the model the config describes is built on the meta device and
    its tensor names and shapes compared with the safetensors header.

    Raises:
        CheckpointError: A bad config (named by ``where``), weights that do not match it,
            or an unreadable weight file.

    """
    try:
        config = Config.from_dict(data, saved=True)
        check_weights(weights, config.model)
    except ConfigError as err:
        raise CheckpointError(f"{where}: bad config: {err}") from None
    except UnsafeCheckpointError as err:
        raise CheckpointError(str(err)) from None
    except OSError as err:
        raise CheckpointError(f"{weights}: cannot read ({err.strerror or err})") from None
    return config
