"""Feature extraction from trained models, in chunks for long recordings.

Files that a data set can deliver as blocks (audio: :class:`cpc.data.blocks.AudioBlocks`)
are read, encoded and written block by block (:mod:`cpc.features.folder`): memory does
not grow with the recording. Other items are read whole and encoded in chunks.

A latent ``j`` of a 1-D encoder sees input samples ``[j * D, j * D + R)`` (``D`` the
downsampling, ``R`` the receptive field; the convolutions are unpadded). So a recording
can be encoded chunk by chunk, each chunk starting at a multiple of ``D`` and overlapping
the previous one by ``R - D`` samples, and the latents concatenate to exactly the
whole-file latents. A recurrent context then continues over the chunks with its carried
state; other contexts run once over the (small) concatenated latents. Either way the
result equals the features of the whole file at once, with memory bounded by the chunk.

Image-grid models write one grid of features per image and a pooled row
(:func:`write_grid_features`). Extraction never substitutes one item for another: an
item that fails is reported and has no row, and the count printed is the rows written.
``index.csv`` is written last and renamed into place whole, so a folder with an index
is complete; ``cpc extract`` runs inside :func:`cpc.checkpoints.outputs.output_folder`
(one writer per folder; a failed run, a full disk included, leaves nothing of itself).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from cpc.checkpoints.outputs import atomic_file
from cpc.data.recipe import DataInfo, FileItems, StreamedItems
from cpc.errors import ConfigError, DataError
from cpc.features.folder import can_stream, check_finite_features, write_features
from cpc.features.streaming import stream_sequence
from cpc.models.cpc import CPCModel

#: "encoder", "context" or "context.N" (see :meth:`CPCModel.context_layer`).
Layer = str


def _geometry(model: CPCModel) -> tuple[int, int]:
    return model.downsampling, model.receptive_field


def extract_sequence(
    model: CPCModel,
    x: Tensor,
    layer: Layer = "context",
    chunk_steps: int | None = 1000,
    stream_samples: int | None = None,
) -> Tensor:
    """Features of one whole sequence, computed in chunks of ``chunk_steps`` latents.

    ``stream_samples``: instead, push the input through :class:`cpc.features.streaming.Streamer`
    in pieces of that many samples, as live input would arrive (same features).

    Args:
        model: a trained sequence model (audio or signals), in eval mode.
        x: one waveform (t,) or signal (t, c), unpadded.
        layer: ``"context"``, ``"context.N"`` (a layer of a GRU/LSTM) or ``"encoder"``.
        chunk_steps: latents per chunk (1000 = 10 s of 16 kHz speech); None: no chunks.

    Shape:
        returns: (s, d) with ``s = (t - R) // D + 1``.

    """
    with torch.no_grad():  # not a decorator: mutmut leaves decorated functions alone
        downsampling, field = _geometry(model)
        t = x.shape[0]
        if t < field:
            raise ValueError(
                f"a sequence of {t} samples is shorter than the model's receptive field ({field})"
            )
        index = model.context_layer(layer)  # checks the name
        if stream_samples is not None:
            return stream_sequence(model, x, layer, stream_samples)
        if chunk_steps is None:  # whole file: also right for padded (CPC_audio) encoders
            feats, _ = model.features(x[None], layer=layer)
            return feats[0, :, 0]
        chunk = max(1, chunk_steps)
        if index is not None or model.encoder.left_padding > 0:
            # Padded layers and intermediate context layers: the streamer, which pads each
            # layer at both ends of the file and carries every layer's state.
            recurrent = model.context.supports_chunks
            part = layer if recurrent or layer == "encoder" else "encoder"
            feats = stream_sequence(model, x, part, chunk * downsampling)
            return feats if part == layer else model.context(feats[None, :, None])[0, :, 0]
        steps = (t - field) // downsampling + 1
        parts: list[Tensor] = []
        state: Any = None
        context = model.context
        recurrent = context.supports_chunks
        for first in range(0, steps, chunk):
            last = min(first + chunk, steps)  # latents [first, last)
            piece = x[first * downsampling : (last - 1) * downsampling + field][None]
            z, _ = model.encoder(piece)  # (1, last - first, 1, d)
            if layer == "context" and recurrent:
                c, state = context.forward_chunk(z, state)
                parts.append(c[0, :, 0])
            else:
                parts.append(z[0, :, 0])
        feats = torch.cat(parts)
        if layer == "context" and not recurrent:
            feats = model.context(feats[None, :, None])[0, :, 0]
        return feats


def _rows(
    dataset: FileItems, compute: Callable[[dict[str, Any], int], tuple[Any, ...]]
) -> list[Any]:
    """``compute(item, n)`` for every item that loads; a failing one is reported, no row.

    Extraction never substitutes one file for another: the row count equals the files
    whose features were written.
    """
    rows = []
    for n in range(len(dataset)):
        try:
            item = dataset[n]
        except DataError as err:
            dataset.report.skip(err.path, err.reason)
            continue
        rows.append(compute(item, n))
    return rows


def _streamed_rows(
    model: CPCModel,
    dataset: StreamedItems,
    out: Path,
    layer: Layer,
    chunk_steps: int | None,
) -> list[Any]:
    """Rows of files read block by block and written chunk by chunk (bounded memory).

    A file failing half-way (a NaN at 40 minutes, a truncated file) is reported and its
    partial features are removed: no row, as for a file failing at once.
    """
    rows = []
    for n, path in enumerate(dataset.paths):
        name = f"{n:06d}_{Path(path).stem}.npy"
        try:
            blocks = dataset.stream(n)
            steps, dim = write_features(
                model, blocks, blocks.length, out / name, layer, chunk_steps
            )
        except DataError as err:  # non-finite features name the .npy: report the input
            dataset.report.skip(path if err.path == str(out / name) else err.path, err.reason)
            continue
        rows.append((path, name, steps, dim))
    return rows


def _write_index(out: Path, header: list[str], rows: list[Any], meta: dict[str, Any]) -> Path:
    """``extract.json``, then ``index.csv``, each renamed into place whole: an index
    exists only once every array it lists and the facts are written.
    """
    with atomic_file(out / "extract.json") as tmp:
        tmp.write_text(json.dumps({**meta, "files": len(rows)}, indent=2))
    with atomic_file(out / "index.csv") as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return out / "index.csv"


def extract_dataset(
    model: CPCModel,
    dataset: FileItems,
    out_dir: str | Path,
    layer: Layer = "context",
    chunk_steps: int | None = 1000,
    step_seconds: float | None = None,
    stream_samples: int | None = None,
) -> Path:
    """Write one ``.npy`` of features (s, d) per item and an ``index.csv`` beside them.

    Items are those of a whole-file data set (``x``, ``path``). The index lists
    ``path, features, steps, dim`` per file; ``extract.json`` records the layer, the
    downsampling and the step duration so frames can be mapped back to time. A file
    that fails to decode is reported in ``dataset.report`` and has no row.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    device = next(model.parameters()).device

    def compute(item: dict[str, Any], n: int) -> tuple[Any, ...]:
        x = item["x"].to(device)
        feats = extract_sequence(model, x, layer, chunk_steps, stream_samples)
        check_finite_features(feats, str(item["path"]))
        name = f"{n:06d}_{Path(item['path']).stem}.npy"
        np.save(out / name, feats.float().cpu().numpy())
        return (item["path"], name, feats.shape[0], feats.shape[1])

    if isinstance(dataset, StreamedItems) and can_stream(model):
        if stream_samples is not None:  # pieces as live input would come: same features
            chunk_steps = max(1, stream_samples // model.downsampling)
        rows = _streamed_rows(model, dataset, out, layer, chunk_steps)
    else:
        rows = _rows(dataset, compute)
    downsampling, field = _geometry(model)
    left = model.encoder.left_padding
    meta = {
        "layer": layer,
        "downsampling": downsampling,
        "receptive_field": field,
        "left_padding": left,
        "step_seconds": step_seconds,
        "frame_rule": "feature j covers input samples [j*downsampling - left_padding, "
        "j*downsampling - left_padding + receptive_field) (outside the file: zeros)",
    }
    return _write_index(out, ["path", "features", "steps", "dim"], rows, meta)


class _GridArray:
    """Grids written into one ``grids.npy`` (n, rows, cols, d) through a memory map.

    Memory stays one grid whatever the number of images. Rows are written in index
    order; when images failed (fewer rows than items), the array is cut to the rows
    written, copied in blocks.
    """

    def __init__(self, out: Path, capacity: int) -> None:
        self.out, self.capacity, self.count = out, capacity, 0
        self.array: np.memmap | None = None

    def add(self, grid: np.ndarray) -> str:
        if self.array is None:
            shape = (self.capacity, *grid.shape)
            self.array = np.lib.format.open_memmap(
                self.out / ".grids.partial.npy", mode="w+", dtype=np.float32, shape=shape
            )
        self.array[self.count] = grid
        self.count += 1
        return f"grids.npy#{self.count - 1}"

    def close(self) -> None:
        if self.array is None:
            np.save(self.out / "grids.npy", np.zeros((0,), np.float32))
            return
        partial, final = self.out / ".grids.partial.npy", self.out / "grids.npy"
        self.array.flush()
        if self.count < self.capacity:
            shape = (self.count, *self.array.shape[1:])
            cut = np.lib.format.open_memmap(final, mode="w+", dtype=np.float32, shape=shape)
            for start in range(0, self.count, 256):
                stop = min(start + 256, self.count)
                cut[start:stop] = self.array[start:stop]
            cut.flush()
            del cut
            partial.unlink()
        else:
            partial.replace(final)
        self.array = None


def write_grid_features(
    model: CPCModel,
    dataset: FileItems,
    out_dir: str | Path,
    layer: Layer = "context",
    single_array: bool = False,
) -> Path:
    """Per image: grid features (rows, cols, d) and a pooled row.

    Grids go to one ``.npy`` per image, or with ``single_array`` into one
    ``grids.npy`` (n, rows, cols, d) for large sets (the index's ``features`` then
    reads ``grids.npy#k``). ``pooled.npy`` holds one row per indexed image (the mean
    over the grid), in index order, for linear probes; ``index.csv`` lists ``path,
    features, rows, cols, dim``. An image that fails to load is reported in
    ``dataset.report`` and has no row.

    Shape:
        item ``"x"``: (c, h, w); grid: (rows, cols, d); ``pooled.npy``: (n, d).
    """
    with torch.no_grad():  # not a decorator: mutmut leaves decorated functions alone
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        device = next(model.parameters()).device
        pooled: list[np.ndarray] = []
        grids = _GridArray(out, len(dataset)) if single_array else None

        def compute(item: dict[str, Any], n: int) -> tuple[Any, ...]:
            feats, _ = model.features(item["x"][None].to(device), layer=layer)  # (1, r, q, d)
            check_finite_features(feats, str(item["path"]))
            grid = feats[0].float().cpu().numpy()
            if grids is not None:
                name = grids.add(grid)
            else:
                name = f"{n:06d}_{Path(str(item['path']).split('#')[0]).stem}.npy"
                np.save(out / name, grid)
            pooled.append(grid.mean(axis=(0, 1)))
            return (item["path"], name, *grid.shape)

        rows = _rows(dataset, compute)
        if grids is not None:
            grids.close()
        np.save(out / "pooled.npy", np.stack(pooled) if pooled else np.zeros((0, 0), np.float32))
        meta = {"layer": layer, "pooled": "pooled.npy: mean over the grid, one row per index row"}
        return _write_index(out, ["path", "features", "rows", "cols", "dim"], rows, meta)


@dataclass(frozen=True)
class ExtractOptions:
    """How ``cpc extract`` runs: the layer, the chunk size and the checkpoint's data facts."""

    info: DataInfo
    layer: Layer = "context"
    chunk_steps: int | None = 1000
    single_array: bool = False
    """Images: all grids in one ``grids.npy`` instead of one file per image."""
    stream_samples: int | None = None
    """Sequences: push each file through the streaming extractor in pieces of this many
    samples instead of chunks (same features; :mod:`cpc.features.streaming`)."""

    def __post_init__(self) -> None:
        for name in ("chunk_steps", "stream_samples"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"{name} must be at least 1 (or None), got {value}")


def extract_items(
    model: CPCModel,
    dataset: FileItems,
    out: Path,
    options: ExtractOptions,
    layout: Literal["sequence", "grid"],
) -> Path:
    """Write the features of every item and an ``index.csv``; return the index.

    ``layout`` is the recipe's (:attr:`cpc.data.recipe.Recipe.layout`): ``sequence``
    writes one ``(steps, dim)`` array per file, computed in chunks or streamed
    (:func:`extract_dataset`); ``grid`` writes each image's grid and pooled rows
    (:func:`write_grid_features`). A file that fails is reported and has no row.
    """
    if layout == "grid":
        return write_grid_features(model, dataset, out, options.layer, options.single_array)
    seconds = options.info.seconds_per_sample
    step_seconds = None if seconds is None else model.downsampling * seconds
    return extract_dataset(
        model,
        dataset,
        out,
        options.layer,
        options.chunk_steps,
        step_seconds,
        stream_samples=options.stream_samples,
    )
