"""Discrete units: k-means over frozen features, as spoken-language-model pipelines use.

``cpc units fit FEATURES_DIR --k 100 --out km`` pools the frames of every file that
``cpc extract`` wrote into FEATURES_DIR, normalises them, and fits scikit-learn's
``MiniBatchKMeans``; ``cpc units apply FEATURES_DIR --units km --out DIR`` writes each
file's unit sequence (optionally with runs of the same unit collapsed) to
``DIR/units.tsv``. The centroids and the normalisation are saved as ``units.npz``
(plain arrays, read with ``allow_pickle=False``) and ``units.json``; no pickled
scikit-learn object is written or read.

Collapse: unnormalised features can put almost every frame in one cluster (a few
dimensions of large scale dominate the distances). The entropy of the unit
distribution is reported; below half of ``log k`` (``k`` equally used units give
``log k``) a warning says so and suggests a normalisation.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from cpc.data.seeds import check_seed
from cpc.errors import DataError, UnitsError
from cpc.features.folder import read_feature_folder

Normalize = Literal["standard", "l2", "none"]
NORMALIZE: tuple[str, ...] = ("standard", "l2", "none")
#: Warn when the units' entropy is below this fraction of ``log k``.
COLLAPSE_FRACTION = 0.5


def read_features(folder: str | Path) -> list[tuple[str, np.ndarray]]:
    """``(file key, features (s, d))`` of every file of a feature folder.

    Read by the feature folder's one reader (:func:`cpc.features.folder.read_feature_folder`);
    its errors come back as :class:`UnitsError` with the same message.
    """
    try:
        found = read_feature_folder(folder)
    except (DataError, FileNotFoundError) as err:
        raise UnitsError(f"{err} (FEATURES_DIR must be a folder `cpc extract` wrote)") from None
    return list(found.features.items())


def entropy(units: np.ndarray, k: int) -> float:
    """Entropy (nats) of the empirical distribution of ``units`` over ``0..k-1``."""
    p = np.bincount(units, minlength=k) / max(len(units), 1)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def collapse_warning(value: float, k: int) -> str | None:
    """A one-line warning when the unit entropy is far below ``log k``, else None."""
    if value >= COLLAPSE_FRACTION * math.log(k):
        return None
    return (
        f"units nearly collapsed: entropy {value:.2f} nats against log k = {math.log(k):.2f} "
        f"for k = {k} (few units cover most frames); try --normalize standard or l2"
    )


def dedup(units: np.ndarray) -> np.ndarray:
    """Collapse runs of the same unit: ``[3, 3, 5, 5, 5, 3] -> [3, 5, 3]``."""
    if len(units) == 0:
        return units
    keep = np.ones(len(units), dtype=bool)
    keep[1:] = units[1:] != units[:-1]
    return units[keep]


@dataclass
class UnitModel:
    """Centroids and the normalisation they were fitted after.

    Attributes:
        centers: (k, d) centroids in the normalised space.
        normalize: ``standard`` (per-dimension z-score with the fit frames' mean and
            std), ``l2`` (each frame to unit length) or ``none``.
        mean, std: (d,) statistics for ``standard`` (zeros and ones otherwise).
        fit_entropy: entropy (nats) of the units of the fit frames.
        frames: frames used for the fit.

    """

    centers: np.ndarray
    normalize: str
    mean: np.ndarray
    std: np.ndarray
    fit_entropy: float
    frames: int

    @property
    def k(self) -> int:
        """Number of units."""
        return int(self.centers.shape[0])

    def transform(self, feats: np.ndarray) -> np.ndarray:
        """Normalise frames (s, d) as at fit time."""
        x = feats.astype(np.float32)
        if self.normalize == "standard":
            return (x - self.mean) / self.std
        if self.normalize == "l2":
            return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-8)
        return x

    def assign(self, feats: np.ndarray, chunk: int = 8192) -> np.ndarray:
        """The nearest centroid of each frame (squared Euclidean distance). Shape: (s,)."""
        if feats.shape[1] != self.centers.shape[1]:
            raise UnitsError(
                f"features have {feats.shape[1]} dimensions, the units {self.centers.shape[1]}"
            )
        x = self.transform(feats)
        c2 = (self.centers**2).sum(1)
        out = np.empty(len(x), dtype=np.int64)
        for start in range(0, len(x), chunk):
            part = x[start : start + chunk]
            # key: |x - c|^2 = |x|^2 - 2 x.c + |c|^2; |x|^2 does not change the argmin
            out[start : start + chunk] = np.argmin(c2 - 2 * part @ self.centers.T, axis=1)
        return out

    def save(self, folder: str | Path, facts: dict[str, object]) -> Path:
        """Write ``units.npz`` and ``units.json`` (with ``facts``) into ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        np.savez(folder / "units.npz", centers=self.centers, mean=self.mean, std=self.std)
        meta = {
            "k": self.k,
            "normalize": self.normalize,
            "fit_entropy_nats": self.fit_entropy,
            "log_k": math.log(self.k),
            "frames": self.frames,
            **facts,
        }
        (folder / "units.json").write_text(json.dumps(meta, indent=2, default=str))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> UnitModel:
        """Read what :meth:`save` wrote."""
        folder = Path(folder)
        try:
            meta = json.loads((folder / "units.json").read_text())
            with np.load(folder / "units.npz", allow_pickle=False) as arrays:
                model = cls(
                    arrays["centers"],
                    meta["normalize"],
                    arrays["mean"],
                    arrays["std"],
                    float(meta["fit_entropy_nats"]),
                    int(meta["frames"]),
                )
        except (OSError, ValueError, KeyError, TypeError, RecursionError) as err:
            raise UnitsError(
                f"{folder}: not a units folder written by `cpc units fit` ({err})"
            ) from None
        model.check(folder)
        return model

    def check(self, where: str | Path) -> None:
        """Refuse centroids or statistics that cannot assign units honestly.

        NaN centroids would make every distance NaN and ``argmin`` answer unit 0 for
        every frame; they are refused here instead.

        Raises:
            UnitsError: Naming ``where`` and the array at fault.

        """
        if self.normalize not in NORMALIZE:
            raise UnitsError(f"{where}: normalize {self.normalize!r} is not one of {NORMALIZE}")
        if self.centers.ndim != 2 or self.centers.shape[0] < 1:
            raise UnitsError(f"{where}: centers must be (k, d), got {self.centers.shape}")
        d = self.centers.shape[1]
        for name, array in (("centers", self.centers), ("mean", self.mean), ("std", self.std)):
            if not np.issubdtype(array.dtype, np.floating):
                raise UnitsError(f"{where}: {name} must be floating point, got {array.dtype}")
            if name != "centers" and array.shape != (d,):
                raise UnitsError(f"{where}: {name} has shape {array.shape}, expected ({d},)")
            if not np.isfinite(array).all():
                raise UnitsError(f"{where}: {name} holds NaN or infinite values")
        if (self.std <= 0).any():
            raise UnitsError(f"{where}: std must be positive")


def fit_units(
    feats: list[np.ndarray],
    k: int,
    normalize: Normalize = "standard",
    seed: int = 0,
    max_frames: int = 500_000,
) -> UnitModel:
    """k-means (scikit-learn ``MiniBatchKMeans``) on the pooled frames of ``feats``.

    At most ``max_frames`` frames, drawn uniformly without replacement with ``seed``.

    Raises:
        UnitsError: ``k < 2``, ``max_frames < k``, fewer frames than ``k``, or an
            unknown normalisation.

    """
    try:
        from sklearn.cluster import MiniBatchKMeans
    except ImportError as err:
        raise UnitsError("k-means needs scikit-learn: pip install 'cpc[units]'") from err

    if normalize not in NORMALIZE:
        raise UnitsError(f"normalize must be one of {NORMALIZE}, got {normalize!r}")
    if k < 2:
        raise UnitsError(f"k must be at least 2, got {k}")
    if max_frames < k:
        raise UnitsError(f"max_frames must be at least k = {k}, got {max_frames}")
    check_seed(seed)
    pooled = np.concatenate(feats).astype(np.float32)
    if len(pooled) < k:
        raise UnitsError(f"{len(pooled)} frames cannot make k = {k} units")
    rng = np.random.default_rng(seed)
    if len(pooled) > max_frames:
        pooled = pooled[rng.choice(len(pooled), max_frames, replace=False)]
    d = pooled.shape[1]
    mean, std = np.zeros(d, np.float32), np.ones(d, np.float32)
    if normalize == "standard":
        mean, std = pooled.mean(0), np.maximum(pooled.std(0), 1e-8)
    model = UnitModel(np.zeros((k, d), np.float32), normalize, mean, std, 0.0, len(pooled))
    x = model.transform(pooled)
    km = MiniBatchKMeans(k, batch_size=4096, n_init=3, random_state=seed, max_iter=200)
    km.fit(x)
    model.centers = km.cluster_centers_.astype(np.float32)
    model.fit_entropy = entropy(model.assign(pooled), k)
    return model


def apply_units(
    model: UnitModel, features_dir: str | Path, out: str | Path, deduplicate: bool = False
) -> tuple[Path, float]:
    """Write ``out/units.tsv`` (``path``, space-separated ``units`` per file).

    ``deduplicate`` collapses runs of the same unit (:func:`dedup`), as many spoken
    language models consume them. Returns the file and the units' entropy (nats).
    """
    model.check("units")
    files = read_features(features_dir)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    all_units = []
    with open(out / "units.tsv", "w", newline="") as f:
        writer = csv.writer(f, delimiter="\t")
        writer.writerow(["path", "units"])
        for path, feats in files:
            units = model.assign(feats)
            all_units.append(units)
            seq = dedup(units) if deduplicate else units
            writer.writerow([path, " ".join(map(str, seq.tolist()))])
    value = entropy(np.concatenate(all_units), model.k)
    meta = {"k": model.k, "deduplicated": deduplicate, "entropy_nats": value, "files": len(files)}
    (out / "units.json").write_text(json.dumps(meta, indent=2))
    return out / "units.tsv", value
