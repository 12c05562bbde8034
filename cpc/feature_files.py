"""Features of a long recording written to a ``.npy`` as they are computed.

:func:`write_features` pushes blocks of samples (e.g. :class:`cpc.data.blocks.AudioBlocks`,
a file read in order and resampled block by block) through the exact streaming
extractor (:class:`cpc.streaming.Streamer`: each encoder layer keeps only the input it
has not consumed, the recurrent context carries its state) in pieces of ``chunk_steps``
latents, and writes the rows into a ``.npy`` created with its final shape
(``np.lib.format.open_memmap``; the shape follows from the input's length) through a
plain file at their offsets, so that no page of features stays mapped into the process.
Memory is that of a block and a piece, whatever the recording's length, and the result
equals the whole file's features. A context that needs the whole sequence (transformer,
causal convolution) runs once over the collected latents at the end: its memory grows
with the latents, ``(steps, d)`` floats.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from cpc.models.cpc import CPCModel
from cpc.streaming import Streamer


def can_stream(model: CPCModel) -> bool:
    """Whether the encoder can run on a growing input (``stream_stages``)."""
    try:
        Streamer(model, "encoder")
    except ValueError:
        return False
    return True


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
                f.seek(start + written * dim * 4)
                f.write(feats.float().cpu().numpy().tobytes())
                written = end
            if whole_context and latents:
                z = torch.cat(latents)[None, :, None]
                with torch.no_grad():
                    c = model.context(z)[0, :, 0]
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
