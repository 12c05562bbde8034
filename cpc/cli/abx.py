"""``cpc abx FEATURES ITEMFILE`` and ``cpc data item CORPUS OUT``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cpc.checkpoints.outputs import atomic_file
from cpc.eval.abx import (
    Mode,
    abx_from_items,
    items_from_espeak_corpus,
    read_item_file,
    write_item_file,
)
from cpc.features.folder import read_feature_folder


def _abx(args: argparse.Namespace) -> int:
    if args.max_group_size is not None and args.max_group_size < 1:
        print(
            f"cpc abx: error: --max-group-size must be >= 1, got {args.max_group_size}",
            file=sys.stderr,
        )
        return 2
    folder = read_feature_folder(args.features)
    items = read_item_file(args.item_file)
    step = folder.step_seconds
    rate = args.rate if args.rate is not None else (1.0 / step if step else 100.0)
    shift = args.shift if args.shift is not None else folder.centre_shift
    modes: list[Mode] = ["within", "across"] if args.mode == "all" else [args.mode]
    result = abx_from_items(
        folder.by_stem, items, rate, shift, modes, args.max_group_size, args.seed
    )
    for mode in modes:
        value = getattr(result, mode)
        text = "no cell (need two phones of one speaker in one context)"
        if value is not None:
            text = f"{100 * value:.2f} %  ({result.cells[mode]} cells, {result.pairs[mode]} pairs)"
        print(f"ABX error {mode} speakers: {text}")
    print(f"tokens: {result.tokens} of {len(items)}; frames at {rate:g}/s, shift {shift:.4f} s")
    if args.out:
        payload = {
            **result.to_dict(),
            "features": str(args.features),
            "item_file": str(args.item_file),
            "rate": rate,
            "shift": shift,
            "max_group_size": args.max_group_size,
            "seed": args.seed,
        }
        with atomic_file(args.out) as tmp:  # whole or absent
            tmp.write_text(json.dumps(payload, indent=2) + "\n")
    return 0


def _item(args: argparse.Namespace) -> int:
    if not (Path(args.corpus) / "manifest.csv").is_file():
        raise FileNotFoundError(f"no corpus manifest {Path(args.corpus) / 'manifest.csv'}")
    tokens = items_from_espeak_corpus(args.corpus)
    with atomic_file(args.out) as tmp:  # whole or absent
        write_item_file(tokens, tmp)
    print(f"{len(tokens)} phone tokens written to {args.out}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``abx``."""
    p = sub.add_parser("abx", help="phone ABX error (within/across speakers) of features")
    p.add_argument("features", type=Path, help="folder from `cpc extract`, or <file id>.npy files")
    p.add_argument("item_file", type=Path, help="Libri-light .item file")
    p.add_argument("--mode", choices=["all", "within", "across"], default="all")
    p.add_argument("--rate", type=float, help="frames per second (default: from extract.json)")
    p.add_argument(
        "--shift",
        type=float,
        help="seconds of frame i's centre after (i+0.5)/rate (default: the receptive-field "
        "centre from extract.json, else 0)",
    )
    p.add_argument(
        "--max-group-size",
        type=int,
        default=None,
        help="at most this many tokens per (context, speaker, phone); Libri-light uses 10",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, help="write the result as JSON here")
    p.set_defaults(func=_abx)


def register_item(data: argparse._SubParsersAction) -> None:
    """Add ``item`` to ``cpc data`` (:mod:`cpc.cli.data`)."""
    p = data.add_parser("item", help="the .item file (phone tokens) of a built-in espeak corpus")
    p.add_argument("corpus", type=Path)
    p.add_argument("out", type=Path)
    p.set_defaults(func=_item)
