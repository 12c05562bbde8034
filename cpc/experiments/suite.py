"""The task suite (``cpc suite``): frozen features of one checkpoint per row, on every task.

Families, each in its own module:

- ``speech`` (:mod:`cpc.experiments.suite_speech`): phones (seen / unseen speakers),
  ABX within / across, speaker identity (all labels, 2%), language identity, spoken
  words across voices; baselines MFCC and log-mel;
- ``signals`` (:mod:`cpc.experiments.suite_series`): aeon's bundled UCR/UEA sets with
  their standard splits (baselines: statistics, MiniRocket, DTW-1NN) and the signature
  verification benchmark (skilled forgeries; DTW and statistics);
- ``images`` (:mod:`cpc.experiments.suite_images`): Fashion-MNIST linear probes (all
  labels, 10 per class; baseline: pixels).

Every family also reports the untrained network. Rows (:class:`Row`) are named configs:
the default, and candidates given as config overrides; a row only runs in the families
it names. ``results/suite/`` holds the committed table (``README.md``, ``suite.json``)
with the command, commit, machine, load average and time.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from cpc.errors import ConfigError
from cpc.eval.report import _jsonable, collect_provenance, markdown_table
from cpc.experiments.suite_common import (
    DEFAULT_ROWS,
    FAMILIES,
    QUICK,
    Context,
    Row,
    Sizes,
    log,
)
from cpc.experiments.suite_images import available as images_available
from cpc.experiments.suite_images import run_images
from cpc.experiments.suite_series import run_signatures, run_ucr
from cpc.experiments.suite_speech import run_speech

__all__ = ["DEFAULT_ROWS", "QUICK", "Row", "Sizes", "SuiteSettings", "run_suite"]

#: The wall-time budget of the default size on 2 idle cores (issue 20).
BUDGET_MINUTES = 40.0
Runner = Callable[[Context], dict[str, dict[str, object]]]
#: table name -> (family, runner)
TABLES: dict[str, tuple[str, Runner]] = {
    "speech": ("speech", run_speech),
    "signals (UCR/UEA, accuracy)": ("signals", run_ucr),
    "signatures (EER, lower is better)": ("signals", run_signatures),
    "images": ("images", run_images),
}


@dataclass
class SuiteSettings:
    """What one ``cpc suite`` run does."""

    sizes: Sizes = field(default_factory=Sizes)
    families: tuple[str, ...] = FAMILIES
    rows: list[Row] = field(default_factory=lambda: list(DEFAULT_ROWS))
    seed: int = 0
    work: Path | None = None
    """Corpora and checkpoints (default: ``<out>/work``); a finished run is reused."""


def select_rows(rows: list[Row], names: list[str] | None) -> list[Row]:
    """The rows named (all when None), in the order given; a row another row reuses is
    kept for its checkpoint.

    Raises:
        ConfigError: An unknown row name (lists the known ones).

    """
    if not names:
        return rows
    by_name = {r.name: r for r in rows}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise ConfigError(f"unknown suite row(s) {unknown}; rows: {list(by_name)}")
    chosen = [by_name[n] for n in names]
    needed = {r.reuse for r in chosen if r.reuse and r.reuse not in names}
    return [by_name[n] for n in needed if n] + chosen


def _load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _family_rows(settings: SuiteSettings, family: str) -> list[Row]:
    rows = [r for r in settings.rows if family in r.families]
    names = {r.name for r in rows}
    missing = [r.reuse for r in rows if r.reuse and r.reuse not in names]
    if missing:
        raise ConfigError(f"{family}: rows reuse {missing}, which do not run there")
    return rows


def _run_table(name: str, settings: SuiteSettings, work: Path, record: dict[str, Any]) -> Any:
    family, runner = TABLES[name]
    ctx = Context(work / family, settings.sizes, _family_rows(settings, family), settings.seed)
    started, load = time.monotonic(), _load_average()
    log.info("suite: %s (load average %s)", name, load)
    results = runner(ctx)
    record["timings"][name] = {
        "total_s": round(time.monotonic() - started, 1),
        **{k: round(v, 1) for k, v in ctx.timings.items()},
    }
    record["load_average"][name] = {"start": load, "end": _load_average()}
    record["notes"] += ctx.notes
    return results


def run_suite(out_dir: str | Path, settings: SuiteSettings, command: str = "") -> dict[str, Any]:
    """Run the selected families; write ``suite.json`` and ``README.md`` into ``out_dir``."""
    out = Path(out_dir).resolve()
    work = (settings.work or out / "work").resolve()
    unknown = set(settings.families) - set(FAMILIES)
    if unknown:
        raise ConfigError(f"unknown suite task family {sorted(unknown)}; families: {FAMILIES}")
    record: dict[str, Any] = {
        "provenance": collect_provenance(command),
        "threads": torch.get_num_threads(),
        "settings": asdict(settings) | {"work": str(work)},
        "budget_minutes": BUDGET_MINUTES,
        "timings": {},
        "load_average": {},
        "notes": [],
        "results": {},
        "skipped": {},
    }
    started = time.monotonic()
    for name, (family, _) in TABLES.items():
        if family not in settings.families:
            continue
        if family == "images" and not images_available():
            record["skipped"][name] = (
                "no Fashion-MNIST IDX files (apt-get install dataset-fashion-mnist)"
            )
            continue
        record["results"][name] = _run_table(name, settings, work, record)
        _write(out, record, started)  # after every table: a long run leaves what it has
    _write(out, record, started)
    return record


def _write(out: Path, record: dict[str, Any], started: float) -> None:
    record["total_minutes"] = round((time.monotonic() - started) / 60, 2)
    out.mkdir(parents=True, exist_ok=True)
    (out / "suite.json").write_text(json.dumps(_jsonable(record), indent=1, allow_nan=False) + "\n")
    (out / "suite.md").write_text(render(record))


def render(record: dict[str, Any]) -> str:
    """The Markdown report of a suite record: one table per family, then how it ran."""
    prov = record["provenance"]
    lines = [
        "# Task suite",
        "",
        f"`{prov['command']}` at commit `{prov['git_commit']}` (dirty: {prov['git_dirty']}), "
        f"{prov['machine']}, {prov['cpu_count']} CPUs, {record['threads']} torch threads; "
        f"{record['total_minutes']} min (budget of the default size: "
        f"{record['budget_minutes']:.0f} min on 2 idle cores).",
        "",
        "Values in %: accuracy, except ABX and EER columns (error rates, lower is better).",
        "",
    ]
    for name, results in record["results"].items():
        lines += [f"## {name}", "", markdown_table(results), ""]
    for name, why in record["skipped"].items():
        lines += [f"## {name}", "", f"skipped: {why}", ""]
    lines += ["## How it ran", ""]
    lines += [f"- {note}" for note in record["notes"]]
    lines += [f"- load average (1, 5, 15 min) {k}: {v}" for k, v in record["load_average"].items()]
    lines += [f"- timings (s) {k}: {json.dumps(v)}" for k, v in record["timings"].items()]
    return "\n".join(lines) + "\n"
