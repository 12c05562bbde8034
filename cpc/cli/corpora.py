"""``cpc data librispeech ROOT --out manifest.csv`` and ``cpc data shard SOURCE --out DIR``.

Sub-verbs of ``cpc data`` (registered by :mod:`cpc.cli.data`) over corpora the user
already has: a LibriSpeech / Libri-light manifest with speakers, chapters and
transcripts (:mod:`cpc.data.formats.librispeech`), and WebDataset shards written from
any source ``data.train`` takes (:mod:`cpc.data.formats.shard_writer`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cpc.cli.outputs import writes_folder
from cpc.data.formats import FORMATS
from cpc.data.formats.librispeech import write_librispeech_manifest
from cpc.data.formats.shard_writer import parse_size, write_shards


def _print_skipped(skipped: list[tuple[str, str]], shown: int = 10) -> None:
    for path, reason in skipped[:shown]:
        print(f"skipped {path}: {reason}", file=sys.stderr)
    if len(skipped) > shown:
        print(f"... and {len(skipped) - shown} more skipped", file=sys.stderr)


@writes_folder("out", "--out", beside=True)  # one file, renamed into place whole
def _librispeech(args: argparse.Namespace) -> int:
    result = write_librispeech_manifest(args.root, args.out, overwrite=args.overwrite)
    _print_skipped(result.skipped)
    print(
        f"{result.rows} files, {result.seconds / 3600:.2f} h, {len(result.speakers)} speakers, "
        f"{result.transcripts} with a transcript, {len(result.skipped)} skipped"
        f"\nmanifest: {result.path}"
    )
    return 0


@writes_folder("out", "--out")
def _shard(args: argparse.Namespace) -> int:
    size = parse_size(args.shard_size)  # a bad size is one line (cpc.cli.main), exit 2
    summary = write_shards(
        args.source,
        args.out,
        size,
        fmt=args.format,
        group_from=args.group_from,
        overwrite=args.overwrite,
    )
    _print_skipped(summary.skipped)
    print(
        f"{summary.items} items in {summary.shards} shards ({summary.bytes / 1e6:.1f} MB), "
        f"{len(summary.skipped)} skipped\ndata.train={summary.pattern}"
    )
    return 0


def register_corpora(data: argparse._SubParsersAction) -> None:
    """Add ``librispeech`` and ``shard`` to the ``cpc data`` sub-commands."""
    p = data.add_parser(
        "librispeech", help="a manifest (speaker, chapter, transcript) of LibriSpeech/Libri-light"
    )
    p.add_argument("root", type=Path, help="LibriSpeech/ or Libri-light folder, or one subset")
    p.add_argument("--out", required=True, type=Path, help="manifest .csv to write")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=_librispeech)
    p = data.add_parser("shard", help="write WebDataset shards from any corpus data.train takes")
    p.add_argument("source", help="folder, manifest, fairseq .tsv, Kaldi, Lhotse, HF or shards")
    p.add_argument("--out", required=True, type=Path, help="folder for shards-NNNNNN.tar")
    p.add_argument("--shard-size", default="1GB", help="largest shard: 1GB, 500MB, 2GiB...")
    p.add_argument("--format", choices=["auto", *FORMATS], default="auto", help="data.format")
    p.add_argument("--group-from", default="auto", help="data.group_from (speaker of files)")
    p.add_argument("--overwrite", action="store_true", help="replace shards already in --out")
    p.set_defaults(func=_shard)
