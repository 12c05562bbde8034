"""``cpc signatures``: the signature verification benchmark of ``results/signatures/``.

CPC against DTW and signal statistics on the hard synthetic pen setting, one model per
seed (:mod:`cpc.experiments.signature_bench`). Each seed writes ``seed<s>.json`` to
``--out``; the table over seeds goes to ``table.md`` and ``results.json``.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import torch

from cpc.cli.outputs import writes_folder
from cpc.experiments.signature_bench import QUICK, BenchSize, run_bench


@writes_folder("out", "--out", clean=False)  # keeps what finished seeds wrote
def _signatures(args: argparse.Namespace) -> int:
    torch.set_num_threads(1)
    size = QUICK if args.quick else BenchSize()
    if args.steps:
        size = replace(size, steps=args.steps)
    # Absolute paths: the benchmark's runs name files relative to their own folders, and a
    # relative --work was joined twice (runs/x/runs/x/...).
    table = run_bench(
        args.out.resolve(),
        args.seeds,
        size,
        work=args.work.resolve(),
        overrides=args.override,
        inputs=args.inputs,
        command="cpc " + " ".join(sys.argv[1:]),
        summarise_only=args.summarise,
    )
    print(table)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``signatures``."""
    p = sub.add_parser(
        "signatures",
        help="signature verification benchmark: CPC against DTW and signal statistics",
    )
    p.add_argument("--out", type=Path, required=True, help="folder of the per-seed JSON")
    p.add_argument(
        "--work", type=Path, default=Path("runs/signature_bench"), help="runs and caches"
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--quick", action="store_true", help="toy sizes (a smoke run)")
    p.add_argument("--steps", type=int, default=None, help="pretraining steps per seed")
    p.add_argument(
        "--inputs",
        choices=["local", "raw"],
        default="local",
        help="pretrain on local features or on the six raw channels",
    )
    p.add_argument("--override", action="append", default=[], help="a config override (repeatable)")
    p.add_argument(
        "--summarise", action="store_true", help="only tabulate the seeds' JSON files in --out"
    )
    p.set_defaults(func=_signatures)
