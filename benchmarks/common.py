"""Timing, FLOP counting, the machine's own ceilings and its description.

Every rate in the results is measured on the machine that runs the benchmark, in the
same process and close in time to what it is compared with: on a shared machine the
absolute numbers move with the load, the ratios much less.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parent.parent


def pick_device(name: str = "auto") -> torch.device:
    """``cuda`` when available (or asked for), else ``cpu``."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def synchronize(device: torch.device) -> None:
    """Wait for queued kernels, so a timer measures the work and not its launch."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(
    fn: Callable[[], object], device: torch.device, repeats: int, warmup: int = 1
) -> list[float]:
    """Wall-clock seconds of ``repeats`` calls of ``fn`` after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return times


def median(values: list[float]) -> float:
    """The median (robust to the one slow repeat a busy machine produces)."""
    return float(statistics.median(values))


def count_flops(fn: Callable[[], object]) -> int:
    """Floating-point operations of one call, counted by torch's FLOP counter.

    The counter adds up matrix products, convolutions and attention (2 per multiply-
    add), forward and backward; element-wise work (norms, activations, the optimiser)
    is not counted, so it only ever lowers the achieved rate.
    """
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


class MatmulProbe:
    """The machine's matrix-product rate: square products of ``size`` in ``dtype``.

    ``rate()`` times ``products`` products and returns GFLOP/s; called between the
    repeats of a measurement it gives the ceiling at that moment, so a ratio holds on a
    machine whose load changes during the run.
    """

    def __init__(
        self, device: torch.device, dtype: torch.dtype = torch.float32, size: int | None = None
    ) -> None:
        self.device = device
        self.size = size or (8192 if device.type == "cuda" else 2048)
        gen = torch.Generator(device="cpu").manual_seed(0)
        self.a = torch.randn(self.size, self.size, generator=gen).to(device, dtype)
        self.b = torch.randn(self.size, self.size, generator=gen).to(device, dtype)
        self.rate()  # warm-up: the first product pays for allocation and dispatch

    def rate(self, products: int = 2) -> float:
        times = timed(lambda: self.a @ self.b, self.device, products, warmup=0)
        return 2 * self.size**3 / median(times) / 1e9

    def measure(self, repeats: int = 7) -> dict[str, Any]:
        rates = [self.rate() for _ in range(repeats)]
        return {"size": self.size, "gflops_median": median(rates), "gflops_max": max(rates)}


def versus_ceiling(
    fn: Callable[[], object],
    flops: int,
    probe: MatmulProbe,
    repeats: int,
    warmup: int = 2,
) -> dict[str, Any]:
    """Time ``fn`` with a ceiling probe before every repeat and after the last.

    Each repeat's rate is divided by the mean of the probes on either side of it; the
    reported ratio is the median of those per-repeat ratios.
    """
    for _ in range(warmup):
        fn()
    synchronize(probe.device)
    ceilings = [probe.rate()]
    times = []
    for _ in range(repeats):
        times.extend(timed(fn, probe.device, 1, warmup=0))
        ceilings.append(probe.rate())
    ratios = [flops / t / 1e9 / ((ceilings[i] + ceilings[i + 1]) / 2) for i, t in enumerate(times)]
    t = median(times)
    return {
        "time_s": t,
        "times_s": times,
        "gflop": flops / 1e9,
        "gflops": flops / t / 1e9,
        "ceiling_gflops": median(ceilings),
        "ratio_to_ceiling": median(ratios),
    }


def bf16_support(device: torch.device) -> tuple[bool, str]:
    """Whether bf16 products run natively here, and how that was decided."""
    if device.type == "cuda":
        ok = torch.cuda.is_bf16_supported()
        return ok, "torch.cuda.is_bf16_supported()"
    ok = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return ok, "torch.ops.mkldnn._is_mkldnn_bf16_supported() (AVX512-BF16 or AMX)"


def cpu_model() -> str:
    """The CPU's name from /proc/cpuinfo (``platform.processor()`` elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_flags() -> list[str]:
    """The SIMD flags that decide the CPU's matrix-product rate."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = line.split(":", 1)[1].split()
                return sorted(f for f in flags if f.startswith(("avx", "amx", "fma")))
    except OSError:
        pass
    return []


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip()


def git_commit() -> str | None:
    """The checked-out commit, marked ``+changes`` when the measured code differs from it."""
    commit = _git("rev-parse", "--short", "HEAD")
    if not commit:
        return None
    changed = _git("status", "--porcelain", "--untracked-files=no", "--", "cpc", "benchmarks")
    return commit + (" +changes" if changed else "")


def machine_info(device: torch.device) -> dict[str, Any]:
    """Where the numbers come from: hardware, software and load."""
    info: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": " ".join(["python", "-m", "benchmarks.run", *sys.argv[1:]]),
        "git_commit": git_commit(),
        "device": str(device),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_flags": cpu_flags(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "mkldnn": torch.backends.mkldnn.is_available(),
        "bf16_native": bf16_support(device)[0],
        "load_average_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info
