"""``cpc pretrained NAME [--out RUN]``: a published CPC_audio model, fetched and converted.

The model is downloaded once with torch.hub's downloader, verified, converted once and
cached (:mod:`cpc.checkpoints.pretrained`); ``--out`` copies the converted run folder
where the user wants it (``cpc info``, ``cpc extract --checkpoint`` take it).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from cpc.checkpoints.pretrained import REGISTRY, pretrained_run
from cpc.cli.outputs import writes_folder
from cpc.errors import CheckpointError


@writes_folder("out", "--out", beside=True)  # a new folder: locked from beside
def run(args: argparse.Namespace) -> int:
    """Fetch, verify and convert a published model; copy it to ``--out`` if given."""
    if args.list:
        for entry in REGISTRY.values():
            known = entry.sha256 or "SHA-256 unknown: needs --sha256 or --unverified"
            print(f"{entry.name}\t{entry.about}\n\t{entry.url}\n\t{known}")
        return 0
    if args.name is None:
        raise CheckpointError(f"name a model (known: {sorted(REGISTRY)}) or pass --list")
    out: Path | None = args.out
    if out is not None and out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise CheckpointError(f"{out}: exists and is not an empty folder; choose another --out")
    cached = pretrained_run(
        args.name, sha256=args.sha256, unverified=args.unverified, progress=not args.quiet
    )
    if out is None:
        print(f"{args.name}: {cached} (load with cpc.load({str(cached)!r}))")
        return 0
    if out.exists():
        out.rmdir()
    shutil.copytree(cached, out)
    print(f"{args.name} -> {out} (load with cpc.load({str(out)!r}))")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``pretrained``."""
    p = sub.add_parser("pretrained", help="fetch a published CPC_audio model by name")
    p.add_argument("name", nargs="?", help=f"one of {sorted(REGISTRY)}")
    p.add_argument("--out", type=Path, help="copy the converted run folder here (new)")
    p.add_argument("--sha256", help="the checkpoint file's expected SHA-256 (hex)")
    p.add_argument(
        "--unverified",
        action="store_true",
        help="accept a file whose full SHA-256 is unknown (its name's hash prefix is checked)",
    )
    p.add_argument("--list", action="store_true", help="list the published models")
    p.add_argument("--quiet", action="store_true", help="no download progress bar")
    p.set_defaults(func=run)
