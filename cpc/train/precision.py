"""``run.precision=auto``: bf16 where this device's bf16 products are clearly faster.

The rule: bf16 autocast where the device's bf16 matrix products run at least
:data:`AUTO_BF16_SPEEDUP` times its float32 products, float32 elsewhere. The ratio is
measured once per device kind (CPU model and SIMD flags, or GPU name; torch version and
thread count) and kept in a small JSON file under the user's cache directory
(``$CPC_CACHE_DIR``, else ``$XDG_CACHE_HOME/cpc``, else ``~/.cache/cpc``), so later runs
decide at once. A CPU without native bf16 (neither AVX-512 BF16 nor AMX) and a GPU
without bf16 take float32 without measuring: oneDNN would emulate bf16 there, slower.

A run keeps the precision it started with: the resolved choice (never ``auto``) is
what the trainer writes into ``config.yaml`` and every checkpoint, and
:func:`choose_precision` reads it back from the run's newest checkpoint on resume, so
a run started on a bf16 machine and resumed elsewhere (or after the cache changed)
does not switch precision half-way.

Why 1.5: on the 2-core AMD EPYC (AVX-512 BF16, bf16 products 2.2-2.5x float32) the bf16
paper step ran 1.9-2.05x faster with the same loss (``benchmarks/NOTES.md``); below about
1.5x the casts autocast adds eat most of what the products gain.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from cpc.checkpoints.store import CheckpointError, latest_checkpoint, read_meta
from cpc.config import Config
from cpc.train.steps import cpu_supports_bf16, resolve_precision

logger = logging.getLogger(__name__)

#: bf16 products must run at least this many times float32's for ``auto`` to pick bf16.
AUTO_BF16_SPEEDUP = 1.5
#: The cache file's name inside the cache directory.
CACHE_NAME = "precision.json"


@dataclass(frozen=True)
class ProductRatio:
    """How much faster this device multiplies in bf16 than in float32.

    Attributes:
        key: the device kind the ratio belongs to (the cache's key).
        ratio: bf16 over float32 product rate (0 when bf16 is not native: not measured).
        source: ``"measured"``, ``"cache"`` or why nothing was measured.

    """

    key: str
    ratio: float
    source: str


def cache_dir() -> Path:
    """Where measured ratios are kept: ``$CPC_CACHE_DIR`` or the XDG cache directory."""
    explicit = os.environ.get("CPC_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cpc"


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown cpu"


def device_key(device: torch.device) -> str:
    """A device kind: what decides its product rates (model, SIMD level, torch, threads)."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = f"{_cpu_name()} {torch.backends.cpu.get_cpu_capability()}"
        name += f" {torch.get_num_threads()} threads"
    return f"{device.type}: {name}; torch {torch.__version__}"


def bf16_native(device: torch.device) -> bool:
    """Whether bf16 products run natively here (else oneDNN/cuBLAS would emulate them)."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    return device.type == "cpu" and cpu_supports_bf16()


def measure_ratio(device: torch.device, size: int = 1024, repeats: int = 5) -> float:
    """bf16 over float32 rate of ``size``-square products, best of ``repeats`` each.

    The two dtypes alternate, so a load change on a shared machine hits both; the best
    time of each is the least disturbed. About 0.1-0.3 s on a 2-core CPU.
    """
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=gen).to(device)
    b = torch.randn(size, size, generator=gen).to(device)
    operands = {torch.float32: (a, b), torch.bfloat16: (a.bfloat16(), b.bfloat16())}
    best = {dtype: float("inf") for dtype in operands}
    for _ in range(repeats + 1):  # the first round warms up both kernels
        for dtype, (x, y) in operands.items():
            _synchronize(device)
            start = time.perf_counter()
            x @ y
            _synchronize(device)
            best[dtype] = min(best[dtype], time.perf_counter() - start)
    return best[torch.float32] / best[torch.bfloat16]


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def product_ratio(
    device: torch.device,
    measure: Callable[[torch.device], float] = measure_ratio,
    folder: Path | None = None,
) -> ProductRatio:
    """The device's bf16/float32 product ratio: from the cache, else measured and cached."""
    key = device_key(device)
    if not bf16_native(device):
        return ProductRatio(key, 0.0, "no native bf16")
    path = (folder or cache_dir()) / CACHE_NAME
    try:
        cached = json.loads(path.read_text())
    except (OSError, ValueError):
        cached = {}
    if not isinstance(cached, dict):
        cached = {}
    entry = cached.get(key)
    if isinstance(entry, dict) and isinstance(entry.get("ratio"), int | float):
        return ProductRatio(key, float(entry["ratio"]), f"cache {path}")
    ratio = measure(device)
    cached[key] = {"ratio": round(ratio, 3), "measured": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    try:  # a read-only home must not stop a run: the choice is only not remembered
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(cached, indent=1) + "\n")
        os.replace(tmp, path)
    except OSError as error:
        logger.warning("could not cache the bf16 product ratio in %s: %s", path, error)
    return ProductRatio(key, ratio, "measured")


def auto_precision(
    device: torch.device, measure: Callable[[torch.device], float] = measure_ratio
) -> str:
    """``bf16`` where bf16 products run >= :data:`AUTO_BF16_SPEEDUP` x float32, else ``fp32``."""
    found = product_ratio(device, measure)
    choice = "bf16" if found.ratio >= AUTO_BF16_SPEEDUP else "fp32"
    logger.info(
        "run.precision=auto: %s (bf16 products %.2fx float32 on %s, %s; bf16 from %.1fx)",
        choice,
        found.ratio,
        found.key,
        found.source,
        AUTO_BF16_SPEEDUP,
    )
    return choice


def _started_with(out_dir: str | Path) -> str | None:
    """The resolved precision saved in the run's newest checkpoint, if any."""
    latest = latest_checkpoint(out_dir)
    if latest is None:
        return None
    try:
        saved = read_meta(latest).get("config", {}).get("run", {}).get("precision")
    except (CheckpointError, OSError, ValueError, AttributeError):
        return None
    return saved if saved in ("fp32", "bf16", "fp16") else None


def choose_precision(
    requested: str,
    device: torch.device,
    out_dir: str | Path,
    measure: Callable[[torch.device], float] = measure_ratio,
) -> str:
    """The precision a run trains in: ``fp32``, ``bf16`` or ``fp16``.

    An explicit request goes through :func:`cpc.train.steps.resolve_precision`
    (fallbacks with a warning). ``auto`` resumes in the precision saved in the run's
    newest checkpoint; a new run decides by :func:`auto_precision`.
    """
    if requested != "auto":
        return resolve_precision(device, requested)
    saved = _started_with(out_dir)
    if saved is not None:
        logger.info("run.precision=auto: %s, as the run started (its checkpoint)", saved)
        return resolve_precision(device, saved)
    return auto_precision(device, measure)


def record_precision(config: Config, precision: str) -> Config:
    """``config`` with ``run.precision=auto`` replaced by the precision it resolved to.

    The trainer saves this config in ``config.yaml`` and every checkpoint, which is how
    a resumed ``auto`` run finds its first choice. Explicit requests are kept as given.
    """
    if config.run.precision != "auto":
        return config
    return replace(config, run=replace(config.run, precision=precision))  # type: ignore[arg-type]
