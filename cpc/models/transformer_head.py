"""A causal Transformer prediction head: one attention layer over the context, then ``W_k``.

CPC_audio's ``rnnMode=transformer`` (Rivière et al. 2020, the Libri-light CPC baseline)
replaces each offset's linear predictor with a one-layer causal Transformer. Here one
layer is shared by all offsets and followed by the usual per-offset maps
(:class:`~cpc.models.predictor.Predictor`), which costs one layer instead of ``k`` and
keeps the offsets' guesses in one matrix product. The head only shapes the training
objective: features (:meth:`cpc.models.cpc.CPCModel.features`) still come from the
context network, so extraction does not change.

The layer is pre-norm and residual (its output is the context plus a correction) with a
causal mask, so the guess made at step ``i`` uses ``c[:, :i + 1]`` only, and the model
stays causal end to end. Positions are sinusoidal from the start of the window.
"""

from __future__ import annotations

from typing import Literal

from einops import rearrange
from torch import Tensor, nn

from cpc.models.context import sinusoid
from cpc.models.predictor import Predictor


class TransformerHead(nn.Module):
    """One causal Transformer layer over the context, then one map per offset.

    Args:
        context_dim: ``h``, the context's width (also the layer's width).
        latent_dim: ``d``, the latents' width.
        num_offsets: ``k``, the number of offsets predicted.
        heads: attention heads (``context_dim`` must be a multiple).
        maps: the per-offset maps, ``"linear"`` (the paper's ``W_k``) or ``"mlp"``.
        dropout: dropout inside the layer (CPC_audio: none).

    Shape:
        c: (b, s, p, h) -> (b, s, p, k, d)

    """

    def __init__(
        self,
        context_dim: int,
        latent_dim: int,
        num_offsets: int,
        heads: int = 4,
        maps: Literal["linear", "mlp"] = "linear",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if context_dim % heads:
            raise ValueError(f"context_dim {context_dim} is not a multiple of heads {heads}")
        self.layer = nn.TransformerEncoderLayer(
            context_dim, heads, 4 * context_dim, dropout, batch_first=True, norm_first=True
        )
        self.predictor = Predictor(context_dim, latent_dim, num_offsets, maps)
        self.num_offsets = num_offsets
        self.latent_dim = latent_dim

    def forward(self, c: Tensor) -> Tensor:
        b, s, p, h = c.shape
        seqs = rearrange(c, "b s p h -> (b p) s h")
        seqs = seqs + sinusoid(s, h, seqs.device, seqs.dtype)
        mask = nn.Transformer.generate_square_subsequent_mask(
            s, device=seqs.device, dtype=seqs.dtype
        )
        seqs = self.layer(seqs, src_mask=mask, is_causal=True)
        return self.predictor(rearrange(seqs, "(b p) s h -> b s p h", b=b, p=p))
