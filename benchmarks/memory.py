"""Peak memory of training steps, each workload in a fresh process.

On CPU, torch has no allocator statistics, so the step's memory is read from the
kernel: ``baseline`` is the resident set (VmRSS) after importing torch, building the
model and the optimiser and allocating the inputs; ``peak`` is the process's resident
high-water mark (VmHWM, the same as ``getrusage().ru_maxrss``) after ``steps`` steps.
``peak - baseline`` is what the steps added: activations, gradients, the optimiser's
state (created on the first step) and the allocator's slack. It is an upper bound on
live tensor memory. On CUDA the same numbers come from ``torch.cuda.memory_allocated``
and ``torch.cuda.max_memory_allocated``.

Run as ``python -m benchmarks.memory paper --batch 8 --window 20480``; prints JSON.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import ROOT, pick_device
from benchmarks.workloads import Workload, train_step, workloads


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def measure_here(workload: Workload, device: torch.device, steps: int = 3) -> dict[str, Any]:
    """Build, run ``steps`` steps and report memory in MB (this process)."""
    torch.manual_seed(0)
    model = workload.build().to(device)
    step = train_step(model, workload.inputs(device))
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        baseline = torch.cuda.memory_allocated(device)
        for _ in range(steps):
            step()
        torch.cuda.synchronize(device)
        peak = torch.cuda.max_memory_allocated(device)
        method = "torch.cuda.max_memory_allocated - memory_allocated before the first step"
    else:
        baseline = _status_kb("VmRSS") * 1024
        for _ in range(steps):
            step()
        peak = _status_kb("VmHWM") * 1024
        method = "VmHWM (peak RSS) - VmRSS before the first step, fresh process"
    mb = 1024 * 1024
    return {
        "baseline_mb": baseline / mb,
        "peak_mb": peak / mb,
        "step_peak_mb": (peak - baseline) / mb,
        "steps": steps,
        "method": method,
    }


def measure_in_subprocess(workload: Workload, device: torch.device) -> dict[str, Any]:
    """Run :func:`measure_here` in a fresh interpreter with this one's thread count."""
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.memory",
        workload.name,
        "--batch",
        str(workload.batch),
        "--window",
        str(workload.window),
        "--device",
        device.type,
        "--threads",
        str(torch.get_num_threads()),
    ]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workload")
    parser.add_argument("--batch", type=int)
    parser.add_argument("--window", type=int)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    workload = workloads(device)[args.workload].with_shape(args.batch, args.window)
    print(json.dumps(measure_here(workload, device, args.steps)))


if __name__ == "__main__":
    main()
