"""Where this process stands among ``torch.distributed`` processes: one helper for all.

Every layer that needs "rank and world size, or one process" (the loss's cross-process
negatives, the batch sampler's split, the trainer's collectives) asks here. Without an
initialised process group everything reports a single process, so callers keep one
code path.
"""

from __future__ import annotations

import torch.distributed as dist


def initialized() -> bool:
    """Whether a ``torch.distributed`` process group is up."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """Rank of this process (0 without a process group)."""
    return dist.get_rank() if initialized() else 0


def world_size() -> int:
    """Number of processes (1 without a process group)."""
    return dist.get_world_size() if initialized() else 1


def active() -> bool:
    """Whether collectives are needed: a process group of more than one process."""
    return initialized() and dist.get_world_size() > 1


def resolve(num_replicas: int | None = None, this_rank: int | None = None) -> tuple[int, int]:
    """``(num_replicas, rank)``: the given values, else the process group's, else (1, 0).

    Raises:
        ValueError: ``rank`` outside ``[0, num_replicas)``.

    """
    replicas = world_size() if num_replicas is None else num_replicas
    index = rank() if this_rank is None else this_rank
    if replicas < 1 or not 0 <= index < replicas:
        raise ValueError(f"need 0 <= rank < num_replicas, got rank {index} of {replicas}")
    return replicas, index
