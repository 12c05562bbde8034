"""UCR/UEA time-series archives (``.ts`` files) through ``aeon``, an optional extra.

``pip install -e ".[ucr]"`` brings aeon, which also bundles a few archive data sets
(BasicMotions, GunPoint, ...). :func:`export_ts` turns a ``.ts`` file into one ``.npy``
per series of shape ``(time, channels)`` plus a ``manifest.csv`` (``path``, ``label``), the
layout :class:`cpc.data.signals.SignalWindowDataset` reads.
"""

from __future__ import annotations

import csv
from pathlib import Path
from types import ModuleType

import numpy as np

from cpc.errors import DataError


def _aeon_datasets() -> ModuleType:
    try:
        import aeon.datasets as datasets
    except ImportError as err:
        raise ImportError("reading UCR/UEA .ts files needs aeon: pip install -e '.[ucr]'") from err
    return datasets


def bundled_ts(name: str, split: str = "train") -> Path:
    """Path of a ``.ts`` file that aeon ships (e.g. ``BasicMotions``, ``GunPoint``)."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    root = Path(str(_aeon_datasets().__file__)).parent / "data" / name
    path = root / f"{name}_{split.upper()}.ts"
    if not path.is_file():
        shipped = sorted(p.name for p in root.parent.iterdir() if p.is_dir())
        raise FileNotFoundError(f"{path}: not bundled with aeon; bundled sets: {shipped}")
    return path


def load_ts(path: str | Path) -> tuple[list[np.ndarray], list[str]]:
    """Series and labels of a ``.ts`` file.

    Shape:
        each series: (t, c) float32 (unequal lengths allowed; missing values stay NaN
        for the signal reader to interpolate).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such .ts file")
    try:  # aeon's reader raises what its parser meets: decoding errors, IOError(...)
        x, y = _aeon_datasets().load_from_ts_file(str(path))
    except (ValueError, OSError, IndexError, KeyError, TypeError) as err:
        detail = " ".join(str(err).split())[:200]
        raise DataError(
            str(path), f"not a readable .ts file ({type(err).__name__}: {detail})"
        ) from None
    series = [np.asarray(s, dtype=np.float32).T for s in x]  # aeon: (c, t) per series
    return series, [str(label) for label in y]


def export_ts(path: str | Path, out_dir: str | Path) -> Path:
    """Write each series as ``.npy`` (t, c) and a ``manifest.csv``; returns the manifest."""
    series, labels = load_ts(path)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, (s, label) in enumerate(zip(series, labels, strict=True)):
        name = f"{Path(path).stem}_{i:05d}.npy"
        np.save(out / name, s)
        rows.append((name, label))
    manifest = out / "manifest.csv"
    with open(manifest, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label"])
        writer.writerows(rows)
    return manifest
