"""Feature extraction from trained models, in chunks for long recordings.

A latent ``j`` of a 1-D encoder sees input samples ``[j * D, j * D + R)`` (``D`` the
downsampling, ``R`` the receptive field; the convolutions are unpadded). So a recording
can be encoded chunk by chunk, each chunk starting at a multiple of ``D`` and overlapping
the previous one by ``R - D`` samples, and the latents concatenate to exactly the
whole-file latents. A recurrent context then continues over the chunks with its carried
state; other contexts run once over the (small) concatenated latents. Either way the
result equals the features of the whole file at once, with memory bounded by the chunk.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import torch
from torch import Tensor

from cpc.models.context import RecurrentContext
from cpc.models.cpc import CPCModel

Layer = Literal["context", "encoder"]


class FileItems(Protocol):
    """A data set of whole files: ``len()`` and items with ``x`` and ``path``."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> dict[str, Any]: ...


def _geometry(model: CPCModel) -> tuple[int, int]:
    enc = model.encoder
    field = getattr(enc, "receptive_field", None)
    if field is None:
        raise ValueError(f"{type(enc).__name__} has no receptive_field: cannot chunk its input")
    return int(enc.downsampling), int(field)  # type: ignore[arg-type]


@torch.no_grad()
def extract_sequence(
    model: CPCModel,
    x: Tensor,
    layer: Layer = "context",
    chunk_steps: int | None = 1000,
) -> Tensor:
    """Features of one whole sequence, computed in chunks of ``chunk_steps`` latents.

    Args:
        model: a trained sequence model (audio or signals), in eval mode.
        x: one waveform (t,) or signal (t, c), unpadded.
        layer: ``"context"`` or ``"encoder"`` features.
        chunk_steps: latents per chunk (1000 = 10 s of 16 kHz speech); None: no chunks.

    Shape:
        returns: (s, d) with ``s = (t - R) // D + 1``.

    """
    downsampling, field = _geometry(model)
    t = x.shape[0]
    if t < field:
        raise ValueError(
            f"a sequence of {t} samples is shorter than the model's receptive field ({field})"
        )
    steps = (t - field) // downsampling + 1
    chunk = steps if chunk_steps is None else max(1, chunk_steps)
    parts: list[Tensor] = []
    state: Any = None
    context = model.context
    recurrent = isinstance(context, RecurrentContext)
    for first in range(0, steps, chunk):
        last = min(first + chunk, steps)  # latents [first, last)
        piece = x[first * downsampling : (last - 1) * downsampling + field][None]
        z, _ = model.encoder(piece)  # (1, last - first, 1, d)
        if layer == "context" and isinstance(context, RecurrentContext):
            c, state = context.forward_chunk(z, state)
            parts.append(c[0, :, 0])
        else:
            parts.append(z[0, :, 0])
    feats = torch.cat(parts)
    if layer == "context" and not recurrent:
        feats = model.context(feats[None, :, None])[0, :, 0]
    return feats


def extract_dataset(
    model: CPCModel,
    dataset: FileItems,
    out_dir: str | Path,
    layer: Layer = "context",
    chunk_steps: int | None = 1000,
    step_seconds: float | None = None,
) -> Path:
    """Write one ``.npy`` of features (s, d) per item and an ``index.csv`` beside them.

    Items are the dicts of :class:`cpc.data.audio.AudioFileDataset` or
    :class:`cpc.data.signals.SignalFileDataset` (``x``, ``path``). The index lists
    ``path, features, steps, dim`` per file; ``extract.json`` records the layer, the
    downsampling and the step duration so frames can be mapped back to time.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    device = next(model.parameters()).device
    rows = []
    for n in range(len(dataset)):
        item = dataset[n]
        feats = extract_sequence(model, item["x"].to(device), layer, chunk_steps)
        name = f"{n:06d}_{Path(item['path']).stem}.npy"
        np.save(out / name, feats.float().cpu().numpy())
        rows.append((item["path"], name, feats.shape[0], feats.shape[1]))
    with open(out / "index.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "features", "steps", "dim"])
        writer.writerows(rows)
    downsampling, field = _geometry(model)
    meta = {
        "layer": layer,
        "downsampling": downsampling,
        "receptive_field": field,
        "step_seconds": step_seconds,
        "files": len(rows),
        "frame_rule": "feature j covers input samples [j*downsampling, j*downsampling + "
        "receptive_field)",
    }
    (out / "extract.json").write_text(json.dumps(meta, indent=2))
    return out / "index.csv"
