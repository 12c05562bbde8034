"""Optimisation as pure functions: the learning rate of a step, and AdamW's parameter groups.

The schedule is a function of the optimiser step alone (nanoGPT's ``get_lr``, DINO's
``cosine_scheduler``), so a resumed run needs no scheduler state: the step in the
checkpoint says everything.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from cpc.config import OptimConfig


def schedule_position(
    step: int, optim: OptimConfig, elapsed: float = 0.0, max_time: float = 0.0
) -> float:
    """How far the schedule is, in steps: ``max(step, elapsed / max_time * max_steps)``.

    That is progress ``max(step / max_steps, elapsed / max_time)`` measured in steps, so
    a run with a time budget (``run.max_time``) warms up and decays over its budget
    when the budget ends first, and over ``max_steps`` otherwise. Without a budget it
    is the step itself (exactly, so step-based schedules are unchanged).
    """
    if max_time <= 0:
        return step
    return max(step, elapsed / max_time * optim.max_steps)


def lr_at(step: int, optim: OptimConfig, elapsed: float = 0.0, max_time: float = 0.0) -> float:
    """Learning rate for optimiser step ``step`` (0-based: the step about to be taken).

    Linear warm-up from ``lr / warmup_steps`` to ``lr`` over the first ``warmup_steps``
    steps, then a cosine from ``lr`` down to ``min_lr`` at ``max_steps``; ``min_lr``
    afterwards. Without warm-up the first step already uses ``lr``. With a time budget
    the position on this curve is :func:`schedule_position`: the rate reaches
    ``min_lr`` when ``elapsed`` reaches ``max_time`` (or the step ``max_steps``).

    Args:
        step: Number of optimiser steps already taken.
        optim: Peak ``lr``, ``min_lr``, ``warmup_steps`` and ``max_steps``.
        elapsed: Seconds of training so far (over every resume), with ``max_time``.
        max_time: The run's time budget in seconds (0: none).

    Returns:
        The learning rate.

    """
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    position = schedule_position(step, optim, elapsed, max_time)
    if position < optim.warmup_steps:
        return optim.lr * min(position + 1, optim.warmup_steps) / optim.warmup_steps
    if position >= optim.max_steps:
        return optim.min_lr
    span = max(optim.max_steps - optim.warmup_steps, 1)
    progress = (position - optim.warmup_steps) / span  # in [0, 1)
    return optim.min_lr + 0.5 * (optim.lr - optim.min_lr) * (1.0 + math.cos(math.pi * progress))


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Split trainable parameters into a decayed and a non-decayed AdamW group.

    Weight decay applies to matrices and convolution kernels (``ndim >= 2``) only, never
    to biases, norm gains or other vectors (nanoGPT, litgpt). Frozen parameters are left
    out.

    Args:
        model: The model to optimise.
        weight_decay: Decay of the matrices.

    Returns:
        Two groups, ``"decay"`` then ``"no_decay"``, each with ``params`` and
        ``weight_decay`` (a group may be empty).

    """
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for param in model.parameters():
        if not param.requires_grad:
            continue
        (decay if param.ndim >= 2 else no_decay).append(param)
    return [
        {"name": "decay", "params": decay, "weight_decay": weight_decay},
        {"name": "no_decay", "params": no_decay, "weight_decay": 0.0},
    ]


def fused_available(params: list[torch.Tensor]) -> bool:
    """Whether torch's fused Adam/AdamW kernel can update these parameters.

    It exists for floating-point tensors on CPU and CUDA. On a CPU it did one AdamW step
    of the paper model (7.4 M parameters in 26 tensors) in 5.6 ms of CPU time against
    25.5 ms for the default per-tensor loop (one thread, ``benchmarks/NOTES.md``).
    """
    return bool(params) and all(
        p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params
    )


def build_optimizer(model: nn.Module, optim: OptimConfig) -> torch.optim.AdamW:
    """AdamW over :func:`param_groups` with the config's betas; the lr is set per step.

    Fused (one kernel over all parameters) where :func:`fused_available`.
    """
    if len(optim.betas) != 2:
        raise ValueError(f"optim.betas needs two values, got {optim.betas}")
    groups = [g for g in param_groups(model, optim.weight_decay) if g["params"]]
    beta1, beta2 = optim.betas
    fused = fused_available([p for g in groups for p in g["params"]]) or None
    return torch.optim.AdamW(groups, lr=lr_at(0, optim), betas=(beta1, beta2), fused=fused)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set the learning rate of every parameter group."""
    for group in optimizer.param_groups:
        group["lr"] = lr
