"""Predictors: context ``c`` -> one guess of ``z[:, i + k]`` per offset ``k``."""

from __future__ import annotations

from typing import Literal

import torch
from einops import rearrange
from torch import Tensor, nn


class Predictor(nn.Module):
    """One linear map (the CPC paper's ``W_k``) or small MLP per offset.

    The ``k`` linear maps are stored as one ``Linear(h, k * d)`` so all offsets are
    predicted with a single matrix product. The MLP option (hidden width ``hidden``,
    one hidden layer per offset) evaluates its per-offset second layers with one
    batched product as well.

    The maps that produce the guesses start at zero (the MLP's second layer; its first
    is random), so at step 0 every candidate scores the same and the loss is exactly
    ``log(1 + n)``. With random maps the initial scores are noise above chance, and the
    quickest way to lower that noise is to make all latents alike: a layer-norm encoder
    can (batch norm cannot), and did, collapsing its latents to one vector within ten
    Adam steps and sitting at chance for hundreds (``results/layernorm/``). From zero,
    the first gradient goes to the maps, towards what actually predicts.

    Shape:
        c: (b, s, p, h) -> (b, s, p, k, d)
    """

    def __init__(
        self,
        context_dim: int,
        latent_dim: int,
        num_offsets: int,
        kind: Literal["linear", "mlp"] = "linear",
        hidden: int | None = None,
    ) -> None:
        super().__init__()
        if kind not in ("linear", "mlp"):
            raise ValueError(f"predictor kind must be 'linear' or 'mlp', got {kind!r}")
        self.kind = kind
        self.num_offsets = num_offsets
        self.latent_dim = latent_dim
        if kind == "linear":
            self.first = nn.Linear(context_dim, num_offsets * latent_dim)
            nn.init.zeros_(self.first.weight)
            nn.init.zeros_(self.first.bias)
        else:
            hidden = hidden or context_dim
            self.first = nn.Linear(context_dim, num_offsets * hidden)
            self.second = nn.Parameter(torch.empty(num_offsets, hidden, latent_dim))
            self.second_bias = nn.Parameter(torch.zeros(num_offsets, latent_dim))
            nn.init.zeros_(self.second)

    def forward(self, c: Tensor) -> Tensor:
        h = rearrange(self.first(c), "b s p (k e) -> b s p k e", k=self.num_offsets)
        if self.kind == "linear":
            return h
        # key: k offsets, e hidden, d latent
        return torch.einsum("bspke,ked->bspkd", torch.relu(h), self.second) + self.second_bias
