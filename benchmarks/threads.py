"""The paper step under other thread settings, each in a fresh process.

How OpenMP threads wait between parallel regions is fixed when torch starts, so each
setting runs in its own interpreter: the GNU OpenMP default (spin about 300000 rounds,
then sleep), the benchmark's short spin (1000 rounds, see :mod:`benchmarks`), passive
waiting, and one thread. Each reports its median step time and
its ratio to a float32 matrix-product probe timed between its own repeats.

Run as ``python -m benchmarks.threads --threads 2``; prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from typing import Any

import torch

from benchmarks.common import ROOT, MatmulProbe, count_flops, pick_device, versus_ceiling
from benchmarks.workloads import train_step, workloads

#: name -> (environment, threads); None threads: the caller's count.
SETTINGS: dict[str, tuple[dict[str, str], int | None]] = {
    "GNU OpenMP default (GOMP_SPINCOUNT=300000)": ({"GOMP_SPINCOUNT": "300000"}, None),
    "short spin (GOMP_SPINCOUNT=1000, this benchmark)": ({"GOMP_SPINCOUNT": "1000"}, None),
    "no spin (OMP_WAIT_POLICY=PASSIVE)": ({"OMP_WAIT_POLICY": "PASSIVE"}, None),
    "one thread": ({"GOMP_SPINCOUNT": "1000"}, 1),
}


def measure_here(repeats: int) -> dict[str, Any]:
    device = pick_device("cpu")
    workload = workloads(device)["paper"]
    torch.manual_seed(0)
    step = train_step(workload.build(), workload.inputs(device))
    flops = count_flops(step)
    result = versus_ceiling(step, flops, MatmulProbe(device), repeats)
    result["threads"] = torch.get_num_threads()
    return result


def compare(repeats: int) -> list[dict[str, Any]]:
    """Every setting of :data:`SETTINGS`, in fresh processes (CPU only)."""
    rows = []
    for name, (env, threads) in SETTINGS.items():
        clean = {
            k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
        }
        count = threads or torch.get_num_threads()
        cmd = [sys.executable, "-m", "benchmarks.threads", "--threads", str(count)]
        cmd += ["--repeats", str(repeats)]
        out = subprocess.run(
            cmd, cwd=ROOT, env={**clean, **env}, capture_output=True, text=True, check=True
        )
        result = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append({"setting": name, "environment": env, **result})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(json.dumps(measure_here(args.repeats)))


if __name__ == "__main__":
    main()
