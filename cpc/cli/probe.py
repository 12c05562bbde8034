"""``cpc probe FEATURES... --manifest M.csv [--label COL] [--frame-labels DIR] ...``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cpc.cli.outputs import writes_folder
from cpc.eval.probe_folder import ProbeSpec, load_label_names, run_probes
from cpc.eval.report import markdown_table


@writes_folder("out", "--out")
def _probe(args: argparse.Namespace) -> int:
    folders: dict[str, Path] = {}
    for entry in args.features:
        name, sep, path = entry.partition("=")
        folder = Path(path) if sep else Path(entry)
        key = name if sep else folder.name
        if key in folders:
            print(
                f"cpc probe: error: two feature folders named {key!r} (use NAME=DIR)",
                file=sys.stderr,
            )
            return 2
        folders[key] = folder
    spec = ProbeSpec(
        manifest=args.manifest,
        label=args.label,
        frame_labels=args.frame_labels,
        label_offset=args.label_offset,
        label_names=load_label_names(args.label_names) if args.label_names else None,
        split_by=args.split_by,
        test_fraction=args.test_fraction,
        probes=tuple(args.probes),
        k=args.k,
        epochs=args.epochs,
        seed=args.seed,
    )
    command = "cpc " + " ".join(sys.argv[1:])
    results = run_probes(folders, spec, args.out, command)
    print(markdown_table(results))
    if args.out is not None:
        print(
            f"report: {args.out / 'probe.md'} and probe.json; plots: "
            f"{len(list(args.out.glob('*.png')))} PNG files in {args.out}"
        )
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``probe`` to the top-level sub-commands."""
    p = sub.add_parser(
        "probe", help="linear/kNN probes and verification EER on folders from `cpc extract`"
    )
    p.add_argument("features", nargs="+", help="feature folders, each DIR or NAME=DIR (a row)")
    p.add_argument("--manifest", type=Path, required=True, help="CSV with path and label columns")
    p.add_argument("--label", help="manifest column of sequence labels (pooled features)")
    p.add_argument("--frame-labels", type=Path, help="folder of <stem>.npy frame labels, or .npz")
    p.add_argument("--label-offset", type=int, default=0, help="feature j <-> label j+offset")
    p.add_argument("--label-names", type=Path, help="JSON list of frame-label class names")
    p.add_argument("--split-by", help="manifest column whose groups are held out whole")
    p.add_argument("--test-fraction", type=float, default=0.3)
    p.add_argument(
        "--probes", nargs="+", default=["linear", "knn", "eer"], choices=["linear", "knn", "eer"]
    )
    p.add_argument("--k", type=int, default=5, help="neighbours of the kNN probe")
    p.add_argument("--epochs", type=int, default=50, help="linear probe epochs (at most)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, help="write probe.json, probe.md and plots here")
    p.set_defaults(func=_probe)
