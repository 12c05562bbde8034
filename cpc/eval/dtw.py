"""Dynamic time warping between feature sequences, batched over pairs.

The classic recursion (Sakoe and Chiba 1978, symmetric steps without slope weights)::

    D[0, 0] = 0,  D[i, 0] = D[0, j] = inf  (i, j > 0)
    D[i, j] = c(a_i, b_j) + min(D[i-1, j-1], D[i-1, j], D[i, j-1])

with ``c`` the Euclidean distance between frames; the DTW distance is ``D[n, m]``,
divided by ``n + m`` when ``normalize`` (so long signatures do not score worse for their
length alone; ``n + m`` bounds the path length).

The recursion is evaluated one anti-diagonal ``i + j = const`` at a time: every cell of
a diagonal depends only on the two previous diagonals, so a diagonal is one vectorised
step for all pairs of a batch at once, and only three diagonals are kept in memory
besides the cost matrices. No library in the dependency tree provides DTW (aeon is an
optional extra, tslearn and dtaidistance are not installed); this is ~40 lines.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

__all__ = ["dtw_distance", "dtw_pairs"]


def _batch(seqs: Sequence[Tensor | np.ndarray], dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """Pad ``(t_i, d)`` sequences into ``(b, t_max, d)`` and their lengths ``(b,)``."""
    tensors = [torch.as_tensor(s, dtype=dtype) for s in seqs]
    for t in tensors:
        if t.ndim != 2 or t.shape[0] < 1:
            raise ValueError(f"each sequence must be (t, d) with t >= 1, got {tuple(t.shape)}")
    lengths = torch.tensor([t.shape[0] for t in tensors])
    return torch.nn.utils.rnn.pad_sequence(tensors, batch_first=True), lengths


def _dtw_batch(a: Tensor, la: Tensor, b: Tensor, lb: Tensor) -> Tensor:
    """DTW of ``a[i, :la[i]]`` against ``b[i, :lb[i]]`` for every ``i``.

    Shape:
        a: ``(B, n, d)``, b: ``(B, m, d)``, la, lb: ``(B,)``; returns ``(B,)``.
    """
    cost = torch.cdist(a, b)  # (B, n, m)
    bsz, n, m = cost.shape
    # skewed cost: skew[:, d - 2, i - 1] = cost[:, i - 1, d - i - 1], inf off the matrix
    d_idx = torch.arange(2, n + m + 1)[:, None]  # (n + m - 1, 1)
    i_idx = torch.arange(1, n + 1)[None, :]  # (1, n)
    j_idx = d_idx - i_idx
    inside = (j_idx >= 1) & (j_idx <= m)  # (n + m - 1, n)
    index = ((i_idx - 1) * m + (j_idx - 1).clamp(0, m - 1)).reshape(-1)
    skew = cost.reshape(bsz, n * m)[:, index].reshape(bsz, n + m - 1, n)
    skew = skew.masked_fill(~inside, float("inf"))
    # diagonals d-2 and d-1 of D (index i holds D[i, d - i]); diagonal 0 is D[0, 0] = 0
    prev2 = torch.full((bsz, n + 1), float("inf"), dtype=cost.dtype)
    prev2[:, 0] = 0.0
    prev1 = torch.full((bsz, n + 1), float("inf"), dtype=cost.dtype)
    out = torch.full((bsz,), float("nan"), dtype=cost.dtype)
    ends = la + lb  # the diagonal holding D[la, lb]
    for d in range(2, n + m + 1):
        cur = torch.empty_like(prev1)
        cur[:, 0] = float("inf")
        step = torch.minimum(prev2[:, :-1], prev1[:, :-1])
        torch.minimum(step, prev1[:, 1:], out=step)
        torch.add(skew[:, d - 2], step, out=cur[:, 1:])
        done = ends == d
        if done.any():
            out[done] = cur[done, la[done]]
        prev2, prev1 = prev1, cur
    return out


def dtw_pairs(
    left: Sequence[Tensor | np.ndarray],
    right: Sequence[Tensor | np.ndarray],
    *,
    normalize: bool = True,
    batch_size: int = 64,
    dtype: torch.dtype = torch.float32,
) -> np.ndarray:
    """DTW distance of ``left[i]`` to ``right[i]`` for every ``i``.

    Pairs are sorted by size and computed ``batch_size`` at a time, so padding stays
    small; each pair's result is independent of the others in its batch.

    Args:
        left: Sequences of frames.
        right: As many sequences, with the same feature dimension.
        normalize: Divide each distance by ``len(left[i]) + len(right[i])``.
        batch_size: Pairs per vectorised batch (memory grows as ``batch * n * m``).
        dtype: Computation dtype.

    Returns:
        ``(len(left),)`` float64 distances.

    Shape:
        left[i]: ``(n_i, d)``, right[i]: ``(m_i, d)``.

    """
    if len(left) != len(right):
        raise ValueError(f"need as many left as right sequences, got {len(left)}, {len(right)}")
    out = np.empty(len(left))
    sizes = [len(a) * len(b) for a, b in zip(left, right, strict=True)]
    order = np.argsort(sizes, kind="stable")
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        a, la = _batch([left[i] for i in idx], dtype)
        b, lb = _batch([right[i] for i in idx], dtype)
        dist = _dtw_batch(a, la, b, lb)
        if normalize:
            dist = dist / (la + lb).to(dist.dtype)
        out[idx] = dist.double().numpy()
    return out


def dtw_distance(
    a: Tensor | np.ndarray, b: Tensor | np.ndarray, *, normalize: bool = False
) -> float:
    """DTW distance between two sequences (see the module docstring).

    Shape:
        a: ``(n, d)``, b: ``(m, d)``.
    """
    return float(dtw_pairs([a], [b], normalize=normalize, dtype=torch.float64)[0])
