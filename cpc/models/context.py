"""Context networks: latents ``z`` (b, s, p, d) -> context ``c`` (b, s, p, h), causal along s.

``c[:, i]`` depends on ``z[:, :i + 1]`` only. Sequence contexts treat each of the ``p``
positions as its own sequence; the grid context (:class:`MaskedConvContext`) mixes
positions, seeing every column of the rows at and above ``i``. Because every context is
causal and padding sits at the end of a sequence, padded steps never change a valid
step's context, so no packing is needed.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

RecurrentState = Tensor | tuple[Tensor, Tensor]

#: A CPU recurrence whose state holds fewer values than this runs on one thread (ATen's
#: own grain size for splitting element-wise work).
SERIAL_STATE_VALUES = 32768


@contextmanager
def _one_thread_if(small: bool) -> Iterator[None]:
    """Run the block on one intra-op thread when ``small``, then restore the count.

    A recurrence does a few tiny operations per step; torch still splits some of them
    (``tanh`` on 256 values) across threads, and waking a thread costs more than the
    work: with 2 threads a GRU of 256 over one recording ran at half the speed of one
    thread (``benchmarks/``).
    """
    threads = torch.get_num_threads()
    if not small or threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class WholeSequenceContext(nn.Module):
    """Base of the contexts that need the whole sequence at once (no carried state)."""

    supports_chunks = False

    def forward_chunk(self, z: Tensor, state: Any = None) -> tuple[Tensor, Any]:
        """Not available: this context sees the whole sequence (``supports_chunks``)."""
        raise NotImplementedError(f"{type(self).__name__} cannot continue from a state")


class RecurrentContext(nn.Module):
    """GRU (the CPC paper's, 256 units) or LSTM (CPC_audio's) context.

    Runs on chunks with a carried state (:meth:`forward_chunk`), so a long recording can
    be processed piece by piece with the same result as in one go.

    Shape:
        z: (b, s, p, d) -> c (b, s, p, hidden)
    """

    def __init__(
        self,
        in_dim: int,
        hidden: int = 256,
        kind: Literal["gru", "lstm"] = "gru",
        num_layers: int = 1,
    ) -> None:
        super().__init__()
        if kind not in ("gru", "lstm"):
            raise ValueError(f"kind must be 'gru' or 'lstm', got {kind!r}")
        rnn = nn.GRU if kind == "gru" else nn.LSTM
        self.rnn = rnn(in_dim, hidden, num_layers=num_layers, batch_first=True)
        self.out_dim = hidden
        self.supports_chunks = True
        self.num_layers = num_layers

    def forward(self, z: Tensor, lengths: Tensor | None = None) -> Tensor:
        return self.forward_chunk(z)[0]

    def forward_chunk(
        self, z: Tensor, state: RecurrentState | None = None
    ) -> tuple[Tensor, RecurrentState]:
        """Continue from ``state`` (None: the start of a sequence).

        Returns the context of this chunk and the state after its last step.
        """
        b, _, p, _ = z.shape
        seqs = rearrange(z, "b s p d -> (b p) s d")
        # The recurrence runs in its weights' dtype, outside autocast: under bf16
        # autocast torch would cast the weights again at every step, which made
        # extraction 10x slower than float32 on CPU. It is a few percent of the FLOPs.
        small = z.device.type == "cpu" and seqs.shape[0] * self.out_dim < SERIAL_STATE_VALUES
        with torch.autocast(z.device.type, enabled=False), _one_thread_if(small):
            out, state = self.rnn(seqs.to(next(self.rnn.parameters()).dtype), state)
        return rearrange(out, "(b p) s h -> b s p h", b=b, p=p), state

    def forward_layers(
        self, z: Tensor, upto: int, state: list[RecurrentState] | None = None
    ) -> tuple[Tensor, list[RecurrentState]]:
        """The output of recurrent layer ``upto`` (1-based), continuing from ``state``.

        Spoken-language-model pipelines read an intermediate layer of a multi-layer
        LSTM; ``upto == num_layers`` is the context itself. The layers run one at a
        time with the stacked module's weights (the same kernels, so the last layer
        equals :meth:`forward`). ``state`` holds one state per layer run (None: start).

        Shape:
            z: (b, s, p, d) -> (b, s, p, hidden)
        """
        if not 1 <= upto <= self.num_layers:
            raise ValueError(f"layer {upto} of a {self.num_layers}-layer context does not exist")
        b, _, p, _ = z.shape
        h = rearrange(z, "b s p d -> (b p) s d")
        small = z.device.type == "cpu" and h.shape[0] * self.out_dim < SERIAL_STATE_VALUES
        states: list[Any] = list(state) if state is not None else [None] * upto
        with torch.autocast(z.device.type, enabled=False), _one_thread_if(small):
            h = h.to(next(self.rnn.parameters()).dtype)
            for i in range(upto):
                h, states[i] = self._layer(i)(h, states[i])
        return rearrange(h, "(b p) s h -> b s p h", b=b, p=p), states

    def _layer(self, i: int) -> nn.GRU | nn.LSTM:
        """A one-layer GRU/LSTM sharing layer ``i``'s parameters (not a submodule)."""
        with torch.device("meta"):  # its own parameters are replaced at once
            one = type(self.rnn)(self.rnn.input_size if i == 0 else self.out_dim, self.out_dim)
        one.batch_first = True
        for name, value in self.rnn.named_parameters():  # weight_ih_l3 -> layer 3
            base, index = name.rsplit("_l", 1)
            if int(index) == i:
                setattr(one, f"{base}_l0", value)
        return one


def sinusoid(s: int, dim: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """Sinusoidal position table (Vaswani et al. 2017). Shape: (s, dim)."""
    pos = torch.arange(s, device=device, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, device=device) * (-math.log(10000.0) / dim))
    table = torch.zeros(s, dim, device=device)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq[: dim // 2])
    return table.to(dtype)


class TransformerContext(WholeSequenceContext):
    """Causal Transformer encoder (pre-norm) with sinusoidal positions.

    Positions are absolute from the start of the input, so unlike the recurrent context
    it is not run on chunks with carried state. Defaults: 256 wide (as the paper's GRU),
    2 layers of 4 heads, feed-forward 4 x ``dim`` (Vaswani et al. 2017), no dropout.

    Shape:
        z: (b, s, p, d) -> c (b, s, p, dim)
    """

    def __init__(
        self, in_dim: int, dim: int = 256, num_layers: int = 2, heads: int = 4, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.proj = nn.Linear(in_dim, dim)
        layer = nn.TransformerEncoderLayer(
            dim, heads, 4 * dim, dropout, batch_first=True, norm_first=True
        )
        self.layers = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.out_dim = dim

    def forward(self, z: Tensor, lengths: Tensor | None = None) -> Tensor:
        b, s, p, _ = z.shape
        h = self.proj(rearrange(z, "b s p d -> (b p) s d"))
        h = h + sinusoid(s, h.shape[-1], h.device, h.dtype)
        mask = nn.Transformer.generate_square_subsequent_mask(s, device=h.device, dtype=h.dtype)
        h = self.norm(self.layers(h, mask=mask, is_causal=True))
        return rearrange(h, "(b p) s h -> b s p h", b=b, p=p)


class CausalConvContext(WholeSequenceContext):
    """Stack of residual causal dilated convolutions (WaveNet / TCN style).

    Each block left-pads by ``(kernel - 1) * dilation``; with the default dilations
    1, 2, 4, 8 and kernel 3 the context at step ``t`` sees the 31 steps ``t - 30 .. t``
    (``receptive_field``). Default width 256.

    Shape:
        z: (b, s, p, d) -> c (b, s, p, dim)
    """

    def __init__(
        self,
        in_dim: int,
        dim: int = 256,
        kernel: int = 3,
        dilations: tuple[int, ...] = (1, 2, 4, 8),
    ) -> None:
        super().__init__()
        self.proj = nn.Linear(in_dim, dim)
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in dilations)
        self.convs = nn.ModuleList(nn.Conv1d(dim, dim, kernel, dilation=d) for d in dilations)
        self.pads = [(kernel - 1) * d for d in dilations]
        self.out_dim = dim
        self.receptive_field = 1 + sum(self.pads)

    def forward(self, z: Tensor, lengths: Tensor | None = None) -> Tensor:
        b, _, p, _ = z.shape
        h = self.proj(rearrange(z, "b s p d -> (b p) s d"))
        for norm, conv, pad in zip(self.norms, self.convs, self.pads, strict=True):
            x = rearrange(F.gelu(norm(h)), "n s d -> n d s")
            h = h + rearrange(conv(F.pad(x, (pad, 0))), "n d s -> n s d")
        return rearrange(h, "(b p) s h -> b s p h", b=b, p=p)


class MaskedConvContext(WholeSequenceContext):
    """Grid context: row ``i`` sees every column of the rows ``<= i`` (PixelCNN-style).

    Each residual block adds (a) a convolution whose kernel covers ``kernel_rows`` rows
    ending at the current one (padded above only) and ``kernel_cols`` columns: local
    detail, as a PixelCNN's masked convolution; and (b) a projection of the running mean,
    over rows ``0..i``, of each row's mean over all columns, broadcast along row ``i``:
    so one block already reaches every column of every row at and above ``i``. Norms are
    per position (layer norm over channels), never over rows, which would leak the rows
    below. Defaults: 256 wide, 3 blocks, 2 x 3 kernels.

    Shape:
        z: (b, s, p, d) with s = rows, p = columns -> c (b, s, p, dim)
    """

    def __init__(
        self,
        in_dim: int,
        dim: int = 256,
        num_blocks: int = 3,
        kernel_rows: int = 2,
        kernel_cols: int = 3,
    ) -> None:
        super().__init__()
        if kernel_cols % 2 != 1:
            raise ValueError(f"kernel_cols must be odd, got {kernel_cols}")
        self.proj = nn.Linear(in_dim, dim)
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(num_blocks))
        self.convs = nn.ModuleList(
            nn.Conv2d(dim, dim, (kernel_rows, kernel_cols)) for _ in range(num_blocks)
        )
        self.rows = nn.ModuleList(nn.Linear(dim, dim) for _ in range(num_blocks))
        self.pad = (kernel_cols // 2, kernel_cols // 2, kernel_rows - 1, 0)  # l, r, top, bottom
        self.out_dim = dim

    def forward(self, z: Tensor, lengths: Tensor | None = None) -> Tensor:
        h = self.proj(z)  # (b, s, p, dim)
        for norm, conv, row in zip(self.norms, self.convs, self.rows, strict=True):
            x = F.gelu(norm(h))
            grid = F.pad(rearrange(x, "b s p d -> b d s p"), self.pad)
            rows_seen = torch.arange(1, h.shape[1] + 1, device=h.device, dtype=h.dtype)
            summary = x.mean(2).cumsum(1) / rows_seen[:, None]  # (b, s, dim): rows <= i
            h = h + rearrange(conv(grid), "b d s p -> b s p d") + row(summary)[:, :, None]
        return h
