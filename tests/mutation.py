"""Mutation testing of the core, one module at a time: ``python -m tests.mutation MODULE``.

Runs mutmut (the ``dev`` extra) on one of the modules listed in :data:`TARGETS`, with
the narrow test selection that covers it, in a scratch copy of the checkout
(``.mutation/MODULE/``, ignored by git). mutmut first runs the selection once to learn
which tests call which function, then runs, for each mutant, only the tests that call
the mutated function, stopping at the first failure. The run is niced, on one thread
and one worker: the development machine is shared.

Prints the score and the surviving mutants, and writes them to
``.mutation/MODULE/summary.md``; ``tests/MUTATION.md`` holds the committed results and
why each survivor is equivalent. To look at one mutant:
``cd .mutation/MODULE && mutmut show NAME``.

Usage::

    python -m tests.mutation infonce           # one module (see TARGETS)
    python -m tests.mutation infonce --keep    # reuse the previous run's cache
    python -m tests.mutation infonce 'cpc.losses.infonce.x_sample_candidates__mutmut_32'
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Target:
    """What to mutate, and the tests that must kill it."""

    files: tuple[str, ...]
    tests: tuple[str, ...]


TARGETS: dict[str, Target] = {
    "infonce": Target(
        ("cpc/losses/infonce.py",),
        (
            "tests/losses/test_infonce.py",
            "tests/losses/test_draws.py",
            "tests/losses/test_scoring.py",
            "tests/losses/test_mixed_negatives.py",
        ),
    ),
    "gather": Target(("cpc/losses/gather.py",), ("tests/losses/test_gather.py",)),
    "context": Target(
        ("cpc/models/context.py",),
        (
            "tests/models/test_context.py",
            "tests/models/test_context_parts.py",
            "tests/models/test_context_reference.py",
            "tests/models/test_recurrent_layers.py",
            "tests/models/test_cpc.py",
        ),
    ),
    "encoders": Target(
        ("cpc/models/encoders.py",),
        (
            "tests/models/test_encoders.py",
            "tests/models/test_encoder_parts.py",
            "tests/models/test_strided_conv.py",
            "tests/models/test_cpc.py",
        ),
    ),
    "extract": Target(
        ("cpc/extract.py",),
        (
            "tests/features/test_extract.py",
            "tests/features/test_extract_dataset.py",
            "tests/features/test_extract_images.py",  # write_grid_features through the CLI
        ),
    ),
    "windows": Target(("cpc/data/windows.py",), ("tests/data/test_windows.py",)),
    # test_resume.py (subprocesses killed and resumed: a minute or more) is left out of
    # the per-mutant selection; it runs in the suite.
    "checkpoint": Target(
        ("cpc/train/checkpoint.py", "cpc/loading.py"),
        (
            "tests/train/test_checkpoint.py",
            "tests/train/test_checkpoint_more.py",
            "tests/train/test_checkpoint_disk.py",
            "tests/checkpoints/test_loading.py",
        ),
    ),
}

#: Line patterns whose statements are not mutated: raising and logging (message texts).
NOT_MUTATED = [r"^\s*raise ", r"^\s*logger\.", r"^\s*warnings\.warn\("]

STATUSES = ("killed", "survived", "timeout", "suspicious", "no_tests", "skipped")


def mutmut_config(target: Target) -> str:
    """The ``[tool.mutmut]`` table for one target."""

    def toml_list(items: tuple[str, ...] | list[str]) -> str:
        return "[" + ", ".join(json.dumps(x) for x in items) + "]"

    return (
        "\n[tool.mutmut]\n"
        'source_paths = ["cpc"]\n'
        f"only_mutate = {toml_list(target.files)}\n"
        f"pytest_add_cli_args_test_selection = {toml_list(target.tests)}\n"
        'pytest_add_cli_args = ["-p", "no:cacheprovider"]\n'
        # Error messages and log lines are not mutated (their texts are not the logic).
        f"do_not_mutate_patterns = {toml_list(NOT_MUTATED)}\n"
        # Workers forked from a process that only collected the tests: forked from the
        # one that ran them, a mutant that leaves part of an uninitialised buffer
        # unwritten reads that run's correct values from reused memory and survives.
        'process_isolation = "forkserver"\n'
    )


def prepare(name: str, target: Target, keep: bool) -> Path:
    """A scratch copy of the package and tests with the target's mutmut config."""
    work = REPO / ".mutation" / name
    if work.exists() and not keep:
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    for folder in ("cpc", "tests"):
        shutil.rmtree(work / folder, ignore_errors=True)
        shutil.copytree(REPO / folder, work / folder, ignore=shutil.ignore_patterns("__pycache__"))
    # mutmut keeps which tests call which function from the previous run and does not
    # look again when the tests change: a rerun after adding a test would not run it on
    # the mutants it kills (seen: two mutants reported alive, killed by hand). Drop it.
    (work / "mutants" / "mutmut-stats.json").unlink(missing_ok=True)
    pyproject = (REPO / "pyproject.toml").read_text()
    (work / "pyproject.toml").write_text(pyproject + mutmut_config(target))
    return work


def mutmut(work: Path, *args: str, check: bool = True) -> str:
    """Run the mutmut of this interpreter's environment in ``work``; its output."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH="")
    exe = Path(sys.executable).parent / "mutmut"
    proc = subprocess.run(
        [str(exe), *args], cwd=work, env=env, text=True, capture_output=True, check=False
    )
    if check and proc.returncode != 0:
        sys.exit(f"mutmut {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}")
    return proc.stdout


def summarise(name: str, work: Path) -> str:
    """Counts, score and survivors of the finished run, as Markdown."""
    mutmut(work, "export-cicd-stats")
    stats = json.loads((work / "mutants" / "mutmut-cicd-stats.json").read_text())
    listing = mutmut(work, "results", "--all", "true")
    by_status: dict[str, list[str]] = {}
    for line in listing.splitlines():
        mutant, _, status = line.strip().rpartition(": ")
        if mutant:
            by_status.setdefault(status.strip(), []).append(mutant)
    killed = stats.get("killed", 0) + stats.get("timeout", 0)
    judged = killed + sum(stats.get(s, 0) for s in ("survived", "suspicious", "no_tests"))
    score = 100 * killed / max(judged, 1)
    lines = [
        f"## {name}",
        "",
        "| " + " | ".join(STATUSES) + " | score (killed / judged) |",
        "|" + " --- |" * (len(STATUSES) + 1),
        "| "
        + " | ".join(str(stats.get(s, 0)) for s in STATUSES)
        + f" | {score:.1f}% ({killed} / {judged}) |",
        "",
    ]
    for status in ("survived", "suspicious", "no tests"):
        for mutant in by_status.get(status, []):
            lines.append(f"- {status}: `{mutant}`")
    return "\n".join(lines) + "\n"


def main() -> None:
    """Parse the command line, run one module, print and write the summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("module", choices=sorted(TARGETS))
    parser.add_argument("--keep", action="store_true", help="reuse the previous run's cache")
    parser.add_argument(
        "mutants", nargs="*", help="rerun only these mutants (names or globs; implies --keep)"
    )
    args = parser.parse_args()
    os.nice(15)
    work = prepare(args.module, TARGETS[args.module], args.keep or bool(args.mutants))
    print(mutmut(work, "run", "--max-children", "1", *args.mutants, check=False)[-2000:])
    summary = summarise(args.module, work)
    (work / "summary.md").write_text(summary)
    print(summary)


if __name__ == "__main__":
    main()
