"""``cpc data espeak|pen|ucr|item|librispeech|shard``: build or prepare a data set."""

from __future__ import annotations

import argparse
from pathlib import Path

from cpc.cli.abx import register_item
from cpc.cli.corpora import register_corpora
from cpc.cli.outputs import writes_folder
from cpc.config import ConfigError
from cpc.data.corpora.espeak import build_espeak_corpus
from cpc.data.corpora.pen import generate_pen_corpus
from cpc.data.corpora.pen_sessions import generate_session_corpus
from cpc.data.corpora.texts import LANGUAGES
from cpc.data.ucr import bundled_ts, export_ts


@writes_folder("out", "--out")
def _data_espeak(args: argparse.Namespace) -> int:
    info = build_espeak_corpus(
        args.out,
        minutes=args.minutes,
        num_speakers=args.speakers,
        seed=args.seed,
        sample_rate=args.sample_rate,
        languages=tuple(args.languages),
        workers=args.workers,
        overwrite=args.overwrite,
    )
    print(
        f"{info.num_utterances} utterances, {info.total_seconds / 60:.1f} min, "
        f"{len(info.speakers)} speakers, {len(info.phones)} phones in {info.build_seconds:.1f} s"
        f"\nmanifest: {Path(info.root) / 'manifest.csv'}"
    )
    return 0


@writes_folder("out", "--out")
def _data_pen(args: argparse.Namespace) -> int:
    for flag, value, least in (
        ("--writers", args.writers, 1),
        ("--samples", args.samples, 1),
        ("--sessions", args.sessions, 1),
        ("--forgeries", args.forgeries, 0),
    ):
        if value < least:
            raise ConfigError(f"{flag} must be at least {least}, got {value}")
    if args.setting == "easy":
        manifest = generate_pen_corpus(
            args.out,
            num_writers=args.writers,
            samples_per_writer=args.samples,
            seed=args.seed,
            fmt=args.format,
            forgeries_per_writer=args.forgeries,
        )
    else:
        if args.samples % args.sessions:
            raise ConfigError(
                f"--samples {args.samples} is not a multiple of --sessions {args.sessions}"
            )
        manifest = generate_session_corpus(
            args.out,
            num_writers=args.writers,
            sessions=args.sessions,
            per_session=args.samples // args.sessions,
            forgeries_per_writer=args.forgeries,
            seed=args.seed,
            fmt=args.format,
        )
    print(f"pen corpus written; manifest: {manifest}")
    return 0


@writes_folder("out", "--out")
def _data_ucr(args: argparse.Namespace) -> int:
    source = Path(args.ts) if args.ts else bundled_ts(args.name, args.split)
    print(f"series of {source} written; manifest: {export_ts(source, args.out)}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``data`` and its corpora (``item``: :mod:`cpc.cli.abx`; ``librispeech``, ``shard``:
    :mod:`cpc.cli.corpora`).
    """
    data = sub.add_parser("data", help="build a built-in data set").add_subparsers(
        dest="data_verb", required=True
    )
    p = data.add_parser("espeak", help="synthetic multi-speaker speech with phone labels")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--minutes", type=float, default=1.0, help="total minutes of speech")
    p.add_argument("--speakers", type=int, default=8, help="number of speakers")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--sample-rate", type=int, default=16000, help="Hz, a multiple of 100 (10 ms frames)"
    )
    p.add_argument("--languages", nargs="+", default=["en"], choices=LANGUAGES)
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="speakers synthesised in parallel (default: the CPU count; same output)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace a corpus in --out")
    p.set_defaults(func=_data_espeak)
    p = data.add_parser("pen", help="synthetic pen trajectories (sigma-lognormal writers)")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--writers", type=int, default=10)
    p.add_argument("--samples", type=int, default=20)
    p.add_argument("--forgeries", type=int, default=0)
    p.add_argument("--format", choices=["npy", "svc"], default="npy")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--setting",
        choices=["hard", "easy"],
        default="hard",
        help="hard: sessions, complex signatures, forgers with their own timing "
        "(cpc.data.corpora.pen_sessions); easy: the first generator (cpc.data.corpora.pen)",
    )
    p.add_argument("--sessions", type=int, default=4, help="hard: sessions per writer")
    p.set_defaults(func=_data_pen)
    p = data.add_parser("ucr", help="a UCR/UEA .ts file (or one aeon bundles) as .npy + manifest")
    p.add_argument("--out", required=True, type=Path)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--ts", help="path of a .ts file")
    source.add_argument("--name", help="a data set aeon bundles, e.g. BasicMotions")
    p.add_argument("--split", choices=["train", "test"], default="train")
    p.set_defaults(func=_data_ucr)
    register_item(data)
    register_corpora(data)
