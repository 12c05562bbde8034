"""bf16 training against float32 on the paper step, and what each float32 exception buys.

Every variant starts from the same weights and scores the same batch against the same
negatives (a generator reseeded at every step):

- ``float32``: no autocast;
- ``bf16``: what ``run.precision=bf16`` runs (:func:`cpc.train.steps.autocast`):
  products in bf16, the recurrent context in float32 outside autocast, the loss's
  softmax in float32, float32 weights and Adam state (autocast casts copies);
- ``bf16, norms in float32``: every norm's input upcast (ATen's bf16 norms already
  accumulate their statistics in float32; this also keeps their output in float32);
- ``bf16, recurrent context in bf16``: the GRU's weights in bf16, no exception;
- ``bf16 weights and Adam state``: the whole model in bf16, no float32 master copy.

For each: the median step time over interleaved repeats, the speed-up over float32, the
achieved rate over the product rate of its own dtype (probed between repeats), and,
against float32 at the first step, the loss's relative difference and the gradient's
relative error and cosine. The speed-up is printed beside the ratio of the bf16 to the
float32 product rate measured in the same loop: the most any bf16 step could gain.

Two exceptions are measured directly rather than as whole steps: the loss's softmax in
bf16 (its error and time on the step's own logits), and an Adam step on bf16 weights
(the fraction of weights it leaves unchanged: updates below half a bf16 ulp vanish).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from benchmarks.common import MatmulProbe, count_flops, median, synchronize, timed
from benchmarks.workloads import Workload
from cpc.models.cpc import CPCModel
from cpc.train.schedule import fused_available
from cpc.train.steps import autocast


@dataclass(frozen=True)
class Variant:
    """One way to run the step: a modified copy of the model, with or without autocast."""

    name: str
    dtype: str  # "float32" or "bf16": the product rate the step is held against
    prepare: Callable[[CPCModel], CPCModel]
    autocast: bool


def _same(model: CPCModel) -> CPCModel:
    return copy.deepcopy(model)


def _norms_float32(model: CPCModel) -> CPCModel:
    model = copy.deepcopy(model)
    for m in model.modules():
        if isinstance(m, nn.LayerNorm | nn.modules.batchnorm._BatchNorm | nn.GroupNorm):
            m.register_forward_pre_hook(lambda _m, args: (args[0].float(), *args[1:]))
    return model


def _context_bf16(model: CPCModel) -> CPCModel:
    model = copy.deepcopy(model)
    model.context.to(torch.bfloat16)  # the recurrence runs in its weights' dtype
    return model


def _all_bf16(model: CPCModel) -> CPCModel:
    return copy.deepcopy(model).to(torch.bfloat16)


VARIANTS = (
    Variant("float32", "float32", _same, False),
    Variant("bf16 (run.precision=bf16)", "bf16", _same, True),
    Variant("bf16, norms in float32", "bf16", _norms_float32, True),
    Variant("bf16, recurrent context in bf16", "bf16", _context_bf16, True),
    Variant("bf16 weights and Adam state", "bf16", _all_bf16, True),
)


def _step(
    model: CPCModel, variant: Variant, x: Tensor, lengths: Tensor | None, lr: float
) -> Callable[[], Tensor]:
    """One training step (forward, backward, Adam) on fixed negatives; returns the loss."""
    device = x.device
    params = list(model.parameters())
    optimiser = torch.optim.Adam(params, lr=lr, fused=fused_available(params) or None)
    dtype = params[0].dtype
    xin = x.to(dtype)
    precision = "bf16" if variant.autocast else "fp32"

    def step() -> Tensor:
        optimiser.zero_grad(set_to_none=True)
        generator = torch.Generator(device=device).manual_seed(0)
        with autocast(device, precision):
            out = model(xin, lengths, generator=generator)
        out.loss.float().backward()
        optimiser.step()
        return out.loss.detach().float()

    return step


def _first_gradient(
    model: CPCModel, variant: Variant, x: Tensor, lengths: Tensor | None
) -> tuple[float, Tensor]:
    """Loss and flattened float32 gradient of the first step (weights untouched)."""
    model.zero_grad(set_to_none=True)
    generator = torch.Generator(device=x.device).manual_seed(0)
    with autocast(x.device, "bf16" if variant.autocast else "fp32"):
        out = model(x.to(next(model.parameters()).dtype), lengths, generator=generator)
    out.loss.float().backward()
    grads = [p.grad.double().flatten() for p in model.parameters() if p.grad is not None]
    model.zero_grad(set_to_none=True)
    return float(out.loss.detach()), torch.cat(grads)


@contextmanager
def _capture_logits(model: CPCModel, into: dict[str, Tensor]) -> Iterator[None]:
    """Record the logits the loss reduces (an instance attribute, removed afterwards)."""
    reduce = model.loss._reduce

    def capture(logits: Tensor, target: Tensor, valid: Tensor, masked: Tensor | None) -> Any:
        into.update(logits=logits.detach(), target=target, masked=masked)
        return reduce(logits, target, valid, masked)

    model.loss._reduce = capture  # type: ignore[method-assign]
    try:
        yield
    finally:
        del model.loss._reduce


def _softmax_in_bf16(model: CPCModel, x: Tensor, lengths: Tensor | None) -> dict[str, Any]:
    """The loss's cross-entropy in bf16 against float32, on the bf16 step's own logits."""
    seen: dict[str, Tensor] = {}
    with torch.no_grad(), _capture_logits(model, seen), autocast(x.device, "bf16"):
        model(x, lengths, generator=torch.Generator(device=x.device).manual_seed(0))
    logits = seen["logits"]
    if seen["masked"] is not None:
        logits = logits.masked_fill(seen["masked"], float("-inf"))
    a, k, c = logits.shape
    target = seen["target"].reshape(-1)
    rows: dict[str, Any] = {"logits_shape": [a, k, c]}
    reference = None
    for dtype in (torch.float32, torch.bfloat16):
        leaf = logits.reshape(a * k, c).to(dtype).requires_grad_(True)

        def run(leaf: Tensor = leaf) -> Tensor:
            leaf.grad = None
            loss = F.cross_entropy(leaf, target)
            loss.backward()
            return loss

        loss = run()
        grad = leaf.grad.float()  # type: ignore[union-attr]
        times = timed(run, x.device, 5)
        name = "float32" if dtype == torch.float32 else "bf16"
        rows[f"{name}_ms"] = median(times) * 1e3
        if reference is None:
            reference = (float(loss.detach()), grad)
        else:
            difference = abs(float(loss.detach()) - reference[0])
            rows["loss_relative_difference"] = difference / abs(reference[0])
            rows["grad_relative_error"] = float((grad - reference[1]).norm() / reference[1].norm())
    return rows


def _adam_in_bf16(
    model: CPCModel, x: Tensor, lengths: Tensor | None, lrs: tuple[float, ...]
) -> list[dict[str, float]]:
    """One Adam step on bf16 weights against the same step in float32, per learning rate.

    Same weights (rounded to bf16) and the same float32 gradient of the first step.
    Adam's first update is about ``lr`` per weight whatever the gradient, so a bf16
    weight above ``lr / 2**-9`` in magnitude (half an ulp) does not move at all.
    """
    _, grad = _first_gradient(copy.deepcopy(model), VARIANTS[0], x, lengths)
    weights = torch.cat([p.detach().flatten() for p in model.parameters()])
    start = weights.to(torch.bfloat16)
    rows = []
    for lr in lrs:
        moved = []
        for dtype in (torch.float32, torch.bfloat16):
            w = start.to(dtype).clone().requires_grad_(True)
            w.grad = grad.to(dtype)
            torch.optim.Adam([w], lr=lr, fused=True).step()
            moved.append((w.detach() - start.to(dtype)).float())
        reference, low = moved
        rows.append(
            {
                "lr": lr,
                "update_relative_error": float((low - reference).norm() / reference.norm()),
                "unchanged_fraction": float((low == 0).double().mean()),
            }
        )
    return rows


def precision(
    workload: Workload,
    probes: dict[str, MatmulProbe],
    repeats: int,
    lr: float = 2e-4,
    variants: tuple[Variant, ...] = VARIANTS,
) -> dict[str, Any]:
    """Time every variant against float32, interleaved; see the module docstring.

    ``probes`` holds a float32 and, where the device has native bf16, a bf16
    matrix-product probe; without bf16 only float32 is timed and the result says so.
    """
    device = probes["float32"].device
    if "bf16" not in probes:
        return {"workload": workload.name, "bf16_native": False, "rows": []}
    torch.manual_seed(0)
    base = workload.build().to(device)
    x, lengths = workload.inputs(device)
    flops = count_flops(_step(copy.deepcopy(base), variants[0], x, lengths, lr))
    reference_loss, reference_grad = _first_gradient(copy.deepcopy(base), variants[0], x, lengths)
    models = {v.name: v.prepare(base) for v in variants}
    accuracy = {}
    for v in variants:
        loss, grad = _first_gradient(models[v.name], v, x, lengths)
        accuracy[v.name] = {
            "loss_relative_difference": abs(loss - reference_loss) / abs(reference_loss),
            "grad_relative_error": float((grad - reference_grad).norm() / reference_grad.norm()),
            "grad_cosine": float(F.cosine_similarity(grad, reference_grad, dim=0)),
        }
    steps = {v.name: _step(models[v.name], v, x, lengths, lr) for v in variants}
    for step in steps.values():  # warm-up: Adam's state, oneDNN's kernels
        step()
        step()
    synchronize(device)
    rates: dict[str, list[float]] = {name: [p.rate()] for name, p in probes.items()}
    times: dict[str, list[float]] = {v.name: [] for v in variants}
    for _ in range(repeats):
        for v in variants:
            start = time.perf_counter()
            steps[v.name]()
            synchronize(device)
            times[v.name].append(time.perf_counter() - start)
        for name, p in probes.items():
            rates[name].append(p.rate())
    ceilings = {name: median(r) for name, r in rates.items()}
    rows = []
    for v in variants:
        ratios = [
            flops / t / 1e9 / ((rates[v.dtype][i] + rates[v.dtype][i + 1]) / 2)
            for i, t in enumerate(times[v.name])
        ]
        rows.append(
            {
                "variant": v.name,
                "dtype": v.dtype,
                "time_s": median(times[v.name]),
                "times_s": times[v.name],
                "speedup": median(times[variants[0].name]) / median(times[v.name]),
                "ratio_to_ceiling": median(ratios),
                **accuracy[v.name],
            }
        )
    per_repeat = [
        b / f for f, b in zip(rates["float32"], rates["bf16"], strict=True)
    ]  # probes taken side by side
    return {
        "workload": workload.name,
        "batch": workload.batch,
        "window": workload.window,
        "gflop": flops / 1e9,
        "bf16_native": True,
        "ceilings_gflops": ceilings,
        "product_ratio": median(per_repeat),
        "rows": rows,
        "softmax_bf16": _softmax_in_bf16(copy.deepcopy(base), x, lengths),
        "adam_bf16": _adam_in_bf16(base, x, lengths, (lr, lr / 10, lr / 100)),
    }


def speedup_target(product_ratio: float) -> float | None:
    """The issue's bf16 step target for a machine whose bf16 products run this much faster.

    >= 2x where bf16 products run >= 3x the float32 rate (AMX, GPUs), >= 1.5x where
    they run about 2x (AVX-512 BF16); below that only reported (None).
    """
    if product_ratio >= 3.0:
        return 2.0
    if product_ratio >= 1.7:
        return 1.5
    return None


def target_row(result: dict[str, Any]) -> dict[str, Any]:
    """The bf16 target as a row of the report's target table."""
    what = f"bf16 {result['workload']} step: speed-up over float32 (beside the product ratio)"
    if not result.get("bf16_native"):
        return {"what": what, "target": "reported", "measured": "no native bf16", "met": None}
    row = next(r for r in result["rows"] if r["variant"].startswith("bf16 (run"))
    want = speedup_target(result["product_ratio"])
    measured = f"{row['speedup']:.2f}x (products {result['product_ratio']:.2f}x)"
    if want is None:
        return {"what": what, "target": "reported", "measured": measured, "met": None}
    return {
        "what": what,
        "target": f">= {want}x",
        "measured": measured,
        "met": row["speedup"] >= want,
    }


def markdown(
    result: dict[str, Any], table: Callable[[list[str], list[list[str]]], list[str]]
) -> list[str]:
    """The section of the machine's report."""
    out = [f"## bf16 training against float32 ({result['workload']} step)", ""]
    if not result.get("bf16_native"):
        return [*out, "No native bf16 on this device: not timed.", ""]
    c = result["ceilings_gflops"]
    out += [
        f"Batch {result['batch']} x {result['window']}, {result['gflop']:.1f} GFLOP per step; "
        f"products measured in the same loop: float32 {c['float32']:.0f} GFLOP/s, bf16 "
        f"{c['bf16']:.0f} GFLOP/s, **ratio {result['product_ratio']:.2f}x**. Loss and "
        "gradient are compared with float32 at the first step (same weights, batch and "
        "negatives).",
        "",
    ]
    out += table(
        [
            "variant",
            "median ms",
            "speed-up",
            "of own dtype's product rate",
            "loss rel. diff.",
            "grad rel. error",
            "grad cosine",
        ],
        [
            [
                r["variant"],
                f"{r['time_s'] * 1e3:.0f}",
                f"{r['speedup']:.2f}x",
                f"{r['ratio_to_ceiling']:.0%}",
                f"{r['loss_relative_difference']:.1e}",
                f"{r['grad_relative_error']:.1e}",
                f"{r['grad_cosine']:.5f}",
            ]
            for r in result["rows"]
        ],
    )
    s = result["softmax_bf16"]
    a, k, n = s["logits_shape"]
    out += [
        f"The loss's softmax in bf16 on this step's logits ({a} anchors x {k} offsets x "
        f"{n} candidates): loss relative difference {s['loss_relative_difference']:.1e}, "
        f"gradient relative error {s['grad_relative_error']:.1e}; forward + backward "
        f"{s['bf16_ms']:.1f} ms against {s['float32_ms']:.1f} ms in float32.",
        "",
        "One Adam step on bf16 weights against the same step in float32 (same weights "
        "and gradient):",
        "",
    ]
    out += table(
        ["learning rate", "update rel. error", "weights left unchanged"],
        [
            [f"{r['lr']:g}", f"{r['update_relative_error']:.2f}", f"{r['unchanged_fraction']:.1%}"]
            for r in result["adam_bf16"]
        ],
    )
    return out
