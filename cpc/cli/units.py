"""``cpc units fit|apply|quality``: discrete units (k-means) over a feature folder.

``quality`` measures how much of the phones the units capture (purity, PNMI), for CPC
features against MFCC units on an espeak corpus (:mod:`cpc.eval.unit_quality`).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

from cpc.cli.outputs import writes_folder
from cpc.errors import UnitsError
from cpc.eval.unit_quality import compare_units, write_unit_report
from cpc.features.units import (
    NORMALIZE,
    UnitModel,
    apply_units,
    collapse_warning,
    fit_units,
    read_features,
)


def _fail(command: str, err: Exception) -> int:
    print(f"cpc units {command}: error: {err}", file=sys.stderr)
    return 2


def _warn(command: str, value: float, k: int) -> None:
    message = collapse_warning(value, k)
    if message:
        print(f"cpc units {command}: warning: {message}", file=sys.stderr)


@writes_folder("out", "--out")
def fit(args: argparse.Namespace) -> int:
    """``cpc units fit FEATURES_DIR --k K --out DIR [--normalize] [--seed] [--max-frames]``."""
    if args.k < 2:
        return _fail("fit", UnitsError(f"--k must be >= 2, got {args.k}"))
    try:
        files = read_features(args.features)
        model = fit_units([f for _, f in files], args.k, args.normalize, args.seed, args.max_frames)
    except UnitsError as err:
        return _fail("fit", err)
    facts = {"features": str(Path(args.features).resolve()), "files": len(files)}
    extract_meta = Path(args.features) / "extract.json"
    if extract_meta.is_file():
        facts["extract"] = json.loads(extract_meta.read_text())
    model.save(args.out, facts)
    print(
        f"{model.k} units from {model.frames} frames of {len(files)} files "
        f"(entropy {model.fit_entropy:.2f} of log k = {math.log(model.k):.2f}) -> {args.out}"
    )
    _warn("fit", model.fit_entropy, model.k)
    return 0


@writes_folder("out", "--out")
def apply(args: argparse.Namespace) -> int:
    """``cpc units apply FEATURES_DIR --units DIR --out DIR [--dedup]``."""
    try:
        model = UnitModel.load(args.units)
        path, value = apply_units(model, args.features, args.out, args.dedup)
    except UnitsError as err:
        return _fail("apply", err)
    print(f"unit sequences written: {path}")
    _warn("apply", value, model.k)
    return 0


@writes_folder("out", "--out")
def quality(args: argparse.Namespace) -> int:
    """``cpc units quality --corpus DIR --cpc-features DIR --work DIR --out DIR [--k ...]``."""
    torch.set_num_threads(1)
    start = time.time()
    rows = compare_units(
        args.corpus, args.cpc_features, args.work, ks=args.k, normalize=args.normalize
    )
    table = write_unit_report(
        rows,
        args.out,
        command="cpc " + " ".join(sys.argv[1:]),
        note=args.note,
        seconds=time.time() - start,
    )
    print(table)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``units fit``, ``units apply`` and ``units quality``."""
    units = sub.add_parser("units", help="discrete units: k-means over features").add_subparsers(
        dest="units_verb", required=True
    )
    p = units.add_parser("fit", help="fit k-means on the frames of a features folder")
    p.add_argument("features", help="folder written by `cpc extract`")
    p.add_argument("--k", type=int, required=True, help="number of units (e.g. 50, 100, 200)")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--normalize", choices=["standard", "l2", "none"], default="standard")
    p.add_argument("--max-frames", type=int, default=500_000)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=fit)
    p = units.add_parser("apply", help="write per-file unit sequences")
    p.add_argument("features", help="folder written by `cpc extract`")
    p.add_argument("--units", required=True, type=Path, help="folder written by `units fit`")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--dedup", action="store_true", help="collapse runs of the same unit")
    p.set_defaults(func=apply)
    p = units.add_parser(
        "quality", help="phone purity and PNMI of units: CPC features against MFCC (espeak)"
    )
    p.add_argument("--corpus", type=Path, required=True, help="`cpc data espeak` folder")
    p.add_argument("--cpc-features", type=Path, required=True, help="`cpc extract` output")
    p.add_argument("--work", type=Path, required=True, help="scratch folder (MFCCs)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--k", type=int, nargs="+", default=[50, 100, 200])
    p.add_argument("--normalize", nargs="+", choices=NORMALIZE, default=["standard"])
    p.add_argument("--note", default="", help="provenance of the CPC features")
    p.set_defaults(func=quality)
