"""``cpc pretrain``'s training loop against its bare step, on the small speech preset.

The loop is :func:`cpc.train.trainer.train` as ``cpc pretrain`` runs it: the preset's
data loading, logging, validation and checkpoint intervals and the progress bar, on a
corpus from the built-in eSpeak generator (made once in a temporary folder). Every
optimiser step is time-stamped through the ``on_step`` hook; the loop's rate is the
steps after the first ``warmup`` divided by the time they took, validation and
checkpoints included.

The bare step is :func:`benchmarks.workloads.train_step` on the same preset and batch
shape (random input, no loader, no logging), timed right before and right after the
loop; the loop's rate is compared with the mean of the two medians. Steps that held a
validation or a checkpoint are also reported apart, so the per-step overhead (data,
logging, the bar) and the periodic one can be told apart.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import ROOT, median
from benchmarks.workloads import Workload, train_step
from cpc.config import load_config
from cpc.data.corpora.espeak import build_espeak_corpus
from cpc.train.steps import resolve_precision
from cpc.train.trainer import train

PRESET = "configs/speech_small_cpu.yaml"


def _bare(workload: Workload, precision: str, repeats: int) -> tuple[float, float]:
    """Median wall-clock and CPU seconds of the bare step (forward, backward, Adam)."""
    torch.manual_seed(0)
    cpu = torch.device("cpu")
    step = train_step(
        workload.build(), workload.inputs(cpu), precision=resolve_precision(cpu, precision)
    )
    for _ in range(2):
        step()
    wall, used = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        step()
        wall.append(time.perf_counter() - start)
        used.append(time.process_time() - start_cpu)
    return median(wall), median(used)


def _run(
    corpus: Path, out_dir: Path, steps: int, overrides: list[str]
) -> list[tuple[float, float]]:
    """Train ``steps`` steps; the wall-clock and CPU time after every optimiser step."""
    config = load_config(
        ROOT / PRESET,
        [
            f"data.train={corpus / 'manifest.csv'}",
            f"run.out_dir={out_dir}",
            f"optim.max_steps={steps}",
            "run.device=cpu",
            *overrides,
        ],
    )
    stamps: list[tuple[float, float]] = []
    train(
        config,
        on_step=lambda _step, _model: stamps.append((time.perf_counter(), time.process_time())),
    )
    return stamps


def loop(
    workload: Workload,
    steps: int = 500,
    warmup: int = 10,
    corpus_minutes: float = 10.0,
    variants: dict[str, list[str]] | None = None,
    bare_repeats: int = 20,
) -> dict[str, Any]:
    """The loop's steady-state steps per second against the bare step's, per variant.

    ``variants`` maps a name to config overrides (the preset as shipped: ``[]``);
    validation and checkpoint intervals come from the preset unless overridden.
    """
    variants = variants or {"preset as shipped": []}
    work = Path(tempfile.mkdtemp(prefix="cpc-bench-loop-"))
    try:
        corpus = work / "corpus"
        build_espeak_corpus(corpus, minutes=corpus_minutes, num_speakers=8, seed=0)
        rows = []
        for name, overrides in variants.items():
            precision = next(
                (o.split("=", 1)[1] for o in overrides if o.startswith("run.precision=")), "fp32"
            )
            before, before_cpu = _bare(workload, precision, bare_repeats)
            times = _run(corpus, work / f"run{len(rows)}", steps, overrides)
            after, after_cpu = _bare(workload, precision, bare_repeats)
            config = load_config(ROOT / PRESET, overrides)
            stamps = [wall for wall, _ in times]
            loop_cpu = (times[-1][1] - times[warmup][1]) / (len(times) - 1 - warmup)
            intervals = [b - a for a, b in zip(stamps[warmup:], stamps[warmup + 1 :], strict=False)]
            periodic = {
                s
                for s in range(warmup + 2, steps + 1)
                if s % config.run.val_every == 0 or s % config.run.ckpt_every == 0
            }
            plain = [t for s, t in enumerate(intervals, warmup + 2) if s not in periodic]
            held = [t for s, t in enumerate(intervals, warmup + 2) if s in periodic]
            loop_s = (stamps[-1] - stamps[warmup]) / (len(stamps) - 1 - warmup)
            bare_s = (before + after) / 2
            rows.append(
                {
                    "variant": name,
                    "overrides": overrides,
                    "steps": steps,
                    "warmup": warmup,
                    "loop_step_s": loop_s,
                    "loop_median_plain_step_s": median(plain),
                    "periodic_steps": len(periodic),
                    "periodic_extra_s": sum(held) - len(held) * median(plain),
                    "bare_step_s_before": before,
                    "bare_step_s_after": after,
                    "ratio": bare_s / loop_s,
                    "loop_cpu_s": loop_cpu,
                    "bare_cpu_s": (before_cpu + after_cpu) / 2,
                    "cpu_ratio": (before_cpu + after_cpu) / 2 / loop_cpu,
                }
            )
        return {
            "preset": PRESET,
            "batch": workload.batch,
            "window": workload.window,
            "corpus_minutes": corpus_minutes,
            "threads": torch.get_num_threads(),
            "rows": rows,
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


def target_row(result: dict[str, Any]) -> dict[str, Any]:
    """The loop target (the preset as shipped) as a row of the report's target table."""
    r = result["rows"][0]
    return {
        "what": f"training loop ({r['variant']}): steady-state steps/s / bare step's",
        "target": ">= 90%",
        "measured": f"{r['ratio']:.0%} ({1 / r['loop_step_s']:.2f} against "
        f"{2 / (r['bare_step_s_before'] + r['bare_step_s_after']):.2f} steps/s); "
        f"in CPU time {r['cpu_ratio']:.0%}",
        "met": r["ratio"] >= 0.9,
    }


def markdown(result: dict[str, Any], table: Any) -> list[str]:
    """The section of the machine's report."""
    out = ["## Training loop against the bare step", ""]
    out += [
        f"`cpc pretrain {result['preset']}` on a {result['corpus_minutes']:g}-minute espeak "
        f"corpus (batch {result['batch']} x {result['window']}, {result['threads']} "
        "threads): logging, validation, checkpoints and the progress bar included. "
        "The bare step is timed just before and just after each run. CPU time (this "
        "process, all threads) per step is reported beside the wall clock: on a machine "
        "whose load swings between the runs it is the comparison that holds.",
        "",
    ]
    out += table(
        [
            "variant",
            "steps (warm-up)",
            "loop ms / step",
            "median plain step ms",
            "validation + checkpoints, s",
            "bare ms before / after",
            "loop / bare rate",
            "CPU ms / step, loop / bare",
            "loop / bare, CPU time",
        ],
        [
            [
                r["variant"],
                f"{r['steps']} ({r['warmup']})",
                f"{r['loop_step_s'] * 1e3:.0f}",
                f"{r['loop_median_plain_step_s'] * 1e3:.0f}",
                f"{r['periodic_extra_s']:.1f} ({r['periodic_steps']} steps)",
                f"{r['bare_step_s_before'] * 1e3:.0f} / {r['bare_step_s_after'] * 1e3:.0f}",
                f"{r['ratio']:.0%}",
                f"{r['loop_cpu_s'] * 1e3:.0f} / {r['bare_cpu_s'] * 1e3:.0f}",
                f"{r['cpu_ratio']:.0%}",
            ]
            for r in result["rows"]
        ],
    )
    return out
