"""A limit per shape: every layer of every preset against the plain products it does.

For one training step of a preset, every matrix product that runs (``mm``, ``addmm``,
``bmm``, ``baddbmm``, and convolutions as the products of their im2col form, forward
and backward) is recorded with its shapes, its dtype and the module it ran under. Each
distinct shape is then timed as a *plain product*: two fresh, contiguous operands of
those shapes and that dtype, best of a few runs, in the same process and close in time.
The sum over a layer's products is that layer's **limit**: what the layer would take
if it did nothing but its products, each as fast as this machine multiplies matrices of
exactly those shapes (a 12 x 512 by 512 x 140 product cannot run at the 2048^2 rate,
and is not asked to).

A *layer* is a module with parameters of its own, or an activation module, timed
forward + backward on the input it received in the step (other modules' time is in the
"rest" of the step). The preset's **step limit** is the sum of the limits of every
product of the whole step (layers, loss and the rest); the target is a step within 75%
of it (``limit / step >= 0.75``).

:func:`overhead` is the paper step's **non-product time**: the step time minus the time
its products would take at the 2048^2 product rate measured in the same run, with a
profile of where the rest goes (norms, element-wise, gathers, optimiser, copies, ...).
"""

from __future__ import annotations

import math
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode

from benchmarks.common import MatmulProbe, count_flops, median, synchronize, timed
from benchmarks.workloads import Workload, train_step

#: The step's limit must be at least this share of the step's time.
STEP_TARGET = 0.75

PRODUCTS = {"mm", "addmm", "bmm", "baddbmm", "convolution", "convolution_backward"}


@dataclass(frozen=True)
class Product:
    """One plain product: ``batch`` independent ``(m, k) @ (k, n)`` in ``dtype``."""

    batch: int
    m: int
    k: int
    n: int
    dtype: torch.dtype

    @property
    def flops(self) -> int:
        return 2 * self.batch * self.m * self.k * self.n


def _conv_products(
    func_name: str, args: tuple[Any, ...], out: Any, dtype: torch.dtype
) -> list[Product]:
    """The im2col products of a convolution (forward) or its backward (input, weight)."""
    if func_name == "convolution":  # (input, weight, bias, ..., groups)
        w, y = args[1], out
        groups = int(args[8])
        mask = (True, False, False)
    else:  # convolution_backward(grad, input, weight, ..., groups, output_mask)
        y, w = args[0], args[2]
        groups = int(args[9])
        mask = tuple(bool(v) for v in args[10])
    spatial = math.prod(y.shape[2:]) * y.shape[0]  # output positions, all examples
    reduce = (w.shape[1]) * math.prod(w.shape[2:])  # input channels per group x kernel
    per_group = w.shape[0] // groups
    found = []
    if mask[0]:
        # forward: (positions, reduce) @ (reduce, out); backward to the input:
        # (positions, out) @ (out, reduce), the same count of multiply-adds
        found.append(Product(groups, spatial, reduce, per_group, dtype))
    if mask[1]:
        found.append(Product(groups, reduce, spatial, per_group, dtype))
    return found


def _products_of(func_name: str, args: tuple[Any, ...], out: Any) -> list[Product]:
    if func_name in ("convolution", "convolution_backward"):
        dtype = args[0].dtype
        return _conv_products(func_name, args, out, dtype)
    a, b = (args[1], args[2]) if func_name in ("addmm", "baddbmm") else (args[0], args[1])
    if a.dim() == 2:
        return [Product(1, a.shape[0], a.shape[1], b.shape[1], a.dtype)]
    return [Product(a.shape[0], a.shape[1], a.shape[2], b.shape[2], a.dtype)]


class _Recorder(TorchDispatchMode):
    """Every product of a run."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[Product] = []

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        name = func.overloadpacket.__name__
        if name in PRODUCTS:
            self.found.extend(_products_of(name, args, out))
        return out


def record_products(run: Callable[[], object]) -> list[Product]:
    """The products of one call of ``run`` (forward and backward, any module)."""
    with _Recorder() as recorder:
        run()
    return recorder.found


def plain_time(product: Product, device: torch.device, repeats: int = 5) -> float:
    """Best time of the plain product: fresh contiguous operands of the same shapes."""
    gen = torch.Generator().manual_seed(0)
    shape_a = (product.batch, product.m, product.k)
    shape_b = (product.batch, product.k, product.n)
    a = torch.randn(shape_a, generator=gen).to(device, product.dtype)
    b = torch.randn(shape_b, generator=gen).to(device, product.dtype)
    if product.batch == 1:
        a, b = a[0], b[0]
        run: Callable[[], object] = lambda: torch.mm(a, b)  # noqa: E731
    else:
        run = lambda: torch.bmm(a, b)  # noqa: E731
    # small products: time a loop of them so the timer's resolution does not count
    inner = max(1, min(1000, int(2e7 // max(product.flops, 1))))

    def many() -> None:
        for _ in range(inner):
            run()

    return min(timed(many, device, repeats, warmup=1)) / inner


class PlainTimes:
    """Plain-product times by shape, each measured once per run."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.cache: dict[Product, float] = {}

    def __call__(self, product: Product) -> float:
        if product not in self.cache:
            self.cache[product] = plain_time(product, self.device)
        return self.cache[product]

    def total(self, products: list[Product]) -> float:
        counts = Counter(products)
        return sum(self(p) * c for p, c in counts.items())


def _units(model: nn.Module) -> dict[str, nn.Module]:
    """The layers timed on their own: modules with parameters of their own, activations.

    A module that never runs on its own (an attention block's output projection, whose
    weight the block uses directly) records no input and is left out.
    """
    found = {}
    for name, m in model.named_modules():
        own = any(True for _ in m.parameters(recurse=False))
        if own or isinstance(m, nn.ReLU | nn.GELU | nn.Tanh | nn.Sigmoid):
            found[name] = m
    return found


def _capture_inputs(model: nn.Module, units: dict[str, nn.Module], run: Callable[[], object]):
    """The first input each unit received during ``run``."""
    seen: dict[str, tuple[Any, dict[str, Any]]] = {}
    hooks = []
    for name, m in units.items():

        def hook(_m: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], name=name) -> None:
            if name not in seen:
                seen[name] = (
                    tuple(a.detach().clone() if isinstance(a, Tensor) else a for a in args),
                    dict(kwargs),
                )

        hooks.append(m.register_forward_pre_hook(hook, with_kwargs=True))
    try:
        run()
    finally:
        for h in hooks:
            h.remove()
    return seen


def _unit_step(m: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Callable[[], None]:
    """Forward + backward of one module on its recorded input."""
    leaves = tuple(
        a.requires_grad_(True) if isinstance(a, Tensor) and a.is_floating_point() else a
        for a in args
    )
    out = m(*leaves, **kwargs)
    outs = out if isinstance(out, tuple) else (out,)
    first = next(o for o in outs if isinstance(o, Tensor))
    grad = torch.randn_like(first)

    def run() -> None:
        for p in m.parameters():
            p.grad = None
        for leaf in leaves:
            if isinstance(leaf, Tensor):
                leaf.grad = None
        result = m(*leaves, **kwargs)
        result = result if isinstance(result, tuple) else (result,)
        value = next(o for o in result if isinstance(o, Tensor))
        if value.requires_grad:
            value.backward(grad)

    return run


def _no_inplace(model: nn.Module) -> None:
    """Timed alone on a saved input, an in-place activation would need a copy first."""
    for m in model.modules():
        if getattr(m, "inplace", False):
            m.inplace = False


def preset_limits(workload: Workload, probe: MatmulProbe, repeats: int) -> dict[str, Any]:
    """One preset: each layer against its limit, the step against the step's limit."""
    device = probe.device
    torch.manual_seed(0)
    model = workload.build().to(device)
    inputs = workload.inputs(device)
    step = train_step(model, inputs)
    step()  # Adam's state, oneDNN's kernels
    products = record_products(step)
    plain = PlainTimes(device)
    flops = count_flops(step)
    units = _units(model)
    saved = _capture_inputs(model, units, lambda: model(*inputs))
    _no_inplace(model)
    layers = []
    for name, m in units.items():
        if name not in saved:
            continue
        run = _unit_step(m, *saved[name])
        mine = record_products(run)
        t = median(timed(run, device, repeats, warmup=1))
        limit = plain.total(mine)
        layers.append(
            {
                "layer": name,
                "kind": type(m).__name__,
                "time_s": t,
                "limit_s": limit,
                "gflop": sum(p.flops for p in mine) / 1e9,
                "of_limit": limit / t if t > 0 else None,
            }
        )
    ceilings = [probe.rate()]
    times = []
    for _ in range(repeats):
        times.extend(timed(step, device, 1, warmup=0))
        ceilings.append(probe.rate())
    step_time = median(times)
    step_limit = plain.total(products)
    return {
        "workload": workload.name,
        "step_s": step_time,
        "step_limit_s": step_limit,
        "step_of_limit": step_limit / step_time,
        "layers_limit_s": sum(r["limit_s"] for r in layers),
        "of_product_rate": flops / step_time / 1e9 / median(ceilings),
        "gflop": flops / 1e9,
        "layers": layers,
    }


#: The paper step's non-product time must be at most this share of the step.
OVERHEAD_TARGET = 0.20


def target_rows(
    limits: list[dict[str, Any]] | None, over: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """The targets of this section as rows of the report's target table."""
    rows = []
    for r in limits or []:
        rows.append(
            {
                "what": f"{r['workload']} step: limit of its products / step time",
                "target": f">= {STEP_TARGET:.0%}",
                "measured": f"{r['step_of_limit']:.0%} ({r['of_product_rate']:.0%} of the "
                "2048^2 product rate)",
                "met": r["step_of_limit"] >= STEP_TARGET,
            }
        )
    if over:
        rows.append(
            {
                "what": f"{over['workload']} step: non-product time / step",
                "target": f"<= {OVERHEAD_TARGET:.0%}",
                "measured": f"{over['non_product_share']:.0%} "
                f"({over['non_product_s'] * 1e3:.0f} of {over['step_s'] * 1e3:.0f} ms)",
                "met": over["non_product_share"] <= OVERHEAD_TARGET,
            }
        )
    return rows


#: Profiled op names by kind, for the non-product breakdown.
KINDS = {
    "products": ("mm", "addmm", "bmm", "baddbmm", "conv", "mkldnn", "linear", "matmul"),
    "recurrence": ("gru", "lstm", "rnn"),
    "norms": ("norm",),
    "gathers and scatters": ("index", "gather", "scatter", "take", "embedding"),
    "optimiser": ("adam", "foreach", "optim"),
    "copies and layout": (
        "copy",
        "clone",
        "contiguous",
        "cat",
        "stack",
        "pad",
        "to_copy",
        "unfold",
        "as_strided",
        "zero",
        "fill",
        "empty",
    ),
    "softmax and loss": ("softmax", "nll", "cross_entropy", "logsumexp"),
    "reductions": ("sum", "mean", "amax", "max", "min", "any", "all"),
    "element-wise": (
        "relu",
        "threshold",
        "add",
        "mul",
        "div",
        "sub",
        "sigmoid",
        "tanh",
        "gelu",
        "where",
        "masked",
        "exp",
        "log",
        "sqrt",
        "rsqrt",
        "neg",
        "clamp",
        "lt",
        "gt",
        "eq",
        "ne",
        "rand",
    ),
}


def kind_of(op: str) -> str:
    """The kind of a profiled aten op, by name (the first kind that matches)."""
    name = op.removeprefix("aten::").lower()
    for kind, words in KINDS.items():
        if any(w in name for w in words):
            return kind
    return "other"


def _profile(step: Callable[[], object], device: torch.device, steps: int) -> dict[str, float]:
    """Self time of every aten op over ``steps`` steps, summed by kind, per step."""
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as prof:
        for _ in range(steps):
            step()
        synchronize(device)
    totals: dict[str, float] = defaultdict(float)
    for event in prof.key_averages():
        if not event.key.startswith("aten::"):
            continue
        if device.type == "cuda":
            us = float(getattr(event, "self_device_time_total", 0.0))
        else:
            us = float(event.self_cpu_time_total)
        totals[kind_of(event.key)] += us / 1e6 / steps
    return dict(totals)


def overhead(workload: Workload, probe: MatmulProbe, repeats: int) -> dict[str, Any]:
    """Non-product time of a step: step minus its products at the in-run product rate."""
    device = probe.device
    torch.manual_seed(0)
    model = workload.build().to(device)
    step = train_step(model, workload.inputs(device))
    step()
    flops = count_flops(step)
    rates, times = [probe.rate()], []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        synchronize(device)
        times.append(time.perf_counter() - start)
        rates.append(probe.rate())
    step_time, rate = median(times), median(rates)
    product_time = flops / (rate * 1e9)
    profile = _profile(step, device, 2)
    profiled = sum(profile.values())
    return {
        "workload": workload.name,
        "step_s": step_time,
        "gflop": flops / 1e9,
        "product_rate_gflops": rate,
        "products_at_rate_s": product_time,
        "non_product_s": step_time - product_time,
        "non_product_share": 1 - product_time / step_time,
        "profile_s": dict(sorted(profile.items(), key=lambda kv: -kv[1])),
        "profiled_s": profiled,
    }


def markdown(
    limits: list[dict[str, Any]] | None,
    over: dict[str, Any] | None,
    table: Callable[[list[str], list[list[str]]], list[str]],
) -> list[str]:
    """The sections of the machine's report."""
    out: list[str] = []
    if limits:
        out += ["## Every preset against its own limit", ""]
        out += [
            "Limit: the step's products, each timed as a plain product of the same shapes "
            "and dtype on this machine (see `benchmarks/limits.py`). Target: step within "
            f"{STEP_TARGET:.0%} of its limit.",
            "",
        ]
        out += table(
            ["preset", "step ms", "limit ms", "limit / step", "of 2048^2 product rate"],
            [
                [
                    r["workload"],
                    f"{r['step_s'] * 1e3:.0f}",
                    f"{r['step_limit_s'] * 1e3:.0f}",
                    f"{r['step_of_limit']:.0%}",
                    f"{r['of_product_rate']:.0%}",
                ]
                for r in limits
            ],
        )
        for r in limits:
            out += [f"Layers of `{r['workload']}` (forward + backward, each on its own):", ""]
            out += table(
                ["layer", "kind", "ms", "limit ms", "limit / time"],
                [
                    [
                        x["layer"],
                        x["kind"],
                        f"{x['time_s'] * 1e3:.2f}",
                        f"{x['limit_s'] * 1e3:.2f}",
                        "-" if not x["limit_s"] else f"{x['of_limit']:.0%}",
                    ]
                    for x in r["layers"]
                ],
            )
    if over:
        out += [f"## Non-product time of the {over['workload']} step", ""]
        out += [
            f"Step {over['step_s'] * 1e3:.0f} ms; its {over['gflop']:.1f} GFLOP of products "
            f"at the product rate measured in the same loop ({over['product_rate_gflops']:.0f} "
            f"GFLOP/s) take {over['products_at_rate_s'] * 1e3:.0f} ms; the rest, "
            f"**{over['non_product_s'] * 1e3:.0f} ms ({over['non_product_share']:.0%})**, is "
            "non-product time. Where the step's time goes, by op kind (profiler self time "
            f"per step, {over['profiled_s'] * 1e3:.0f} ms in all; products here include "
            "what they lose against the 2048^2 rate):",
            "",
        ]
        out += table(
            ["kind", "ms per step", "share of profiled"],
            [
                [k, f"{v * 1e3:.1f}", f"{v / over['profiled_s']:.1%}"]
                for k, v in over["profile_s"].items()
            ],
        )
    return out
