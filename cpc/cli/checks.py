"""Checks of where a command will write and on what it will run, before it starts.

A command that would fail after minutes of work (an output path under a file, a device
that does not exist) or silently mix two results (features written into a folder that
already holds another extraction's) stops first with one line naming the argument.
"""

from __future__ import annotations

from pathlib import Path

import torch

from cpc.config import ConfigError

# What an extraction leaves in its output folder (see cpc.features.extract).
FEATURE_MARKERS = ("index.csv", "extract.json")


def parse_device(text: str, flag: str = "--device") -> torch.device:
    """A torch device named by the user, checked to exist here.

    Raises:
        ConfigError: Not a device name, or a CUDA device this machine does not have.

    """
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise ConfigError(f"{flag} {text!r} is not a device: use cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(f"{flag} {text}: torch sees no CUDA device here; use cpu")
        if device.index is not None and device.index >= count:
            raise ConfigError(f"{flag} {text}: only {count} CUDA device(s) visible")
    elif device.type not in ("cpu", "mps"):
        raise ConfigError(f"{flag} {text!r}: cpc runs on cpu or cuda")
    return device


def check_output_dir(path: Path, *, overwrite: bool, flag: str = "--output") -> None:
    """Refuse an output folder that cannot be one or holds earlier features; no writes.

    Raises:
        ConfigError: The path or a parent is a file, or it already holds features and
            ``overwrite`` is false.

    """
    for parent in [path, *path.parents]:
        if parent.exists() and not parent.is_dir():
            raise ConfigError(f"{flag} {path}: {parent} is a file, not a folder")
    found = [name for name in FEATURE_MARKERS if (path / name).exists()]
    if found and not overwrite:
        raise ConfigError(
            f"{flag} {path} already holds features ({found[0]}): choose an empty folder "
            "or pass --overwrite"
        )


def prepare_output_dir(path: Path, *, overwrite: bool, flag: str = "--output") -> Path:
    """Check (:func:`check_output_dir`), then create the folder and test that it is
    writable; with ``overwrite`` an earlier extraction's index and summary are removed
    first, so they never describe a mix of old and new files.

    Raises:
        ConfigError: As :func:`check_output_dir`, or the folder cannot be written.

    """
    check_output_dir(path, overwrite=overwrite, flag=flag)
    try:
        path.mkdir(parents=True, exist_ok=True)
        for name in FEATURE_MARKERS:
            (path / name).unlink(missing_ok=True)
        probe = path / ".cpc-write-test"
        probe.touch()
        probe.unlink()
    except OSError as err:
        raise ConfigError(f"{flag} {path}: cannot write there ({err.strerror or err})") from None
    return path
