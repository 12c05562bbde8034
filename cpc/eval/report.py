"""Write probe results as a JSON file and a Markdown table with their provenance.

Results have one generic shape, ``{task: {method: value}}``: tasks become columns
("phone (linear)", "speaker (linear)", "writer EER"), methods become rows ("CPC",
"random init", "MFCC"). A value is a number (a fraction, shown as a percentage with one
decimal), None (shown as a dash), a dict, or an object with ``to_dict()`` such as
:class:`cpc.eval.probes.ProbeResult`. From a dict the table shows the first of
``accuracy``, ``eer``, ``value`` that is present, followed by ``± std`` when the dict
has ``std``; the JSON file keeps the whole dict.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

PRIMARY_KEYS = ("accuracy", "eer", "value")


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def collect_provenance(command: str | None = None, cwd: str | Path | None = None) -> dict[str, Any]:
    """Describe how and where results were produced.

    Args:
        command: The command that produced the results; defaults to ``sys.argv``.
        cwd: Directory whose git repository is described; defaults to this package's.

    Returns:
        A dict with ``command``, ``date`` (UTC, ISO 8601), ``machine``, ``python``,
        ``torch``, ``device`` (CUDA device name or ``"cpu"``), ``cpu_count``,
        ``git_commit`` and ``git_dirty`` (None outside a repository).

    """
    where = Path(cwd) if cwd is not None else Path(__file__).resolve().parent
    commit = _git(["rev-parse", "HEAD"], where)
    status = _git(["status", "--porcelain"], where) if commit else None
    return {
        "command": command if command is not None else " ".join(sys.argv),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "cpu_count": os.cpu_count(),
        "git_commit": commit,
        "git_dirty": None if status is None else bool(status),
    }


def _jsonable(value: Any) -> Any:
    if hasattr(value, "to_dict"):
        return _jsonable(value.to_dict())
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray | torch.Tensor):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def format_cell(value: Any) -> str:
    """Format one table cell: fractions as percentages with one decimal.

    Args:
        value: A number, None, a dict, or an object with ``to_dict()``.

    Returns:
        The cell text, e.g. ``"87.3"`` or ``"64.0 ± 1.2"``; ``"–"`` when missing.

    """
    if hasattr(value, "to_dict"):
        value = value.to_dict()
    std = None
    if isinstance(value, Mapping):
        std = value.get("std")
        value = next((value[k] for k in PRIMARY_KEYS if value.get(k) is not None), None)
    if value is None or not isinstance(value, int | float | np.number):
        return "–"
    if not np.isfinite(value):
        return "–"
    text = f"{100 * float(value):.1f}"
    return f"{text} ± {100 * float(std):.1f}" if std is not None else text


def markdown_table(
    results: Mapping[str, Mapping[str, Any]], methods: list[str] | None = None
) -> str:
    """Render ``{task: {method: value}}`` with methods as rows and tasks as columns.

    Args:
        results: Results per task and method.
        methods: Row order; defaults to the order of first appearance.

    Returns:
        A Markdown table (no trailing newline).

    """
    tasks = list(results)
    if methods is None:
        methods = list(dict.fromkeys(m for task in tasks for m in results[task]))
    lines = [
        "| features | " + " | ".join(tasks) + " |",
        "| --- | " + " | ".join("---:" for _ in tasks) + " |",
    ]
    for method in methods:
        cells = [format_cell(results[task].get(method)) for task in tasks]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_report(
    results: Mapping[str, Mapping[str, Any]],
    out_dir: str | Path,
    title: str,
    *,
    provenance: Mapping[str, Any] | None = None,
    command: str | None = None,
    methods: list[str] | None = None,
    notes: str | None = None,
    stem: str = "report",
) -> tuple[Path, Path]:
    """Write ``<stem>.json`` and ``<stem>.md`` into ``out_dir``.

    The JSON file holds the title, the provenance and the full results (dicts kept
    whole, arrays as lists, NaN as null). The Markdown file holds the title, a table of
    percentages (methods as rows, tasks as columns), optional notes and the provenance.

    Args:
        results: ``{task: {method: value}}``; see the module docstring for values.
        out_dir: Output directory (created if needed).
        title: Report title.
        provenance: How the results were made; collected with
            :func:`collect_provenance` when None.
        command: Command recorded when the provenance is collected here.
        methods: Row order of the table.
        notes: Free text placed under the table (protocol, splits, caveats).
        stem: File name without extension.

    Returns:
        ``(json_path, md_path)``.

    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    prov = dict(provenance) if provenance is not None else collect_provenance(command)
    json_path, md_path = out / f"{stem}.json", out / f"{stem}.md"
    payload = {"title": title, "provenance": prov, "results": _jsonable(results)}
    json_path.write_text(json.dumps(payload, indent=2, allow_nan=False) + "\n")

    parts = [f"# {title}", "", "Values in % (accuracy, or error rate for EER tasks).", ""]
    parts += [markdown_table(results, methods), ""]
    if notes:
        parts += [notes.strip(), ""]
    parts += ["## Provenance", ""]
    parts += [f"- {key}: `{value}`" for key, value in prov.items()]
    md_path.write_text("\n".join(parts) + "\n")
    return json_path, md_path
