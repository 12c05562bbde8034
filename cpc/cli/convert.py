"""``cpc convert cpc_audio CHECKPOINT --out RUN``: import a CPC_audio model."""

from __future__ import annotations

import argparse
from pathlib import Path

from cpc.checkpoints.convert import convert_cpc_audio
from cpc.cli.outputs import writes_folder


@writes_folder("out", "--out", beside=True)  # written beside, renamed into place whole
def run(args: argparse.Namespace) -> int:
    """Convert a CPC_audio checkpoint into a run folder."""
    out = convert_cpc_audio(args.checkpoint, args.out)
    print(f"converted {args.checkpoint} -> {out} (load with cpc.load({str(out)!r}))")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``convert cpc_audio``."""
    convert = sub.add_parser("convert", help="import a model trained elsewhere").add_subparsers(
        dest="convert_verb", required=True
    )
    p = convert.add_parser("cpc_audio", help="a CPC_audio hub file or training folder")
    p.add_argument("checkpoint", help="hub .pt file, checkpoint_N.pt, or a training folder")
    p.add_argument("--out", required=True, type=Path, help="run directory to write (new)")
    p.set_defaults(func=run)
