"""Targets, the Markdown report and the plots, from the results dictionary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: The targets of the benchmark issue, on the machine that runs it.
TARGETS = {
    "paper_step_ratio": 0.60,  # achieved / measured float32 matrix-product rate
    "core_share": 0.10,  # prediction core / paper step, 128 negatives, 12 offsets
    "paper_step_memory_mb": 1.5e9 / 2**20,  # 1.5 GB
    "extraction_rtf_float32": 25.0,
    "pipeline_share": 0.05,
}


def evaluate(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per target: what was asked, what was measured, whether it holds."""
    rows: list[dict[str, Any]] = []
    steps = {r["workload"]: r for r in results.get("steps", [])}
    if "paper" in steps:
        paper = steps["paper"]
        rows.append(
            _row(
                "paper step: achieved / float32 matmul rate",
                f">= {TARGETS['paper_step_ratio']:.0%}",
                f"{paper['ratio_to_ceiling']:.0%} ({paper['gflops']:.0f} of "
                f"{paper['ceiling_gflops']:.0f} GFLOP/s)",
                paper["ratio_to_ceiling"] >= TARGETS["paper_step_ratio"],
            )
        )
        if "memory" in paper:
            mb = paper["memory"]["step_peak_mb"]
            rows.append(
                _row(
                    "paper step: peak memory",
                    "< 1.5 GB",
                    f"{mb:.0f} MB",
                    mb < TARGETS["paper_step_memory_mb"],
                )
            )
    if "breakdown" in results:
        share = results["breakdown"]["parts"]["prediction core (InfoNCE)"]["share_of_step"]
        rows.append(
            _row(
                "prediction core share of the paper step (128 negatives, 12 offsets)",
                f"< {TARGETS['core_share']:.0%}",
                f"{share:.1%}",
                share < TARGETS["core_share"],
            )
        )
    if "extraction" in results:
        ext = results["extraction"]
        by = {(r["layer"], r["dtype"]): r["realtime_factor"] for r in ext["rows"]}
        rtf = by[("context", "float32")]
        rows.append(
            _row(
                "extraction, paper model, float32: real-time factor",
                f">= {TARGETS['extraction_rtf_float32']:.0f}x",
                f"{rtf:.0f}x",
                rtf >= TARGETS["extraction_rtf_float32"],
            )
        )
        if ("context", "bf16") in by:
            err = ext["bf16_error"]
            ok = (
                by[("context", "bf16")] > rtf
                and err["relative_error"] <= err["max_relative_error_allowed"]
                and err["min_cosine"] >= err["min_cosine_allowed"]
            )
            rows.append(
                _row(
                    "extraction, bf16: faster than float32, features within tolerance",
                    f"> {rtf:.0f}x; rel. error <= {err['max_relative_error_allowed']}, "
                    f"cosine >= {err['min_cosine_allowed']}",
                    f"{by[('context', 'bf16')]:.0f}x; rel. error {err['relative_error']:.4f}, "
                    f"min cosine {err['min_cosine']:.5f}",
                    ok,
                )
            )
        else:
            rows.append(
                _row(
                    "extraction, bf16",
                    "faster where the CPU supports bf16",
                    "no native bf16 on this device: not timed",
                    None,
                )
            )
    if "pipeline" in results:
        worst = max(results["pipeline"]["rows"], key=lambda r: r["share_of_step"])
        rows.append(
            _row(
                "data pipeline: batch time / paper step time (worst source rate)",
                f"< {TARGETS['pipeline_share']:.0%}",
                f"{worst['share_of_step']:.1%} ({worst['source_rate']} Hz)",
                worst["share_of_step"] < TARGETS["pipeline_share"],
            )
        )
    return rows


def note_values(results: dict[str, Any]) -> dict[str, str]:
    """The run's numbers for the ``$name`` fields of benchmarks/NOTES.md."""
    values: dict[str, str] = {}
    paper = next((r for r in results.get("steps", []) if r["workload"] == "paper"), None)
    if paper:
        values["step_ms"] = f"{paper['time_s'] * 1e3:.0f}"
        values["ratio"] = f"{paper['ratio_to_ceiling']:.0%}"
        if "memory" in paper:
            values["memory_mb"] = f"{paper['memory']['step_peak_mb']:.0f}"
    if "breakdown" in results:
        parts = results["breakdown"]["parts"]
        core = parts["prediction core (InfoNCE)"]
        values["core_ms"] = f"{core['time_s'] * 1e3:.0f}"
        values["core_share"] = f"{core['share_of_step']:.1%}"
        values["encoder_ms"] = f"{parts['encoder']['time_s'] * 1e3:.0f}"
    if "extraction" in results:
        for r in results["extraction"]["rows"]:
            if r["layer"] == "context":
                values[f"rtf_{r['dtype']}"] = f"{r['realtime_factor']:.0f}x"
    return values


def _row(what: str, target: str, measured: str, met: bool | None) -> dict[str, Any]:
    return {"what": what, "target": target, "measured": measured, "met": met}


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return [*lines, ""]


def markdown(results: dict[str, Any], notes: str = "", extra: list[str] | None = None) -> str:
    """One machine's report: machine, targets, every measurement, ``extra``, notes."""
    m = results["machine"]
    prefix = results.get("plot_prefix", "")
    out = [f"# Benchmark results: {m['cpu_model']}" + (f", {m['gpu']}" if "gpu" in m else ""), ""]
    out += [
        f"Last produced by `{m['command']}` on {m['date']} (commit {m.get('git_commit')}), "
        f"in {results['duration_s'] / 60:.1f} minutes.",
        "",
    ]
    sections = results.get("sections", {})
    if sections:
        out += ["Each section was measured by:", ""]
        out += _table(
            ["section", "date", "command", "commit", "load average (1 min) start / end"],
            [
                [
                    name,
                    str(run.get("date")),
                    f"`{run.get('command')}`",
                    str(run.get("git_commit")),
                    f"{_load(run.get('load_average_start'))} / "
                    f"{_load(run.get('load_average_end'))}",
                ]
                for name, run in sections.items()
            ],
        )
    machine_rows = [
        ["device", m["device"] + (f" ({m['gpu']})" if "gpu" in m else "")],
        ["CPU", f"{m['cpu_model']}, {m['cpu_count']} cores visible"],
        ["SIMD", ", ".join(m["cpu_flags"]) or "unknown"],
        ["torch", f"{m['torch']} (CPU capability {m['cpu_capability']})"],
        ["threads", str(m["torch_threads"])],
        [
            "OpenMP waiting",
            f"OMP_WAIT_POLICY={m.get('omp_wait_policy')}, GOMP_SPINCOUNT={m.get('gomp_spincount')}",
        ],
        ["native bf16", str(m["bf16_native"])],
        [
            "load average (1 min) at start / end",
            f"{_load(m.get('load_average_start'))} / {_load(m.get('load_average_end'))}",
        ],
    ]
    out += _table(["machine", ""], machine_rows)

    c = results["ceilings"]
    out += ["## Ceilings: matrix products on this machine", ""]
    rows = [
        ["float32", f"{c['float32']['gflops_median']:.0f}", f"{c['float32']['gflops_max']:.0f}"]
    ]
    if "bf16" in c:
        rows.append(["bf16", f"{c['bf16']['gflops_median']:.0f}", f"{c['bf16']['gflops_max']:.0f}"])
    out += _table(
        [
            f"dtype ({c['float32']['size']}x{c['float32']['size']} products)",
            "median GFLOP/s",
            "best",
        ],
        rows,
    )
    out += [
        "Every rate below is divided by the float32 rate measured between its own repeats "
        "(see Notes), not by these numbers.",
        "",
    ]

    out += ["## Targets", ""]
    mark = {True: "yes", False: "**no**", None: "n/a"}
    out += _table(
        ["target", "asked", "measured", "met"],
        [[t["what"], t["target"], t["measured"], mark[t["met"]]] for t in results["targets"]],
    )

    if "steps" in results:
        out += ["## Training steps (forward, backward, Adam)", ""]
        rows = []
        for r in results["steps"]:
            mem = r.get("memory", {}).get("step_peak_mb")
            rows.append(
                [
                    f"`{r['workload']}`: {r['description']}",
                    f"{r['batch']} x {r['window']}",
                    f"{r['time_s'] * 1e3:.0f}",
                    f"{r['gflop']:.1f}",
                    f"{r['gflops']:.0f}",
                    f"{r['ratio_to_ceiling']:.0%}",
                    "-" if mem is None else f"{mem:.0f}",
                ]
            )
        out += _table(
            [
                "workload",
                "batch x window",
                "median ms",
                "GFLOP / step",
                "GFLOP/s",
                "of matmul rate",
                "peak MB",
            ],
            rows,
        )

    if "breakdown" in results:
        b = results["breakdown"]
        out += ["## Where the paper step goes", ""]
        out += [
            "Each part timed on its own (forward + backward), interleaved with whole steps; "
            f"median whole step {b['step_time_s'] * 1e3:.0f} ms. The parts need not add "
            "up exactly to the step.",
            "",
        ]
        out += _table(
            ["part", "median ms", "share of step"],
            [
                [name, f"{p['time_s'] * 1e3:.1f}", f"{p['share_of_step']:.1%}"]
                for name, p in b["parts"].items()
                if name != "step"
            ],
        )

    if "core" in results:
        core = results["core"]
        out += ["## The prediction core alone", ""]
        out += [
            "Forward + backward of `InfoNCE` on speech shapes (batch 8, 126 steps, d = 512); "
            "`gather` scores each anchor against its own negatives in cache-sized chunks, "
            "`matmul` scores every prediction against the whole pool and gathers. "
            f"Plot: `{prefix}prediction_core.png`.",
            "",
        ]
        out += _table(
            ["negatives", "gather ms", "matmul ms"],
            [
                [str(r["negatives"]), f"{r['gather_s'] * 1e3:.1f}", f"{r['matmul_s'] * 1e3:.1f}"]
                for r in core["negatives"]
            ],
        )
        out += _table(
            ["offsets (128 negatives)", "ms"],
            [[str(r["offsets"]), f"{r['time_s'] * 1e3:.1f}"] for r in core["offsets"]],
        )
        if "chunks" in core:
            out += [
                "Chunk size of the `gather` scoring (`InfoNCE(chunk_elements=...)`, float32 "
                "values of gathered negatives per chunk; the default is 2**21), 128 "
                "negatives, 12 offsets:",
                "",
            ]
            out += _table(
                ["chunk_elements", "MB", "ms"],
                [
                    [
                        f"2**{r['chunk_elements'].bit_length() - 1}",
                        f"{r['megabytes']:.0f}",
                        f"{r['time_s'] * 1e3:.1f}",
                    ]
                    for r in core["chunks"]
                ],
            )
        out += [
            'Full softmax (`negatives="all"`, every latent of the batch a candidate) on the '
            "image grid's shapes (7x7, d = 256, offsets 2..6): cost grows with the square "
            "of the batch.",
            "",
        ]
        out += _table(
            ["batch", "candidates", "ms"],
            [
                [str(r["batch"]), str(r["candidates"]), f"{r['time_s'] * 1e3:.1f}"]
                for r in core["full_softmax"]
            ],
        )

    if "extraction" in results:
        e = results["extraction"]
        out += ["## Feature extraction (paper model)", ""]
        out += [
            f"One recording of {e['recording_s']:.0f} s at {e['sample_rate']} Hz through "
            "`cpc.features.extract.extract_sequence` (what `cpc extract` runs per file); real-time "
            "factor = seconds of audio per second of compute.",
            "",
        ]
        out += _table(
            [
                "layer",
                "dtype",
                "seconds",
                "real-time factor",
                "GFLOP per audio s",
                "of matmul rate (same dtype)",
                "factor at the run's best matmul rate",
            ],
            [
                [
                    r["layer"],
                    r["dtype"],
                    f"{r['time_s']:.2f}",
                    f"{r['realtime_factor']:.1f}x",
                    f"{r['gflop_per_audio_second']:.2f}",
                    f"{r['ratio_to_ceiling']:.0%}",
                    f"{r['realtime_factor_at_best_ceiling']:.0f}x",
                ]
                for r in e["rows"]
            ],
        )
        out += [
            "The last column scales the measured factor by the best matrix-product rate "
            "seen in this run over the rate measured around the extraction: an estimate "
            "for an idle machine, not a measurement.",
            "",
        ]
        if "bf16_error" in e:
            err = e["bf16_error"]
            out += [
                f"bf16 context features against float32: relative error "
                f"{err['relative_error']:.4f} (tolerance {err['max_relative_error_allowed']}), "
                f"lowest per-step cosine {err['min_cosine']:.5f} "
                f"(tolerance {err['min_cosine_allowed']}).",
                "",
            ]
        else:
            out += [f"No native bf16 ({e['bf16_check']}): bf16 not timed.", ""]

    if "pipeline" in results:
        p = results["pipeline"]
        out += ["## Data pipeline", ""]
        out += [
            f"A batch of {p['batch']} windows of {p['window']} samples at "
            f"{p['target_rate']} Hz from wav files, read, resampled and padded on "
            f"{p['threads']} thread; paper step {p['step_time_s'] * 1e3:.0f} ms.",
            "",
        ]
        out += _table(
            ["source rate", "ms per batch", "share of a step"],
            [
                [f"{r['source_rate']} Hz", f"{r['time_s'] * 1e3:.1f}", f"{r['share_of_step']:.1%}"]
                for r in p["rows"]
            ],
        )

    if "scaling" in results:
        s = results["scaling"]
        out += ["## Scaling of the paper step", "", f"![scaling]({prefix}scaling.png)", ""]
        out += _table(
            [f"batch (window {s['fixed_window']})", "ms"],
            [[str(r["batch"]), f"{r['time_s'] * 1e3:.0f}"] for r in s["batch"]],
        )
        out += _table(
            [f"window (batch {s['fixed_batch']})", "ms"],
            [[str(r["window"]), f"{r['time_s'] * 1e3:.0f}"] for r in s["window"]],
        )

    if "threads" in results:
        out += ["## Thread settings (paper step, fresh process each)", ""]
        out += _table(
            ["setting", "threads", "median ms", "of matmul rate"],
            [
                [
                    r["setting"],
                    str(r["threads"]),
                    f"{r['time_s'] * 1e3:.0f}",
                    f"{r['ratio_to_ceiling']:.0%}",
                ]
                for r in results["threads"]
            ],
        )

    out += extra or []
    if notes:
        out += ["## Notes", "", notes.strip(), ""]
    return "\n".join(out)


def _load(value: list[float] | None) -> str:
    return "?" if not value else f"{value[0]:.1f}"


def plots(results: dict[str, Any], folder: Path, prefix: str = "") -> list[str]:
    """Write the scaling and prediction-core plots (``prefix`` + name); return the names.

    matplotlib is imported here, and the plots skipped without it: a GPU machine that
    only has torch still writes its results file and report.
    """
    results["plot_prefix"] = prefix
    written: list[str] = []
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return written
    if "scaling" in results:
        s = results["scaling"]
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
        for ax, key, label in [
            (axes[0], "batch", f"batch size (window {s['fixed_window']})"),
            (axes[1], "window", f"window, samples (batch {s['fixed_batch']})"),
        ]:
            xs = [r[key] for r in s[key]]
            ys = [r["time_s"] for r in s[key]]
            ax.plot(xs, ys, "o-", label="measured")
            ref = ys[xs.index(s["fixed_" + key])] if s["fixed_" + key] in xs else ys[-1]
            base = s["fixed_" + key] if s["fixed_" + key] in xs else xs[-1]
            ax.plot(xs, [ref * x / base for x in xs], "--", color="grey", label="linear")
            ax.set_xscale("log", base=2)
            ax.set_xlabel(label)
            ax.set_ylabel("step time (s)")
            ax.grid(alpha=0.3)
            ax.legend()
        fig.suptitle("Paper speech model: training step time")
        fig.tight_layout()
        fig.savefig(folder / f"{prefix}scaling.png", dpi=110)
        plt.close(fig)
        written.append(f"{prefix}scaling.png")
    if "core" in results:
        core = results["core"]
        fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
        n = [r["negatives"] for r in core["negatives"]]
        axes[0].plot(n, [r["gather_s"] * 1e3 for r in core["negatives"]], "o-", label="gather")
        axes[0].plot(n, [r["matmul_s"] * 1e3 for r in core["negatives"]], "s-", label="matmul")
        axes[0].set_xscale("log", base=2)
        axes[0].set_xlabel("negatives (12 offsets)")
        axes[0].legend()
        k = [r["offsets"] for r in core["offsets"]]
        axes[1].plot(k, [r["time_s"] * 1e3 for r in core["offsets"]], "o-")
        axes[1].set_xlabel("offsets (128 negatives)")
        bs = [r["batch"] for r in core["full_softmax"]]
        axes[2].plot(bs, [r["time_s"] * 1e3 for r in core["full_softmax"]], "o-")
        axes[2].set_xscale("log", base=2)
        axes[2].set_yscale("log")
        axes[2].set_xlabel("batch (full softmax, 7x7 grid)")
        for ax in axes:
            ax.set_ylabel("forward + backward (ms)")
            ax.grid(alpha=0.3)
        fig.suptitle("Prediction core (InfoNCE)")
        fig.tight_layout()
        fig.savefig(folder / f"{prefix}prediction_core.png", dpi=110)
        plt.close(fig)
        written.append(f"{prefix}prediction_core.png")
    return written
