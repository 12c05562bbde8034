"""The feature-folder format: one ``.npy`` per input file, ``index.csv``, ``extract.json``.

Writing (:mod:`cpc.features.extract` writes ``index.csv`` and ``extract.json``; this
module writes the arrays of long recordings): :func:`write_features` pushes blocks of
samples (e.g. :class:`cpc.data.blocks.AudioBlocks`, a file read in order and resampled
block by block) through the exact streaming extractor
(:class:`cpc.features.streaming.Streamer`: each encoder layer keeps only the input it has
not consumed, the recurrent context carries its state) in pieces of ``chunk_steps``
latents, and writes the rows into a ``.npy`` created with its final shape
(``np.lib.format.open_memmap``; the shape follows from the input's length) through a
plain file at their offsets, so that no page of features stays mapped into the process.
Memory is that of a block and a piece, whatever the recording's length, and the result
equals the whole file's features. A context that needs the whole sequence (transformer,
causal convolution) runs once over the collected latents at the end: its memory grows
with the latents, ``(steps, d)`` floats.

Reading (:func:`read_feature_folder`, the one reader: ``cpc probe``, ``cpc abx`` and
``cpc units`` all use it) accepts two layouts:

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
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from cpc.errors import DataError
from cpc.features.streaming import Streamer
from cpc.models.cpc import CPCModel


def can_stream(model: CPCModel) -> bool:
    """Whether the encoder can run on a growing input (``stream_stages``)."""
    try:
        Streamer(model, "encoder")
    except ValueError:
        return False
    return True


def check_finite_features(feats: Tensor, path: str) -> None:
    """Refuse features holding NaN or infinite values: the file gets no row.

    Raises:
        DataError: Naming ``path`` and the first bad step.

    """
    if feats.numel() == 0:
        return
    finite = torch.isfinite(feats).reshape(feats.shape[0], -1).all(dim=1)
    if not bool(finite.all()):
        first = int((~finite).nonzero()[0, 0])
        raise DataError(path, f"non-finite features: NaN or infinite from step {first}")


def write_features(
    model: CPCModel,
    blocks: Iterable[np.ndarray],
    length: int,
    path: str | Path,
    layer: str = "context",
    chunk_steps: int | None = 1000,
) -> tuple[int, int]:
    """Stream blocks of samples through the model into a ``.npy`` of features.

    Args:
        model: A trained sequence model whose encoder can stream (:func:`can_stream`).
        blocks: The input in order; their lengths together must be ``length``.
        length: Input samples in all.
        path: The ``.npy`` to write, shape ``(steps, d)`` float32.
        layer: ``"encoder"``, ``"context"`` or ``"context.N"``.
        chunk_steps: Latents per encoder call (None: each block in one call).

    Returns:
        ``(steps, d)``.

    Raises:
        ValueError: The input is too short for one feature, or the blocks did not add
            up to ``length`` (the partial file is removed).
        DataError: Features that are not finite (naming ``path``); the partial file
            is removed first.
        Exception: Whatever the blocks raise (a file failing half-way, as
            :class:`cpc.data.errors.DataError`); the partial file is removed first.

    Shape:
        each block: ``(t,)`` waveform or ``(t, c)`` signal.

    """
    steps = int(model.encoder.output_lengths(torch.tensor([length]))[0])
    if steps <= 0:
        raise ValueError(
            f"{length} samples are shorter than the model's receptive field "
            f"({model.receptive_field})"
        )
    whole_context = layer != "encoder" and not model.context.supports_chunks
    stream = Streamer(model, "encoder" if whole_context else layer)
    dim = model.context.out_dim if whole_context else stream.out_dim
    piece = None if chunk_steps is None else max(1, chunk_steps) * model.downsampling
    path = Path(path)
    header = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(steps, dim))
    del header  # unmapped: the file keeps its header and full size
    latents: list[Tensor] = []
    written = 0
    try:
        with path.open("r+b") as f:
            np.lib.format.read_magic(f)
            np.lib.format.read_array_header_1_0(f)
            start = f.tell()
            for feats in _features(stream, blocks, piece):
                if whole_context:
                    latents.append(feats)
                    continue
                end = written + feats.shape[0]
                if end > steps:
                    raise ValueError(f"the blocks held more than the {length} samples announced")
                check_finite_features(feats, str(path))
                f.seek(start + written * dim * 4)
                f.write(feats.float().cpu().numpy().tobytes())
                written = end
            if whole_context and latents:
                z = torch.cat(latents)[None, :, None]
                with torch.no_grad():
                    c = model.context(z)[0, :, 0]
                check_finite_features(c, str(path))
                f.write(c.float().cpu().numpy().tobytes())
                written = c.shape[0]
        if written != steps:
            raise ValueError(f"the blocks held {written} feature steps, not {steps}")
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return steps, dim


def _features(
    stream: Streamer, blocks: Iterable[np.ndarray], piece: int | None
) -> Iterator[Tensor]:
    """Features of every block, pushed ``piece`` samples at a time, then the flush."""
    for block in blocks:
        size = piece or max(1, block.shape[0])
        for first in range(0, block.shape[0], size):
            feats = stream.push(torch.from_numpy(np.ascontiguousarray(block[first : first + size])))
            if feats.numel() > 0:
                yield feats
    last = stream.flush()
    if last.numel() > 0:
        yield last


# --- the reader -------------------------------------------------------------------


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


def _index_rows(index: Path) -> list[dict[str, str]]:
    """Rows of ``index.csv``, each with a ``path`` and a ``features`` entry."""
    try:
        with open(index, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (UnicodeDecodeError, csv.Error) as err:
        raise DataError(str(index), f"not a readable CSV index ({err})") from None
    for number, row in enumerate(rows, start=2):
        if not (row.get("path") and row.get("features")):
            raise DataError(str(index), f"line {number}: needs the columns path and features")
    return rows


def _extract_meta(path: Path) -> dict[str, Any]:
    """``extract.json`` (empty when absent); a damaged one is refused, naming it."""
    if not path.is_file():
        return {}
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as err:
        raise DataError(str(path), f"not readable JSON ({err})") from None
    if not isinstance(meta, dict):
        raise DataError(str(path), "expected a JSON object")
    for key in ("step_seconds", "downsampling", "receptive_field"):
        value = meta.get(key)
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if value is not None and not (ok and math.isfinite(value) and value > 0):
            raise DataError(str(path), f"{key} must be a positive number, got {value!r}")
    return meta


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
        for row in _index_rows(index):
            array_path = root / row["features"]
            if not array_path.is_file():
                raise DataError(str(array_path), "listed in index.csv but missing")
            features[row["path"]] = _load_array(array_path)
        meta = _extract_meta(root / "extract.json")
    else:
        for path in sorted([*root.glob("*.npy"), *root.glob("*.pt")]):
            features[path.stem] = _load_array(path)
    if not features:
        raise DataError(str(root), "no features: expected index.csv or *.npy / *.pt files")
    dims = {a.shape[1] for a in features.values()}
    if len(dims) != 1:
        raise DataError(str(root), f"feature files disagree on the dimension: {sorted(dims)}")
    return FeatureFolder(root, features, meta)
