"""``cpc suite``: the task suite (speech, signals, images) on frozen features."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path

import torch

from cpc.cli.outputs import writes_folder
from cpc.errors import ConfigError
from cpc.experiments.suite import (
    DEFAULT_ROWS,
    QUICK,
    Row,
    Sizes,
    SuiteSettings,
    run_suite,
    select_rows,
)
from cpc.experiments.suite_common import FAMILIES


def _sizes(base: Sizes, pairs: list[str]) -> Sizes:
    """``base`` with ``FIELD=VALUE`` pairs applied (a tuple field takes a comma list)."""
    values: dict[str, object] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or key not in {f.name for f in dataclasses.fields(Sizes)}:
            names = ", ".join(f.name for f in dataclasses.fields(Sizes))
            raise ConfigError(f"--size wants FIELD=VALUE with FIELD one of {names}; got {pair!r}")
        current = getattr(base, key)
        try:
            if isinstance(current, tuple):
                kind = type(current[0]) if current else str
                values[key] = tuple(kind(v) for v in text.split(","))
            else:
                values[key] = type(current)(text)
        except ValueError:
            raise ConfigError(f"--size {key}: {text!r} is not a {type(current).__name__}") from None
    return dataclasses.replace(base, **values)  # type: ignore[arg-type]


@writes_folder("out", "--out", clean=False)  # its runs resume when run again
def _suite(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    extra = [Row(r[0], tuple(r[1:])) for r in args.row or []]
    settings = SuiteSettings(
        sizes=_sizes(QUICK if args.quick else Sizes(), args.size or []),
        families=tuple(args.tasks),
        rows=select_rows([*DEFAULT_ROWS, *extra], args.rows),
        seed=args.seed,
        work=args.work,
    )
    run_suite(args.out, settings, "cpc " + " ".join(sys.argv[1:]))
    print((Path(args.out) / "suite.md").read_text())
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``suite``."""
    p = sub.add_parser(
        "suite",
        help="pretrain one checkpoint per row and probe frozen features on every task",
    )
    p.add_argument("--out", type=Path, default=Path("results/suite"))
    p.add_argument("--work", type=Path, default=None, help="corpora and runs (default OUT/work)")
    p.add_argument("--quick", action="store_true", help="tiny corpora, 2 steps: a smoke test")
    p.add_argument(
        "--tasks", nargs="+", choices=FAMILIES, default=list(FAMILIES), help="task families"
    )
    p.add_argument(
        "--rows",
        nargs="+",
        metavar="NAME",
        help=f"rows to run (default: all): {', '.join(repr(r.name) for r in DEFAULT_ROWS)}",
    )
    p.add_argument(
        "--row",
        nargs="+",
        action="append",
        metavar="NAME OVERRIDE",
        help="an extra CPC row: its name, then config overrides (repeatable), e.g. "
        "--row 'context 256' model.context_dim=256",
    )
    p.add_argument(
        "--size",
        nargs="+",
        metavar="FIELD=VALUE",
        help="change a size of the run (cpc.experiments.suite.Sizes), e.g. speech_steps=100",
    )
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_suite)
