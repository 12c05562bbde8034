"""Checkpoints that survive a kill at any moment and never execute code when loaded.

A checkpoint is a directory ``out_dir/checkpoints/step_{step:08d}/`` holding:

- ``model.safetensors``: the weights (safetensors: tensors only, no code);
- ``train_state.pt``: optimiser and gradient-scaler state and the RNG states of every
  process, all plain tensors and numbers, read only with ``torch.load(weights_only=True)``,
  which refuses any pickled object (a crafted file fails with :class:`CheckpointError`);
- ``meta.json``: step, epoch, position in the epoch, the full config, the package and
  torch versions, the time, and data facts needed to use the model (signal channels and
  normalisation statistics).

Writing is atomic: everything goes into a hidden temporary directory, each file is
flushed to disk, and the directory is renamed into place with ``os.replace``. A kill
leaves at worst a ``.tmp-*`` directory, which :func:`latest_checkpoint` ignores and the
next save removes. A save that cannot complete (a full disk, a quota, a read-only
folder) removes its temporary directory and raises :class:`~cpc.errors.OutputError`
naming the checkpoint, the space free and the space it needs; it is refused before
writing anything when the free space is already short. Old checkpoints beyond
``keep_last`` are renamed away before being deleted, so a half-deleted directory is
never mistaken for a checkpoint.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.torch
import torch
from torch import nn

from cpc.checkpoints.loading import (
    META,
    TRAIN_STATE,
    WEIGHTS,
    CheckpointError,
    checkpoint_dir,
    checkpoint_files,
    file_sha256,
    latest_checkpoint,
    list_checkpoints,
    load_model,
    load_plain_torch,
    load_weights,
    read_meta,
    verify_files,
)
from cpc.checkpoints.outputs import check_space, is_write_failure, write_failure
from cpc.config import Config
from cpc.version import __version__

__all__ = [
    "META",
    "TRAIN_STATE",
    "WEIGHTS",
    "Checkpoint",
    "CheckpointError",
    "TrainState",
    "checkpoint_dir",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "load_model",
    "load_newest_valid",
    "load_train_state",
    "load_weights",
    "read_meta",
    "rng_state",
    "save_checkpoint",
    "set_aside",
    "set_rng_state",
    "state_dict_cpu",
]

FORMAT_VERSION = 1
# ".tmp-step_00000100-1234@host": the pid and host of the process writing it.
_OWNER = re.compile(r"-(\d+)(?:@(.+))?$")


@dataclass
class TrainState:
    """Where training stands: what a resumed run needs besides weights and optimiser.

    Attributes:
        step: Optimiser steps taken.
        epoch: Current epoch of the data.
        batch_in_epoch: Micro-batches of this epoch already consumed, per process.
        elapsed: Seconds of training so far, over every resume (the time budget's
            clock: the schedule and ``run.max_time`` continue from it).
        loaders: Streamed data only: every process's data-loader state at this point
            of the epoch (plain values, rank order); None for indexed data.

    """

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    elapsed: float = 0.0
    loaders: list[Any] | None = None


@dataclass
class Checkpoint:
    """What :func:`load_checkpoint` read.

    Attributes:
        path: The checkpoint directory.
        state: Step, epoch and position.
        meta: The contents of ``meta.json``.
        rng: RNG states of every process that saved one (rank order), may be empty.

    """

    path: Path
    state: TrainState
    meta: dict[str, Any]
    rng: list[dict[str, Any]] = field(default_factory=list)


# --- RNG states as tensors (so weights_only loading accepts them) -------------------


def rng_state() -> dict[str, Any]:
    """The RNG states of torch (CPU and current CUDA device), numpy and ``random``."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state(legacy=True)  # noqa: NPY002 (global)
    version, words, py_gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy_keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
        "numpy_meta": [str(kind), int(pos), int(has_gauss), float(gauss)],
        "python": torch.tensor(words, dtype=torch.int64),
        "python_meta": [int(version), py_gauss],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    torch.set_rng_state(state["torch"].cpu())
    kind, pos, has_gauss, gauss = state["numpy_meta"]
    keys = state["numpy_keys"].numpy().astype(np.uint32)
    np.random.set_state((kind, keys, int(pos), int(has_gauss), float(gauss)))  # noqa: NPY002
    version, py_gauss = state["python_meta"]
    random.setstate((int(version), tuple(int(w) for w in state["python"].tolist()), py_gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"].cpu())


# --- saving -------------------------------------------------------------------------


def _fsync(path: Path) -> None:
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) if path.is_dir() else os.O_RDONLY
    try:
        fd = os.open(path, flags)
    except OSError:  # some platforms cannot open directories
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    """Rename ``path`` out of the way (atomic), then delete it."""
    owner = f"{os.getpid()}@{socket.gethostname()}"
    trash = path.with_name(f".trash-{path.name}-{time.monotonic_ns()}-{owner}")
    os.replace(path, trash)
    shutil.rmtree(trash, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _remove_leftovers(root: Path) -> None:
    """Delete ``.tmp-*``/``.trash-*`` folders of processes that are gone.

    Only folders written on this host by a process that no longer runs (or by this
    process) are removed: another live process's temporary checkpoint is never
    touched, even if two runs share a directory despite the run lock (which prevents
    that), and a folder from another host is left alone since its owner cannot be
    checked from here.
    """
    host = socket.gethostname()
    for leftover in [*root.glob(".tmp-*"), *root.glob(".trash-*")]:
        match = _OWNER.search(leftover.name)
        if match is None or (match.group(2) or host) != host:
            continue
        pid = int(match.group(1))
        if pid == os.getpid() or not _alive(pid):
            shutil.rmtree(leftover, ignore_errors=True)


def state_dict_cpu(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's state dict as contiguous CPU tensors (for safetensors)."""
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}


def save_checkpoint(
    out_dir: str | Path,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    state: TrainState,
    config: Config,
    scaler: torch.amp.GradScaler | None = None,
    rng: list[dict[str, Any]] | None = None,
    data_info: dict[str, Any] | None = None,
    keep_last: int = 3,
) -> Path:
    """Write a checkpoint atomically and prune old ones.

    Args:
        out_dir: The run directory.
        model: The bare model (not a DDP or compiled wrapper).
        optimizer: Its state is saved.
        state: Step, epoch and position in the epoch.
        config: The full run config, saved as JSON.
        scaler: fp16 gradient scaler, if used.
        rng: RNG states of every process (:func:`rng_state`), rank order; default:
            this process's.
        data_info: JSON-safe facts about the data (channels, statistics).
        keep_last: Keep this many newest checkpoints (<= 0: keep all).

    Returns:
        The checkpoint directory.

    """
    root = checkpoint_dir(out_dir)
    final = root / f"step_{state.step:08d}"
    train_state = {
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None and scaler.is_enabled() else None,
        "rng": rng if rng is not None else [rng_state()],
        "state": {
            "step": state.step,
            "epoch": state.epoch,
            "batch": state.batch_in_epoch,
            "elapsed": state.elapsed,
            "loaders": state.loaders,
        },
    }
    weights = state_dict_cpu(model)
    needed = _tensor_bytes(weights) + _tensor_bytes(train_state) + 16 * 1024
    hint = (
        "; the older checkpoints are intact: free some space (or lower run.keep_last) and "
        "run the same command again to resume"
    )
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise write_failure(root, err, needed, hint) from None
    _remove_leftovers(root)
    check_space(final, needed, hint)
    meta: dict[str, Any] = {"format": FORMAT_VERSION, "step": state.step, "epoch": state.epoch}
    meta |= {"batch_in_epoch": state.batch_in_epoch, "config": config.to_dict()}
    meta |= {"cpc_version": __version__, "torch_version": torch.__version__}
    meta |= {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "data": data_info or {}}
    tmp = root / f".tmp-{final.name}-{os.getpid()}@{socket.gethostname()}"
    try:
        _write_files(tmp, weights, train_state, meta)
        if final.exists():
            _remove(final)
        os.replace(tmp, final)
    except Exception as err:
        shutil.rmtree(tmp, ignore_errors=True)  # nothing half-written stays
        if isinstance(err, OSError) or is_write_failure(err):
            raise write_failure(final, err, needed, hint) from None
        raise
    _fsync(root)
    if keep_last > 0:
        for old in list_checkpoints(out_dir)[:-keep_last]:
            _remove(old)
    return final


def _tensor_bytes(obj: Any) -> int:
    """Bytes of the tensors in a nest of dicts, lists and tuples."""
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(_tensor_bytes(v) for v in obj.values())
    if isinstance(obj, list | tuple):
        return sum(_tensor_bytes(v) for v in obj)
    return 0


def _write_files(
    tmp: Path, weights: dict[str, torch.Tensor], train_state: dict[str, Any], meta: dict[str, Any]
) -> None:
    """The three files of a checkpoint, with their sums, flushed to disk, in ``tmp``."""
    if tmp.exists():  # this process failed while saving this step before
        shutil.rmtree(tmp)
    tmp.mkdir()
    safetensors.torch.save_file(weights, str(tmp / WEIGHTS))
    torch.save(train_state, tmp / TRAIN_STATE)
    sums = {"sha256": {name: file_sha256(tmp / name) for name in (WEIGHTS, TRAIN_STATE)}}
    (tmp / META).write_text(json.dumps({**sums, **meta}, indent=2))
    for name in (WEIGHTS, TRAIN_STATE, META):
        _fsync(tmp / name)


# --- loading ------------------------------------------------------------------------


def load_train_state(path: str | Path) -> dict[str, Any]:
    """Read ``train_state.pt`` with ``weights_only=True``; refuse anything else."""
    data = load_plain_torch(path, "training state")
    if not isinstance(data, dict) or not {"optimizer", "state"} <= set(data):
        raise CheckpointError(f"{path}: not a cpc training state (keys missing)")
    return data


def load_checkpoint(
    path: str | Path,
    *,
    model: nn.Module | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    scaler: torch.amp.GradScaler | None = None,
) -> Checkpoint:
    """Read a checkpoint and load it into the objects given.

    Args:
        path: A checkpoint directory, or a run directory (its newest checkpoint).
        model: Receives the weights (the bare model, not a wrapper).
        optimizer: Receives the optimiser state.
        scaler: Receives the gradient-scaler state when one was saved.

    Returns:
        Step, epoch, position, meta data and RNG states (not applied: see
        :func:`set_rng_state`).

    Raises:
        CheckpointError: Missing files, a crafted pickle, mismatched weights.

    """
    weights, _ = checkpoint_files(path)
    ckpt_dir = weights.parent
    if not (ckpt_dir / TRAIN_STATE).is_file():
        raise CheckpointError(f"{ckpt_dir}: no {TRAIN_STATE}: not a training checkpoint")
    meta = read_meta(ckpt_dir)
    data = load_train_state(ckpt_dir / TRAIN_STATE)  # first: a crafted pickle is named
    verify_files(ckpt_dir, meta, (WEIGHTS, TRAIN_STATE))
    if model is not None:
        load_weights(model, weights)
    if optimizer is not None:
        optimizer.load_state_dict(data["optimizer"])
    if scaler is not None and data.get("scaler") is not None:
        scaler.load_state_dict(data["scaler"])
    raw = data["state"]
    elapsed = float(raw.get("elapsed", 0.0))
    state = TrainState(int(raw["step"]), int(raw["epoch"]), int(raw["batch"]), elapsed)
    state.loaders = raw.get("loaders")
    return Checkpoint(ckpt_dir, state, meta, list(data.get("rng") or []))


def load_newest_valid(
    out_dir: str | Path,
    *,
    model: nn.Module | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    scaler: torch.amp.GradScaler | None = None,
) -> tuple[Checkpoint | None, list[tuple[Path, str]]]:
    """Load the newest checkpoint of a run that verifies, skipping damaged newer ones.

    Each candidate is read whole (metadata, checksums, training state, weights) before
    the next older one is tried, so a truncated or altered newest checkpoint costs its
    steps, not the run.

    Returns:
        The checkpoint loaded (None when the run has none) and the newer ones skipped,
        each with the reason.

    Raises:
        CheckpointError: Checkpoints exist but none verifies (every reason named).

    """
    skipped: list[tuple[Path, str]] = []
    for path in reversed(list_checkpoints(out_dir)):
        try:
            ckpt = load_checkpoint(path, model=model, optimizer=optimizer, scaler=scaler)
        except CheckpointError as err:
            skipped.append((path, str(err)))
            continue
        return ckpt, skipped
    if skipped:
        reasons = "; ".join(f"{p.name}: {why}" for p, why in skipped)
        raise CheckpointError(f"no checkpoint in {checkpoint_dir(out_dir)} verifies: {reasons}")
    return None, skipped


def set_aside(path: Path) -> Path:
    """Rename a damaged checkpoint to ``step_XXXXXXXX.corrupt`` (kept, but never resumed
    from, pruned or loaded again).
    """
    aside = path.with_name(f"{path.name}.corrupt")
    if aside.exists():
        _remove(aside)
    os.replace(path, aside)
    return aside
