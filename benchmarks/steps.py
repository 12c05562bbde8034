"""Training steps: rate against the machine's ceiling, parts of the step, scaling.

Also the prediction core (:class:`cpc.losses.InfoNCE`) alone: its share of the paper
step and its cost against the number of negatives, of offsets, and (full softmax)
against the batch size.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from benchmarks.common import MatmulProbe, count_flops, median, timed, versus_ceiling
from benchmarks.memory import measure_here, measure_in_subprocess
from benchmarks.workloads import Workload, train_step
from cpc.losses.infonce import InfoNCE


def bench_workload(
    workload: Workload, probe: MatmulProbe, repeats: int, memory: bool = True
) -> dict[str, Any]:
    """Median step time, counted FLOPs, rate against the ceiling, peak memory."""
    device = probe.device
    torch.manual_seed(0)
    model = workload.build().to(device)
    step = train_step(model, workload.inputs(device))
    flops = count_flops(step)
    result: dict[str, Any] = {
        "workload": workload.name,
        "description": workload.description,
        "batch": workload.batch,
        "window": workload.window,
        "parameters": sum(p.numel() for p in model.parameters()),
        **versus_ceiling(step, flops, probe, repeats),
    }
    del model, step
    if memory:
        if device.type == "cuda":
            result["memory"] = measure_here(workload, device)
        else:
            result["memory"] = measure_in_subprocess(workload, device)
    return result


def _grad_fn(fn: Callable[[], Tensor], params: list[Tensor]) -> Callable[[], None]:
    """Forward and backward of ``fn`` (gradients of its sum reach ``params``)."""

    def run() -> None:
        for p in params:
            p.grad = None
        fn().sum().backward()

    return run


def breakdown(workload: Workload, device: torch.device, repeats: int) -> dict[str, Any]:
    """Forward + backward time of each part of the step, timed on its own.

    Inputs of each part are the detached outputs of the part before, so each time
    covers that part's forward and its backward only.
    """
    torch.manual_seed(0)
    model = workload.build().to(device)
    x, lengths = workload.inputs(device)
    with torch.no_grad():
        z, steps = model.encoder(x, lengths)
        c = model.context(z, steps)
        pred = model.predictor(c)
    z, c, pred = (t.detach().requires_grad_(True) for t in (z, c, pred))
    parts: dict[str, Callable[[], object]] = {
        "encoder": _grad_fn(lambda: model.encoder(x, lengths)[0], [*model.encoder.parameters()]),
        "context": _grad_fn(lambda: model.context(z, steps), [*model.context.parameters(), z]),
        "predictor": _grad_fn(lambda: model.predictor(c), [*model.predictor.parameters(), c]),
        "prediction core (InfoNCE)": _grad_fn(lambda: model.loss(pred, z, steps).loss, [pred, z]),
    }
    parts["optimiser (Adam)"] = torch.optim.Adam(model.parameters(), lr=2e-4).step
    step = train_step(model, (x, lengths))
    # Interleave the parts with whole steps so every share compares like with like.
    times: dict[str, list[float]] = {name: [] for name in [*parts, "step"]}
    for fn in [*parts.values(), step]:
        timed(fn, device, 1, warmup=1)
    for _ in range(repeats):
        for name, fn in parts.items():
            times[name].extend(timed(fn, device, 1, warmup=0))
        times["step"].extend(timed(step, device, 1, warmup=0))
    step_time = median(times["step"])
    rows = {
        name: {"time_s": median(t), "share_of_step": median(t) / step_time}
        for name, t in times.items()
    }
    loss_shape = {
        "anchors_times_offsets": int(pred.shape[0] * pred.shape[1] * pred.shape[3]),
        "negatives": model.loss.num_negatives,
        "offsets": model.loss.num_offsets,
    }
    return {"step_time_s": step_time, "parts": rows, "prediction_core": loss_shape}


def _core_inputs(
    b: int, s: int, p: int, k: int, d: int, device: torch.device
) -> tuple[Tensor, Tensor]:
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(b, s, p, d, generator=gen).to(device).requires_grad_(True)
    pred = torch.randn(b, s, p, k, d, generator=gen).to(device).requires_grad_(True)
    return pred, z


def _core_time(loss: InfoNCE, pred: Tensor, z: Tensor, repeats: int) -> float:
    def run() -> None:
        pred.grad = z.grad = None
        loss(pred, z).loss.backward()

    return median(timed(run, z.device, repeats, warmup=1))


def core_sweeps(
    device: torch.device,
    repeats: int,
    negatives: tuple[int, ...] = (16, 32, 64, 128, 256, 512, 1024),
    offsets: tuple[int, ...] = (1, 2, 4, 8, 12, 16),
    softmax_batches: tuple[int, ...] = (8, 16, 32, 64, 128),
    chunks: tuple[int, ...] = (1 << 18, 1 << 19, 1 << 20, 1 << 21, 1 << 22, 1 << 23),
) -> dict[str, Any]:
    """Forward + backward time of the prediction core alone.

    Speech shapes (batch 8, 126 steps, d = 512) for the sampled modes, both scoring
    strategies, and the ``gather`` strategy's chunk size (``chunk_elements``: the
    gathered negatives of a chunk of anchors, which should stay in cache, so the best
    size depends on the machine's caches); the full softmax (``negatives="all"``) on the
    image grid's shapes (7x7 grid, d = 256, offsets 2..6), whose cost grows with the
    square of the batch.
    """
    b, s, d = 8, 126, 512
    out: dict[str, Any] = {"speech_shape": {"b": b, "s": s, "d": d}}
    rows = []
    pred, z = _core_inputs(b, s, 1, 12, d, device)
    for n in negatives:
        row: dict[str, Any] = {"negatives": n, "offsets": 12}
        for strategy in ("gather", "matmul"):
            loss = InfoNCE(12, num_negatives=n, strategy=strategy)
            row[f"{strategy}_s"] = _core_time(loss, pred, z, repeats)
        rows.append(row)
    out["negatives"] = rows
    rows = []
    for k in offsets:
        pred, z = _core_inputs(b, s, 1, k, d, device)
        rows.append(
            {
                "offsets": k,
                "negatives": 128,
                "time_s": _core_time(InfoNCE(k, num_negatives=128), pred, z, repeats),
            }
        )
    out["offsets"] = rows
    pred, z = _core_inputs(b, s, 1, 12, d, device)
    out["chunks"] = [
        {
            "chunk_elements": c,
            "megabytes": c * 4 / 2**20,
            "time_s": _core_time(
                InfoNCE(12, num_negatives=128, strategy="gather", chunk_elements=c),
                pred,
                z,
                repeats,
            ),
        }
        for c in chunks
    ]
    rows = []
    for batch in softmax_batches:
        pred, z = _core_inputs(batch, 7, 7, 5, 256, device)
        loss = InfoNCE(5, k_min=2, negatives="all")
        rows.append(
            {"batch": batch, "candidates": batch * 49, "time_s": _core_time(loss, pred, z, repeats)}
        )
    out["full_softmax"] = rows
    return out


def scaling(
    workload: Workload,
    device: torch.device,
    repeats: int,
    batches: tuple[int, ...] = (2, 4, 8, 16),
    windows: tuple[int, ...] = (5120, 10240, 20480, 40960),
) -> dict[str, Any]:
    """Step time against batch size (at the workload's window) and window length."""

    def step_time(w: Workload) -> float:
        torch.manual_seed(0)
        step = train_step(w.build().to(device), w.inputs(device))
        return median(timed(step, device, repeats, warmup=1))

    return {
        "batch": [{"batch": b, "time_s": step_time(workload.with_shape(batch=b))} for b in batches],
        "window": [
            {"window": n, "time_s": step_time(workload.with_shape(window=n))} for n in windows
        ],
        "fixed_window": workload.window,
        "fixed_batch": workload.batch,
    }
