"""Process groups under ``torchrun``: Gloo on CPUs, NCCL on GPUs, one process otherwise.

``torchrun`` (``python -m torch.distributed.run``) starts one process per device and
sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; :func:`setup` reads them and joins the
group. Without them everything runs in a single process and every helper here falls
back to the identity, so the trainer has one code path.

Batch convention: ``data.batch_size`` is the batch of *one process*; the global batch
of an optimiser step is ``data.batch_size * optim.accumulate * world_size``.
"""

from __future__ import annotations

import datetime
import logging
import os
import re
from dataclasses import dataclass

import torch
import torch.distributed as dist

from cpc.ranks import active, initialized, rank, world_size

__all__ = [
    "DistInfo",
    "all_reduce",
    "any_true",
    "barrier",
    "gather_objects",
    "is_main",
    "lost_peer",
    "rank",
    "resolve_device",
    "setup",
    "teardown",
    "world_size",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands.

    Attributes:
        rank: Global rank (0 in a single process).
        world_size: Number of processes.
        local_rank: Rank on this machine (selects the GPU).
        device: The device this process trains on.
        initialized_here: Whether :func:`setup` created the process group (and
            :func:`teardown` should destroy it).

    """

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    initialized_here: bool = False

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that logs and writes checkpoints."""
        return self.rank == 0


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """The device for ``run.device``: ``auto`` picks CUDA when available, else the CPU.

    Raises:
        RuntimeError: ``cuda`` was asked for but no GPU is visible.

    """
    if name not in ("auto", "cpu", "cuda"):
        raise ValueError(f"run.device must be auto, cpu or cuda, got {name!r}")
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise RuntimeError("run.device=cuda, but torch sees no CUDA device; use auto or cpu")
    return torch.device("cuda", local_rank % torch.cuda.device_count())


def setup(device: str = "auto") -> DistInfo:
    """Join the ``torchrun`` process group if launched by it; else one process.

    The backend is NCCL when this process trains on a GPU and Gloo on the CPU. An
    already-initialised group (set up by the caller) is used as it is.

    Args:
        device: ``run.device``: ``auto``, ``cpu`` or ``cuda``.

    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    target = resolve_device(device, local_rank)
    if initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, target)
    if world <= 1 or "RANK" not in os.environ:
        return DistInfo(0, 1, 0, target)
    if not dist.is_available():
        raise RuntimeError("launched with WORLD_SIZE > 1 but torch.distributed is unavailable")
    backend = "nccl" if target.type == "cuda" else "gloo"
    if target.type == "cuda":
        torch.cuda.set_device(target)
    dist.init_process_group(
        backend,
        timeout=datetime.timedelta(minutes=30),
        device_id=target if backend == "nccl" else None,
    )
    info = DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, target, True)
    logger.info("rank %d of %d on %s (%s)", info.rank, info.world_size, target, backend)
    return info


#: Words of the messages a collective fails with when another process is gone (Gloo,
#: NCCL, the TCP store): the peer died, its node went away, or it stopped answering.
_LOST_WORDS = ("connection", "broken pipe", "timed out", "timeout", "socket", "gloo", "nccl")


def lost_peer(err: BaseException) -> bool:
    """Whether ``err`` is a collective that failed because another process is gone.

    ``torch.distributed``'s own errors (``DistError``: backend, network, store) always
    are; a plain ``RuntimeError`` is when its message is a transport's (Gloo raises
    ``RuntimeError: [.../pair.cc:538] Read error ...: Connection reset by peer``).
    """
    if isinstance(err, dist.DistError):
        return True
    text = str(err).lower()
    return type(err) is RuntimeError and any(word in text for word in _LOST_WORDS)


def cause_of(err: BaseException) -> str:
    """The first line of a collective's error, without the C++ source location."""
    lines = str(err).strip().splitlines() or [type(err).__name__]
    text = re.sub(r"\[[^\]]*\.(?:cc|cpp|h|hpp):\d+\]\s*", "", lines[0])
    return text[:200]


def teardown(info: DistInfo) -> None:
    """Destroy the process group if :func:`setup` created it."""
    if info.initialized_here and initialized():
        dist.destroy_process_group()


def is_main() -> bool:
    """Whether this is rank 0."""
    return rank() == 0


def barrier() -> None:
    """Wait for every process (no-op in a single process)."""
    if active():
        dist.barrier()


def all_reduce(tensor: torch.Tensor, op: str = "mean") -> torch.Tensor:
    """Reduce a tensor over processes: ``mean``, ``sum``, ``max`` or ``min``.

    Returns a new tensor (the input is untouched); the identity in one process.
    """
    if op not in ("mean", "sum", "max", "min"):
        raise ValueError(f"op must be mean, sum, max or min, got {op!r}")
    out = tensor.detach().clone()
    if not active():
        return out
    ops = {"mean": dist.ReduceOp.SUM, "sum": dist.ReduceOp.SUM}
    ops.update({"max": dist.ReduceOp.MAX, "min": dist.ReduceOp.MIN})
    dist.all_reduce(out, op=ops[op])
    if op == "mean":
        out /= dist.get_world_size()
    return out


def any_true(flag: bool, device: torch.device) -> bool:
    """Whether ``flag`` is true on any process (so every rank takes the same branch)."""
    if not active():  # one process: no tensor, no upload and no wait for the device
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    return bool(all_reduce(value, "max").item() > 0)


def gather_objects(obj: object) -> list[object]:
    """Every rank's ``obj`` in rank order (``[obj]`` in one process).

    For small in-memory values exchanged between the processes of one run (RNG
    states); nothing read from disk goes through it.
    """
    if not active():
        return [obj]
    out: list[object] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out
