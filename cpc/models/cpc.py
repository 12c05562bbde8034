"""The CPC model: encoder -> context -> predictor, scored by the prediction core."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from cpc.losses.infonce import InfoNCE
from cpc.models.context import RecurrentContext
from cpc.models.protocols import Context, Encoder


@dataclass
class CPCOutput:
    """What :meth:`CPCModel.forward` returns.

    Shape:
        loss: (); loss_per_offset, accuracy: (k,) per prediction offset;
        z: (b, s, p, d) latents; c: (b, s, p, h) context; lengths: (b,) steps or None.
    """

    loss: Tensor
    loss_per_offset: Tensor
    accuracy: Tensor
    z: Tensor
    c: Tensor
    lengths: Tensor | None


class CPCModel(nn.Module):
    """Contrastive Predictive Coding from built parts.

    The model knows no config and no file: saving and loading live in
    :mod:`cpc.checkpoints` (``cpc.load``, ``cpc.save_pretrained``, ``cpc.from_pretrained``),
    streaming extraction in :mod:`cpc.features.streaming`.

    Args:
        encoder: input -> latents ``z`` (b, s, p, d) plus lengths in steps.
        context: ``z`` -> ``c`` (b, s, p, h), causal along ``s``.
        predictor: ``c`` -> (b, s, p, k, d) guesses of ``z[:, i + k]``.
        loss: the prediction core (:class:`cpc.losses.InfoNCE`); its offsets must match
            the predictor's.

    """

    encoder: Encoder
    context: Context

    def __init__(
        self, encoder: Encoder, context: Context, predictor: nn.Module, loss: InfoNCE
    ) -> None:
        super().__init__()
        predicted = getattr(predictor, "num_offsets", loss.num_offsets)
        if predicted != loss.num_offsets:
            raise ValueError(
                f"predictor predicts {predicted} offsets, loss scores {loss.num_offsets}"
            )
        self.encoder = encoder
        self.context = context
        self.predictor = predictor
        self.loss = loss
        #: The record of what the model was built from and trained on, as a Hub folder's
        #: ``config.json`` holds it (:func:`cpc.checkpoints.loading.hub_config`); None for a
        #: bare builder call. Whoever builds the model from a config fills it in.
        self.hub_config: dict[str, Any] | None = None

    @property
    def offsets(self) -> list[int]:
        """Prediction offsets ``k`` scored by the loss."""
        return self.loss.offsets

    @property
    def downsampling(self) -> int:
        """Input samples (or pixel rows) per latent step."""
        return self.encoder.downsampling

    @property
    def receptive_field(self) -> int:
        """Input samples (pixel rows) the first latent needs."""
        return self.encoder.receptive_field

    @property
    def min_input_length(self) -> int:
        """Shortest input giving one loss term: receptive field plus ``k_min`` steps."""
        return self.receptive_field + self.loss.k_min * self.downsampling

    def forward(
        self,
        x: Tensor,
        lengths: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> CPCOutput:
        """Encode, summarise, predict and score.

        Args:
            x: a batch in the encoder's input layout ((b, t) audio, (b, t, c) signals,
                (b, c, h, w) images), right-padded.
            lengths: (b,) valid input samples, or None when nothing is padded.
            generator: random generator for the loss's negative draws (None: torch's
                global one); the trainer seeds one per step so a resumed or
                distributed run draws the same negatives.

        """
        z, steps = self.encoder(x, lengths)
        c = self.context(z, steps)
        out = self.loss(self.predictor(c), z, steps, generator=generator)
        return CPCOutput(out.loss, out.loss_per_offset, out.accuracy, z, c, steps)

    def context_layer(self, layer: str) -> int | None:
        """Check a feature layer name; the recurrent layer it names (1-based) or None.

        ``"encoder"`` (``z``), ``"context"`` (``c``) or ``"context.N"``: the output of
        the ``N``-th layer of a multi-layer GRU/LSTM context (``context.1`` the first;
        ``context.L`` of an ``L``-layer context equals ``context``).
        """
        if layer in ("context", "encoder"):
            return None
        part, _, index = layer.partition(".")
        if part != "context" or not index.isdigit():
            raise ValueError(f"layer must be 'encoder', 'context' or 'context.N', got {layer!r}")
        if not isinstance(self.context, RecurrentContext):
            raise ValueError(
                f"layer {layer!r}: only a GRU/LSTM context exposes its layers "
                f"(this one is {type(self.context).__name__}); use 'context'"
            )
        layers = self.context.num_layers
        if not 1 <= int(index) <= layers:
            raise ValueError(f"layer {layer!r}: the context has layers 1..{layers}")
        return int(index)

    def features(
        self,
        x: Tensor,
        lengths: Tensor | None = None,
        layer: str = "context",
    ) -> tuple[Tensor, Tensor | None]:
        """Frozen features for downstream use.

        ``layer``: ``"encoder"``, ``"context"`` or ``"context.N"`` (see
        :meth:`context_layer`). Returns ``(features (b, s, p, d), lengths (b,) in steps
        or None)``; steps at or past a sequence's length are padding and must be ignored.
        """
        index = self.context_layer(layer)
        z, steps = self.encoder(x, lengths)
        if layer == "encoder":
            return z, steps
        if index is not None:
            assert isinstance(self.context, RecurrentContext)  # checked by context_layer
            return self.context.forward_layers(z, index)[0], steps
        return self.context(z, steps), steps
