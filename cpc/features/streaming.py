"""Streaming feature extraction: input in arbitrary pieces, the offline features out.

``stream = Streamer(model, layer="context")``, then
``stream.push(samples)`` for each piece as it arrives (any length, not a multiple of the
downsampling) returns the features that piece completed, and ``stream.flush()`` at the
end returns the rest. Concatenated, they equal ``model.features`` of the whole input.

How: each strided layer of the encoder keeps the input it has not consumed yet (at most
``kernel - stride`` steps plus a partial stride). A layer emits an output as soon as its
window is complete, so a feature comes out with the piece that delivers the last sample
of its receptive field: the latency is the receptive field, nothing more. Padded layers
(CPC_audio) start with ``padding`` zeros and get ``padding`` more zeros at ``flush``, as
the offline convolution pads both ends of the whole input. The recurrent context
continues with its carried state, one state per layer for ``context.N``.

Shape:
    push(samples): (t,) waveform or (t, c) signal -> (n, d) new features.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from cpc.models.context import RecurrentContext, RecurrentState
from cpc.models.encoders import StreamStage

if TYPE_CHECKING:
    from cpc.models.cpc import CPCModel


class _StageBuffer:
    """One encoder stage and the input it has not consumed. Shape of ``pending``: (1, n, c)."""

    def __init__(self, stage: StreamStage) -> None:
        self.stage = stage
        self.pending: Tensor | None = None

    def feed(self, x: Tensor | None, final: bool) -> Tensor | None:
        """Append ``x`` (1, n, c); run every complete window; (1, m, d) or None."""
        if x is not None:
            if self.pending is None:  # the start of the stream: the left padding
                self.pending = x.new_zeros(1, self.stage.padding, x.shape[2])
            self.pending = torch.cat([self.pending, x], 1)
        if self.pending is None:
            return None
        if final and self.stage.padding:
            self.pending = F.pad(self.pending, (0, 0, 0, self.stage.padding))
        k, s = self.stage.kernel, self.stage.stride
        n = (self.pending.shape[1] - k) // s + 1 if self.pending.shape[1] >= k else 0
        if n == 0:
            return None
        out = self.stage.forward(self.pending[:, : (n - 1) * s + k])
        self.pending = self.pending[:, n * s :]
        return out


class Streamer:
    """Exact features of a stream fed in pieces (see the module docstring).

    Args:
        model: a sequence model (waveform or signal encoder) in eval mode.
        layer: ``"encoder"``, ``"context"`` or ``"context.N"``; the context must be a
            GRU/LSTM for the context layers (others need the whole past at once).

    Attributes:
        latency_samples: input samples the first feature needs; feature ``j`` comes out
            of the push that delivers sample ``latency_samples + j * downsampling - 1``
            (the receptive field, less the encoder's left padding).

    """

    def __init__(self, model: CPCModel, layer: str = "context") -> None:
        self.model = model
        self.layer = layer
        self.index = model.context_layer(layer)  # checks the name
        if layer != "encoder" and not isinstance(model.context, RecurrentContext):
            raise ValueError(
                f"streaming layer {layer!r} needs a GRU/LSTM context, not "
                f"{type(model.context).__name__}; stream layer='encoder' instead"
            )
        stages = getattr(model.encoder, "stream_stages", None)
        if stages is None:
            raise ValueError(f"{type(model.encoder).__name__} cannot be streamed")
        self._stages = stages()
        parameter = next(model.parameters())
        self._dtype, self._device = parameter.dtype, parameter.device
        self.latency_samples = model.receptive_field - model.encoder.left_padding
        self.reset()

    def reset(self) -> None:
        """Forget everything: the next push starts a new stream."""
        self._buffers = [_StageBuffer(stage) for stage in self._stages]
        self._state: RecurrentState | list[RecurrentState] | None = None
        self.samples_in = 0
        self.features_out = 0

    @torch.no_grad()
    def push(self, samples: Tensor) -> Tensor:
        """Features completed by ``samples`` ((t,) or (t, c)); shape (n, d), n may be 0."""
        x = torch.as_tensor(samples, dtype=self._dtype, device=self._device)
        x = x[None, :, None] if x.dim() == 1 else x[None]  # (1, t, c)
        self.samples_in += x.shape[1]
        return self._run(x, final=False)

    @torch.no_grad()
    def flush(self) -> Tensor:
        """The last features (the right padding of padded encoders); then a new stream."""
        out = self._run(None, final=True)
        self.reset()
        return out

    def _run(self, x: Tensor | None, final: bool) -> Tensor:
        h: Tensor | None = x
        for buffer in self._buffers:
            h = buffer.feed(h, final)
            if h is None and not final:
                break
        if h is None:
            return torch.empty(0, self.out_dim, dtype=self._dtype, device=self._device)
        z = h[:, :, None]  # (1, n, 1, d)
        feats = self._context(z) if self.layer != "encoder" else z
        self.features_out += feats.shape[1]
        return feats[0, :, 0]

    def _context(self, z: Tensor) -> Tensor:
        context = self.model.context
        assert isinstance(context, RecurrentContext)  # checked in __init__
        if self.index is None:
            c, self._state = context.forward_chunk(z, self._state)  # type: ignore[arg-type]
            return c
        c, states = context.forward_layers(z, self.index, self._state)  # type: ignore[arg-type]
        self._state = states
        return c

    @property
    def out_dim(self) -> int:
        """Feature size ``d``."""
        if self.layer == "encoder":
            return self.model.encoder.out_dim
        return self.model.context.out_dim


def stream_sequence(model: CPCModel, x: Tensor, layer: str, piece: int) -> Tensor:
    """Features of one sequence pushed ``piece`` samples at a time, then flushed. (s, d)."""
    stream = Streamer(model, layer)
    parts = [stream.push(x[start : start + piece]) for start in range(0, x.shape[0], piece)]
    return torch.cat([*parts, stream.flush()])
