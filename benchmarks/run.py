"""Run every benchmark on this machine; write its results file, its report and plots.

    python -m benchmarks.run        # full run: 10-12 minutes on 2 idle cores
    python -m benchmarks.run --only precision loop   # some sections, merged into the file
    python -m benchmarks.run --quick --out /tmp/bench   # smoke run, a few minutes
    python -m benchmarks.run --only corpus_io --corpus-files 2000   # corpus I/O, smaller

Results go to ``<out>/<machine>.json`` and ``<out>/<machine>.md``, where ``<machine>``
is the CPU model (the GPU's on CUDA) as a slug, and ``<out>/RESULTS.md`` sets every
machine kind found in ``<out>`` side by side (:mod:`benchmarks.machines`).

Uses CUDA when available (``--device cpu`` to force the CPU) and torch's default
thread count (``--threads`` to change it).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from string import Template
from typing import Any

import torch

from benchmarks import corpus_io as corpus_bench
from benchmarks import limits as limits_bench
from benchmarks import loop as loop_bench
from benchmarks import precision as precision_bench
from benchmarks.common import ROOT, MatmulProbe, bf16_support, machine_info, pick_device
from benchmarks.extraction import extraction
from benchmarks.machines import machine_key, merge, provenance, write_combined
from benchmarks.pipeline import pipeline
from benchmarks.report import _table, evaluate, markdown, note_values, plots
from benchmarks.steps import bench_workload, breakdown, core_sweeps, scaling
from benchmarks.threads import compare
from benchmarks.workloads import workloads

SECTIONS = (
    "steps",
    "limits",
    "overhead",
    "breakdown",
    "precision",
    "core",
    "extraction",
    "pipeline",
    "scaling",
    "threads",
    "loop",
    "corpus_io",
)

METHOD_NOTES = """
- **FLOPs** are counted by `torch.utils.flop_counter.FlopCounterMode` on one real
  training step (forward, backward, optimiser) of the code as it runs: matrix products,
  batched products and convolutions, 2 FLOPs per multiply-add. Element-wise work (norms,
  activations, Adam) is not counted, so it can only lower the achieved rate.
- **Ratio to the ceiling**: before every timed repeat and after the last, two float32
  products of two square matrices are timed; each repeat's rate is divided by the mean
  of the probes on either side, and the table reports the median ratio. On a machine
  shared with other jobs the absolute times move with the load; the ratio much less.
  The "median ms" and "GFLOP/s" columns are medians over the repeats after two warm-up
  steps.
- **Peak memory** (CPU): each workload runs again in a fresh process; the number is the
  resident-set high-water mark (VmHWM, as `getrusage().ru_maxrss`) after 3 steps minus
  the resident set after building the model, the optimiser and the inputs. It includes
  the optimiser's state, created on the first step, and whatever the allocator keeps.
  On CUDA: `torch.cuda.max_memory_allocated` minus the allocation before the first step.
- **Prediction core share**: forward + backward of `InfoNCE` on the paper step's own
  `z` and predictions (detached), against whole steps timed in the same loop.
- **Extraction** runs `cpc.features.extract.extract_sequence` on one long recording, as
  `cpc extract` does for every file. bf16 is `torch.autocast(dtype=torch.bfloat16)`:
  products in bf16, the recurrent context in float32.
- **bf16 training** (`precision`): see `benchmarks/precision.py`; every variant's
  speed-up is over float32 in the same loop, beside the ratio of the two product rates
  probed in that loop.
- **Training loop** (`loop`): see `benchmarks/loop.py`.
- **Adam** is torch's fused kernel in every step timed here, as in the trainer.
"""


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--quick", action="store_true", help="few repeats, small sweeps")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, help="run these sections only")
    parser.add_argument(
        "--workloads", nargs="+", help="the steps section times these workloads only"
    )
    parser.add_argument(
        "--loop-steps",
        type=int,
        default=500,
        help="steps of the loop section (below 500: validation and checkpoints every "
        "half of them, as often per step as 500 steps of the preset or more)",
    )
    parser.add_argument(
        "--corpus-files",
        type=int,
        default=100_000,
        help="files of the corpus_io section (written once into --corpus-cache)",
    )
    parser.add_argument("--corpus-cache", type=Path, default=corpus_bench.DEFAULT_CACHE)
    return parser.parse_args()


def _say(message: str, start: float) -> None:
    print(f"[{time.perf_counter() - start:6.0f} s] {message}", flush=True)


def main() -> None:
    args = _parse()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    sections = args.only or SECTIONS
    quick = args.quick
    start = time.perf_counter()
    results: dict[str, Any] = {"machine": machine_info(device), "quick": quick}
    results["machine"]["omp_wait_policy"] = os.environ.get("OMP_WAIT_POLICY")
    results["machine"]["gomp_spincount"] = os.environ.get("GOMP_SPINCOUNT")
    _say(f"device {device}, {torch.get_num_threads()} threads", start)

    probe = MatmulProbe(device)
    results["ceilings"] = {"float32": probe.measure(3 if quick else 7)}
    if bf16_support(device)[0]:
        results["ceilings"]["bf16"] = MatmulProbe(device, torch.bfloat16).measure(3 if quick else 7)
    _say(f"ceilings {json.dumps(results['ceilings'])}", start)

    presets = workloads(device)
    paper = presets["paper"]

    def section_steps() -> None:
        repeats = {"paper": 5, "small": 5, "signal": 5, "image": 2, "image_small": 3}
        results["steps"] = []
        for name, workload in presets.items():
            if args.workloads and name not in args.workloads:
                continue
            r = bench_workload(workload, probe, 1 if quick else repeats[name], memory=True)
            results["steps"].append(r)
            _say(
                f"step {name}: {r['time_s'] * 1e3:.0f} ms, {r['gflops']:.0f} GFLOP/s, "
                f"{r['ratio_to_ceiling']:.0%} of matmul, {r['memory']['step_peak_mb']:.0f} MB",
                start,
            )

    def section_limits() -> None:
        chosen = [n for n in presets if not args.workloads or n in args.workloads]
        results["limits"] = []
        for name in chosen:
            r = limits_bench.preset_limits(presets[name], probe, 1 if quick else 3)
            results["limits"].append(r)
            _say(
                f"limits {name}: step {r['step_s'] * 1e3:.0f} ms, limit "
                f"{r['step_limit_s'] * 1e3:.0f} ms ({r['step_of_limit']:.0%}), "
                f"{r['of_product_rate']:.0%} of the 2048^2 rate",
                start,
            )

    def section_overhead() -> None:
        results["overhead"] = limits_bench.overhead(paper, probe, 2 if quick else 5)
        _say(
            f"overhead: non-product {results['overhead']['non_product_share']:.0%} of the step",
            start,
        )

    def section_breakdown() -> None:
        results["breakdown"] = breakdown(paper, device, 1 if quick else 3)
        _say("breakdown done", start)

    def section_precision() -> None:
        probes = {"float32": probe}
        if bf16_support(device)[0]:
            probes["bf16"] = MatmulProbe(device, torch.bfloat16)
        results["precision"] = precision_bench.precision(paper, probes, 2 if quick else 7)
        rows = results["precision"]["rows"]
        _say(
            "precision "
            + ", ".join(f"{r['variant']}: {r['time_s'] * 1e3:.0f} ms" for r in rows)
            + f"; products bf16/float32 {results['precision'].get('product_ratio', 0):.2f}x",
            start,
        )

    def section_core() -> None:
        if quick:
            results["core"] = core_sweeps(
                device, 1, (64, 128), (1, 12), (8, 16), (1 << 19, 1 << 21)
            )
        else:
            results["core"] = core_sweeps(device, 5)
        _say("prediction core sweeps done", start)

    def section_extraction() -> None:
        model = paper.build()
        results["extraction"] = extraction(model, device, 10.0 if quick else 60.0, repeats=3)
        _say(f"extraction {json.dumps(results['extraction']['rows'])}", start)

    def section_pipeline() -> None:
        step_time = next(
            (r["time_s"] for r in results.get("steps", []) if r["workload"] == "paper"),
            None,
        )
        if step_time is None and "breakdown" in results:
            step_time = results["breakdown"]["step_time_s"]
        if step_time is not None:
            results["pipeline"] = pipeline(step_time, batches=3 if quick else 10)
            _say("pipeline done", start)

    def section_scaling() -> None:
        if quick:
            results["scaling"] = scaling(paper, device, 1, (4, 8), (10240, 20480))
        else:
            results["scaling"] = scaling(paper, device, 2)
        _say("scaling done", start)

    def section_threads() -> None:
        results["threads"] = compare(1 if quick else 3)
        _say("thread settings done", start)

    def section_loop() -> None:
        steps = 40 if quick else args.loop_steps
        periodic = (
            [] if steps >= 500 else [f"run.val_every={steps // 2}", f"run.ckpt_every={steps // 2}"]
        )
        variants = {"preset as shipped": periodic}
        results["loop"] = loop_bench.loop(
            presets["small"],
            steps=steps,
            corpus_minutes=5 if quick else 10,
            variants=variants,
            bare_repeats=5 if quick else 10,
        )
        _say(f"loop {[round(r['ratio'], 3) for r in results['loop']['rows']]}", start)

    def section_corpus_io() -> None:
        step_time = next(
            (r["time_s"] for r in results.get("steps", []) if r["workload"] == "paper"),
            None,
        )
        if step_time is None:  # the steps section's own timing of the paper step
            step_time = bench_workload(paper, probe, 1 if quick else 3, memory=False)["time_s"]
        files = min(args.corpus_files, 500) if quick else args.corpus_files
        results["corpus_io"] = corpus_bench.corpus_io(
            step_time, files, args.corpus_cache, batches=10 if quick else 40
        )
        _say(corpus_bench.target_row(results["corpus_io"])["measured"], start)

    runners = {
        "steps": section_steps,
        "limits": section_limits,
        "overhead": section_overhead,
        "breakdown": section_breakdown,
        "precision": section_precision,
        "core": section_core,
        "extraction": section_extraction,
        "pipeline": section_pipeline,
        "scaling": section_scaling,
        "threads": section_threads,
        "loop": section_loop,
        "corpus_io": section_corpus_io,
    }
    cpu_only = {"threads", "loop"}
    targets: list[dict[str, Any]] = []
    for name in SECTIONS:
        if name not in sections or (name in cpu_only and device.type != "cpu"):
            continue
        try:  # one failing section must not lose the others (a GPU run is one try)
            runners[name]()
        except Exception as error:  # reported in the results and the log
            results.setdefault("errors", {})[name] = f"{type(error).__name__}: {error}"
            _say(f"section {name} FAILED: {type(error).__name__}: {error}", start)
        targets = _write(results, start, args.out)  # after every section: a run cut
        # short (a GPU machine's time limit) keeps what it measured
    for t in targets:
        print(f"  {t['what']}: {t['measured']} (target {t['target']}): met={t['met']}")
    _say("done", start)


def _write(results: dict[str, Any], start: float, out: Path) -> list[dict[str, Any]]:
    """Stamp the run so far (load, duration, each section's provenance) and write it."""
    results["machine"]["load_average_end"] = (
        list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    )
    results["duration_s"] = time.perf_counter() - start
    results["sections"] = {k: provenance(results["machine"]) for k in SECTIONS if k in results}
    return write_results(results, out)


def write_results(results: dict[str, Any], out: Path) -> list[dict[str, Any]]:
    """Merge a run into its machine's file in ``out``; write the reports; the targets."""
    out.mkdir(parents=True, exist_ok=True)
    key = machine_key(results["machine"])
    path = out / f"{key}.json"
    if path.is_file():
        results = merge(json.loads(path.read_text()), results)
    results["targets"] = evaluate(results)
    if "precision" in results:
        results["targets"].append(precision_bench.target_row(results["precision"]))
    if "loop" in results:
        results["targets"].append(loop_bench.target_row(results["loop"]))
    if "corpus_io" in results:
        results["targets"].append(corpus_bench.target_row(results["corpus_io"]))
    results["targets"] += limits_bench.target_rows(results.get("limits"), results.get("overhead"))
    results["plots"] = plots(results, out, prefix=f"{key}-")
    notes = METHOD_NOTES
    findings = ROOT / "benchmarks" / "NOTES.md"  # what changed, floors: written by hand
    if findings.is_file():  # its $name fields take this run's numbers
        notes += "\n" + Template(findings.read_text()).safe_substitute(note_values(results))
    extra = []
    if "precision" in results:
        extra += precision_bench.markdown(results["precision"], _table)
    if "loop" in results:
        extra += loop_bench.markdown(results["loop"], _table)
    if "corpus_io" in results:
        extra += corpus_bench.markdown(results["corpus_io"], _table)
    extra += limits_bench.markdown(results.get("limits"), results.get("overhead"), _table)
    path.write_text(json.dumps(results, indent=1) + "\n")
    (out / f"{key}.md").write_text(markdown(results, notes, extra))
    write_combined(out)
    print(f"wrote {path}, {key}.md, RESULTS.md, {', '.join(results['plots'])}", flush=True)
    return list(results["targets"])


if __name__ == "__main__":
    main()
