"""The pieces of one training step, as small functions the loop in :mod:`.trainer` calls.

- :func:`resolve_precision` / :func:`autocast`: mixed precision by device (bf16 on CPUs
  with native support, bf16 or fp16 on CUDA), with a warning when falling back.
- :func:`negatives_generator`: the generator of a micro-batch's negative draws, seeded
  by ``(seed, step, g)`` where ``g = micro * world_size + rank`` is the micro-batch's
  place in the step's global batch. Negatives are then a function of the position in
  the run, not of whatever consumed the global RNG before, so resumed runs and runs on
  different numbers of processes draw the same ones for the same data.
- :func:`micro_step`: forward and backward of one micro-batch; :func:`optimizer_step`:
  unscale, clip, step.
- :func:`evaluate`: validation loss and per-offset accuracy.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from cpc.data.seeds import mix_seed
from cpc.errors import NonFiniteLossError
from cpc.train import distributed

logger = logging.getLogger(__name__)

#: Stream id mixed into validation seeds, so they never meet training ones.
VAL_STREAM = 1_000_003


def cpu_supports_bf16() -> bool:
    """Whether this CPU has native bfloat16 arithmetic (AVX512-BF16 / AMX via oneDNN)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(device: torch.device, precision: str) -> str:
    """The precision actually used: ``fp32``, ``bf16`` or ``fp16``.

    bf16 on a CPU without native support, and fp16 on a CPU (CPU autocast's fp16 is slow
    and needs loss scaling), fall back with a warning; bf16 on a GPU without bf16
    (before Ampere) falls back to fp16.
    """
    if precision not in ("fp32", "bf16", "fp16"):
        raise ValueError(f"run.precision must be fp32, bf16 or fp16, got {precision!r}")
    if precision == "fp32":
        return "fp32"
    if device.type == "cuda":
        if precision == "bf16" and not torch.cuda.is_bf16_supported():
            logger.warning("this GPU has no bf16: using fp16 with loss scaling")
            return "fp16"
        return precision
    if cpu_supports_bf16():
        if precision == "fp16":
            logger.warning("fp16 autocast is for CUDA; using bf16 on this CPU")
        return "bf16"
    logger.warning("run.precision=%s: this CPU has no native bf16; using fp32", precision)
    return "fp32"


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[Any]:
    """The autocast context of a resolved precision (a no-op for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)


def negatives_generator(device: torch.device, seed: int, step: int, index: int) -> torch.Generator:
    """A generator on ``device`` seeded by ``(seed, step, index)``."""
    generator = torch.Generator(device=device)
    generator.manual_seed(mix_seed(seed, step, index))
    return generator


def to_device(batch: dict[str, Any], device: torch.device) -> tuple[Tensor, Tensor | None]:
    """The batch's input and lengths (None for images) on ``device``."""
    x = batch["x"].to(device, non_blocking=True)
    lengths = batch.get("lengths")
    return x, None if lengths is None else lengths.to(device, non_blocking=True)


@dataclass
class MicroResult:
    """What one micro-batch contributes to the logs.

    Shape:
        loss: (); accuracy: (k,), both detached.
    """

    loss: Tensor
    accuracy: Tensor
    items: int
    samples: int


def micro_step(
    model: nn.Module,
    batch: dict[str, Any],
    *,
    device: torch.device,
    precision: str,
    generator: torch.Generator | None,
    scale: float,
    scaler: torch.amp.GradScaler | None = None,
    step: int = 0,
) -> MicroResult:
    """Forward one micro-batch and backpropagate ``loss * scale``.

    With ``optim.accumulate = A`` micro-batches per step, ``scale = 1 / A``, so the
    accumulated gradient is that of the mean of the micro-batch losses (the same
    average DDP takes over processes).

    Raises:
        NonFiniteLossError: On any process, before anything is backpropagated.

    Shape:
        batch ``"x"``: (b, t) audio, (b, t, c) signals or (b, c, h, w) images;
        ``"lengths"``: (b,) valid input samples (absent for images).

    """
    x, lengths = to_device(batch, device)
    with autocast(device, precision):
        out = model(x, lengths, generator=generator)
    loss = out.loss.float()
    if distributed.any_true(not bool(torch.isfinite(loss.detach())), device):
        value = float(loss.detach())
        raise NonFiniteLossError(
            f"non-finite loss ({value:.4g} on rank {distributed.rank()}) at step {step}"
        )
    scaled = loss * scale
    (scaler.scale(scaled) if scaler is not None else scaled).backward()
    host_lengths = batch.get("lengths")  # counted on the host: no wait for the device
    samples = int(host_lengths.sum()) if host_lengths is not None else 0
    return MicroResult(loss.detach(), out.accuracy.detach().float(), int(x.shape[0]), samples)


def optimizer_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    grad_clip: float,
    scaler: torch.amp.GradScaler | None = None,
) -> float:
    """Unscale (fp16), clip the global gradient norm, step; returns the norm (or 0)."""
    if scaler is not None:
        scaler.unscale_(optimizer)
    norm = 0.0
    if grad_clip > 0:
        norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip))
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return norm


@torch.no_grad()
def evaluate(
    model: nn.Module,
    batches: Iterable[dict[str, Any]],
    *,
    device: torch.device,
    precision: str,
    seed: int,
) -> tuple[float, list[float]] | None:
    """Mean loss and per-offset accuracy over ``batches``, averaged over processes.

    Each batch's negatives come from a generator seeded by ``(seed, batch, rank)``, so
    the same model always gets the same score; the global RNG is untouched, so
    validation never changes the course of training.

    Returns:
        ``(loss, accuracy per offset)``, or None when no process had a batch.

    Shape:
        batches: dicts as for :func:`micro_step`; accuracy: one value per offset (k,).

    """
    was_training = model.training
    model.eval()
    loss_sum, acc_sum, count = torch.zeros((), device=device), None, 0
    rank = distributed.rank()
    for i, batch in enumerate(batches):
        x, lengths = to_device(batch, device)
        generator = negatives_generator(device, seed, VAL_STREAM, i * 65_537 + rank)
        with autocast(device, precision):
            out = model(x, lengths, generator=generator)
        loss_sum += out.loss.float()
        acc = out.accuracy.float()
        acc_sum = acc if acc_sum is None else acc_sum + acc
        count += 1
    model.train(was_training)
    k = len(getattr(model, "offsets", [])) or (0 if acc_sum is None else acc_sum.numel())
    totals = torch.zeros(k + 2, device=device)
    if acc_sum is not None:
        totals[0], totals[1:-1], totals[-1] = loss_sum, acc_sum, count
    totals = distributed.all_reduce(totals, "sum")
    if totals[-1] <= 0:
        return None
    means = totals[:-1] / totals[-1]
    return float(means[0]), [round(float(a), 5) for a in means[1:]]
