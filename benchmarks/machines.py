"""One results file per machine kind, and the table that sets them side by side.

A machine kind is named by its CPU model, or its GPU's when the run used CUDA, as a
slug: ``results/<slug>.json`` holds every measurement, ``results/<slug>.md`` is that
machine's report and ``results/<slug>-*.png`` its plots. ``results/RESULTS.md`` is
rebuilt from every ``results/*.json`` after each run (or by
``python -m benchmarks.machines``).

A run with ``--only`` merges its sections into the machine's existing file; every
section keeps the date, commit, command and load of the run that measured it
(``sections``), so a table can mix sections measured at different times and say so.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT

RESULTS = ROOT / "benchmarks" / "results"

#: Keys of a results file that are measurements (one per benchmark section).
SECTION_KEYS = (
    "steps",
    "limits",
    "overhead",
    "breakdown",
    "core",
    "extraction",
    "pipeline",
    "scaling",
    "threads",
    "precision",
    "loop",
    "corpus_io",
)


def slug(text: str) -> str:
    """``"Intel(R) Xeon(R) Platinum 8488C"`` -> ``"intel-xeon-platinum-8488c"``."""
    text = re.sub(r"\((r|tm|c)\)", "", text.lower())
    text = re.sub(r"\b(cpu|processor|@.*)$", "", text.strip())
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-") or "unknown"


def machine_key(machine: dict[str, Any]) -> str:
    """The slug of the machine kind a run measured (its GPU's on CUDA).

    A CPU's name is followed by the SIMD level torch runs on it (``amd-epyc-avx512``):
    virtual machines report one name ("AMD EPYC") for hosts with and without AVX-512
    and bf16, whose product rates differ several times over.
    """
    if str(machine.get("device", "cpu")).startswith("cuda") and machine.get("gpu"):
        return slug(machine["gpu"])
    name = slug(machine.get("cpu_model", "unknown"))
    level = machine.get("cpu_capability")
    return f"{name}-{slug(level)}" if level else name


def provenance(machine: dict[str, Any]) -> dict[str, Any]:
    """What a section records about the run that measured it."""
    keys = ("date", "command", "git_commit", "load_average_start", "load_average_end")
    return {k: machine.get(k) for k in keys}


def merge(previous: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """``new``'s sections over ``previous``'s; the machine description is the newest.

    Sections of ``previous`` that ``new`` did not measure are kept with their own
    provenance (older files without ``sections`` get their run's machine record).
    """
    if previous is None:
        return new
    old_run = provenance(previous["machine"])
    merged = {**previous, **{k: v for k, v in new.items() if k not in SECTION_KEYS}}
    sections = {k: previous.get("sections", {}).get(k, old_run) for k in SECTION_KEYS}
    for key in SECTION_KEYS:
        if key in new:
            merged[key] = new[key]
            sections[key] = new["sections"][key]
    if "steps" in new and "steps" in previous:  # workloads not timed again keep their rows
        timed = {r["workload"] for r in new["steps"]}
        kept = [r for r in previous["steps"] if r["workload"] not in timed]
        merged["steps"] = new["steps"] + kept
    merged["sections"] = {k: v for k, v in sections.items() if k in merged}
    # the ceilings shown beside the step table are those of the run that timed the steps
    merged["ceilings"] = new["ceilings"] if "steps" in new else previous["ceilings"]
    return merged


def load_all(folder: Path = RESULTS) -> dict[str, dict[str, Any]]:
    """Every machine's results in ``folder``, by slug (other JSON files there are skipped)."""
    found = {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}
    return {k: r for k, r in found.items() if isinstance(r, dict) and "ceilings" in r}


def _fmt(value: Any, spec: str, suffix: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{suffix}"


def _facts(r: dict[str, Any]) -> dict[str, str]:
    """The combined table's column for one machine."""
    m, c = r["machine"], r["ceilings"]
    amx = any(f.startswith("amx") for f in m.get("cpu_flags", []))
    steps = {s["workload"]: s for s in r.get("steps", [])}
    paper = steps.get("paper", {})
    share = r.get("breakdown", {}).get("parts", {}).get("prediction core (InfoNCE)", {})
    prec = r.get("precision", {})
    bf16_row = next((x for x in prec.get("rows", []) if x["variant"].startswith("bf16 (run")), {})
    loop = (r.get("loop", {}).get("rows") or [{}])[0]
    ext = {(x["layer"], x["dtype"]): x for x in r.get("extraction", {}).get("rows", [])}
    f32, b16 = ext.get(("context", "float32"), {}), ext.get(("context", "bf16"), {})
    device = m["device"] + (f" ({m['gpu']})" if "gpu" in m else "")
    load = m.get("load_average_start") or [None]
    return {
        "device": device,
        "CPU": f"{m['cpu_model']}, {m['cpu_count']} cores",
        "bf16 products / AMX": f"{'native' if m.get('bf16_native') else 'emulated'} / "
        f"{'yes' if amx else 'no'}",
        "products (steps run), GFLOP/s float32 / bf16": f"{c['float32']['gflops_median']:.0f} / "
        + _fmt(c.get("bf16", {}).get("gflops_median"), ".0f"),
        "paper step float32, ms (of product rate)": (
            f"{paper['time_s'] * 1e3:.0f} ({paper['ratio_to_ceiling']:.0%})" if paper else "-"
        ),
        "prediction core share": _fmt(share.get("share_of_step"), ".1%"),
        "bf16 paper step: speed-up (products ratio)": (
            f"{bf16_row['speedup']:.2f}x ({prec['product_ratio']:.2f}x)" if bf16_row else "-"
        ),
        "training loop / bare step, wall (CPU time)": (
            f"{loop['ratio']:.0%} ({loop['cpu_ratio']:.0%})" if "cpu_ratio" in loop else "-"
        ),
        "extraction float32: real time (of product rate)": (
            f"{f32['realtime_factor']:.0f}x ({f32['ratio_to_ceiling']:.0%})" if f32 else "-"
        ),
        "extraction bf16: real time (of product rate)": (
            f"{b16['realtime_factor']:.0f}x ({b16['ratio_to_ceiling']:.0%})" if b16 else "-"
        ),
        "targets met": f"{sum(t['met'] is True for t in r.get('targets', []))} of "
        f"{sum(t['met'] is not None for t in r.get('targets', []))}",
        "last run (load avg at start)": f"{m['date']} ({_fmt(load[0], '.1f')})",
    }


def combined(results: dict[str, dict[str, Any]]) -> str:
    """RESULTS.md: one column per machine kind, then links to each machine's report."""
    out = ["# Benchmark results, per machine kind", ""]
    out += [
        "Produced by `python -m benchmarks.run` on each machine (`--device cuda` on a GPU); "
        "each column is that machine's `<slug>.json`, whose report `<slug>.md` has every "
        "table, the command, the commit and the load of every section. Ratios are measured "
        "in one run against the machine's own matrix-product rate; absolute times move with "
        "the load of a shared machine.",
        "",
    ]
    if not results:
        return "\n".join([*out, "No results yet.", ""])
    names = list(results)
    columns = {name: _facts(r) for name, r in results.items()}
    rows = list(next(iter(columns.values())))
    out += ["| | " + " | ".join(f"[{n}]({n}.md)" for n in names) + " |"]
    out += ["|---|" + "---|" * len(names)]
    out += [f"| {row} | " + " | ".join(columns[n][row] for n in names) + " |" for row in rows]
    out += [""]
    return "\n".join(out)


def write_combined(folder: Path = RESULTS) -> Path:
    """Rebuild ``folder/RESULTS.md`` from every results file in it."""
    path = folder / "RESULTS.md"
    path.write_text(combined(load_all(folder)))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description="rebuild RESULTS.md from results/*.json")
    parser.add_argument("--out", type=Path, default=RESULTS)
    print(write_combined(parser.parse_args().out))


if __name__ == "__main__":
    main()
