"""Gathering candidate latents across processes, with gradients.

Falls back to the identity when ``torch.distributed`` is unavailable or not initialised,
so the loss behaves the same in a single process.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor

from cpc import ranks as world


def gather_pool(pool: Tensor) -> tuple[Tensor, int]:
    """Concatenate every process's pool; gradients flow back to the local part.

    Pools may have different sizes on different ranks (variable-length batches): they
    are padded to the largest for the collective and trimmed afterwards.

    Shape:
        pool: (m, d) local candidates.
        returns: (m_total, d) candidates of all ranks in rank order, and the offset of
            this rank's pool inside it.
    """
    rank, size = world.rank(), world.world_size()
    if size == 1:
        return pool, 0
    from torch.distributed.nn.functional import all_gather

    m = torch.tensor([pool.shape[0]], device=pool.device)
    sizes = [torch.zeros_like(m) for _ in range(size)]
    dist.all_gather(sizes, m)
    counts = [int(c) for c in sizes]
    padded = torch.nn.functional.pad(pool, (0, 0, 0, max(counts) - pool.shape[0]))
    parts = all_gather(padded)
    out = torch.cat([part[:c] for part, c in zip(parts, counts, strict=True)])
    return out, sum(counts[:rank])
