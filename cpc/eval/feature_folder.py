"""Read a folder of per-file features: the output of ``cpc extract``, or plain arrays.

Two layouts are accepted:

- ``cpc extract`` output: ``index.csv`` (``path, features, steps, dim``), one ``.npy``
  per input file, and ``extract.json`` (layer, downsampling, receptive field, step
  duration). Files are keyed by the ``path`` column; :attr:`FeatureFolder.by_stem` keys
  them by the file name without extension (how ``.item`` files name files).
- Libri-light's: one ``<file id>.npy`` (or ``.pt``) of shape ``(frames, dim)`` per file,
  keyed by the file id; no timing facts.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cpc.data.errors import DataError


@dataclass
class FeatureFolder:
    """Features of each file, keyed as the folder names them, with the extraction facts."""

    root: Path
    features: dict[str, np.ndarray]
    """``(frames, dim)`` float32 array per file key."""
    meta: dict[str, Any] = field(default_factory=dict)
    """Contents of ``extract.json`` (empty for plain arrays)."""

    @property
    def by_stem(self) -> dict[str, np.ndarray]:
        """The same arrays keyed by file name without extension (must be unique)."""
        out: dict[str, np.ndarray] = {}
        for key, value in self.features.items():
            stem = Path(key).stem
            if stem in out:
                raise DataError(str(self.root), f"two files share the name {stem!r}")
            out[stem] = value
        return out

    @property
    def step_seconds(self) -> float | None:
        """Seconds between frames, when the extraction recorded it."""
        step = self.meta.get("step_seconds")
        return float(step) if step else None

    @property
    def centre_shift(self) -> float:
        """Seconds by which frame ``i``'s receptive-field centre lies after ``(i + 0.5) step``.

        Frame ``i`` covers input samples ``[i D, i D + R)`` (``cpc extract``'s rule), so its
        centre is ``(i D + R / 2)`` samples, that is ``(i + 0.5) step + (R - D) step / (2 D)``.
        0 when the facts are missing (Libri-light's convention).
        """
        step, d, r = (
            self.step_seconds,
            self.meta.get("downsampling"),
            self.meta.get("receptive_field"),
        )
        if not step or not d or not r:
            return 0.0
        return float(step) * (float(r) - float(d)) / (2.0 * float(d))


def _load_array(path: Path) -> np.ndarray:
    try:
        if path.suffix == ".pt":
            array = torch.load(path, map_location="cpu", weights_only=True).numpy()
        else:
            array = np.load(path)
    except (OSError, ValueError, RuntimeError) as err:
        raise DataError(str(path), f"unreadable features: {err}") from None
    if array.ndim != 2:
        raise DataError(str(path), f"features must be (frames, dim), got shape {array.shape}")
    if not np.isfinite(array).all():
        raise DataError(str(path), "non-finite features")
    return np.asarray(array, dtype=np.float32)


def read_feature_folder(root: str | Path) -> FeatureFolder:
    """Load every feature file of ``root`` (either layout of the module docstring).

    Raises:
        FileNotFoundError: when ``root`` is not a folder.
        DataError: naming the file at fault (missing, unreadable, not 2-D, non-finite),
            or the folder when it holds no features.

    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"no features folder {root}")
    index = root / "index.csv"
    features: dict[str, np.ndarray] = {}
    meta: dict[str, Any] = {}
    if index.is_file():
        with open(index, newline="") as f:
            rows = list(csv.DictReader(f))
        if rows and not {"path", "features"} <= set(rows[0]):
            raise DataError(str(index), "needs the columns path and features")
        for row in rows:
            array_path = root / row["features"]
            if not array_path.is_file():
                raise DataError(str(array_path), "listed in index.csv but missing")
            features[row["path"]] = _load_array(array_path)
        if (root / "extract.json").is_file():
            meta = json.loads((root / "extract.json").read_text())
    else:
        for path in sorted([*root.glob("*.npy"), *root.glob("*.pt")]):
            features[path.stem] = _load_array(path)
    if not features:
        raise DataError(str(root), "no features: expected index.csv or *.npy / *.pt files")
    dims = {a.shape[1] for a in features.values()}
    if len(dims) != 1:
        raise DataError(str(root), f"feature files disagree on the dimension: {sorted(dims)}")
    return FeatureFolder(root, features, meta)
