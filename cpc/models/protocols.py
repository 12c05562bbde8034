"""What the rest of the package may ask of an encoder and of a context network.

Every encoder and context in :mod:`cpc.models` satisfies these protocols; callers
(the model, the trainer's minimum length, chunked extraction) use the attributes
below instead of probing objects with ``getattr`` or ``isinstance``, and the type
checker holds the line.
"""

from __future__ import annotations

from typing import Any, Protocol

from torch import Tensor


class Encoder(Protocol):
    """Input -> latents ``z`` of shape ``(b, s, p, d)``.

    Attributes:
        out_dim: ``d``.
        downsampling: Input samples (or pixel rows) per step along ``s``.
        receptive_field: Input samples (pixel rows) the first step sees; the shortest
            input giving one step (padded encoders need fewer). Step ``j`` sees
            ``[j * downsampling - left_padding, ... + receptive_field)``.
        left_padding: Zeros before the first input sample that step 0 sees: 0 unless
            the encoder pads its convolutions (CPC_audio's layout).

    """

    out_dim: int
    downsampling: int
    receptive_field: int
    left_padding: int

    def output_lengths(self, lengths: Tensor) -> Tensor:
        """Valid steps for ``lengths`` valid input samples (or pixel rows)."""
        ...

    def __call__(self, x: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """Input -> (z (b, s, p, d), lengths (b,) in steps or None)."""
        ...


class Context(Protocol):
    """Latents ``z (b, s, p, d)`` -> context ``c (b, s, p, out_dim)``, causal along ``s``.

    Attributes:
        out_dim: The context width.
        supports_chunks: Whether :meth:`forward_chunk` can continue a sequence from a
            carried state (recurrent contexts), so extraction runs in bounded memory.

    """

    out_dim: int
    supports_chunks: bool

    def __call__(self, z: Tensor, lengths: Tensor | None = None) -> Tensor:
        """The context of every step."""
        ...

    def forward_chunk(self, z: Tensor, state: Any = None) -> tuple[Tensor, Any]:
        """The context of a chunk continuing from ``state``, and the state after it."""
        ...
