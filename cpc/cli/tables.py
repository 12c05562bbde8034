"""``cpc table1`` and ``cpc quickstart``: the speech table (pretrain, then probe and ABX)."""

from __future__ import annotations

import argparse
import logging
import math
import sys
from pathlib import Path

import torch

from cpc.cli.outputs import writes_folder
from cpc.config import ConfigError
from cpc.data.corpora.budget import MAX_MINUTES
from cpc.experiments.speech_table import TableSettings, run_speech_table

#: ``cpc table1``'s prediction-step ablation: the CPC paper's Table 1 compares these.
ABLATION = (2, 4, 8, 12)


#: Most threads ``--threads`` accepts.
MAX_THREADS = 1024


def _check_threads(threads: int) -> None:
    if not 1 <= threads <= MAX_THREADS:
        raise ConfigError(f"--threads must be in [1, {MAX_THREADS}], got {threads}")


def _rows(rows: list[list[str]] | None) -> dict[str, list[str]]:
    """``--row NAME OVERRIDE...`` as a dict; a name given twice is refused, not replaced."""
    out: dict[str, list[str]] = {}
    for name, *overrides in rows or []:
        if name in out:
            raise ConfigError(f"--row {name!r} is given twice: give each row its own name")
        out[name] = overrides
    return out


def _table(args: argparse.Namespace, settings: object) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    command = "cpc " + " ".join(sys.argv[1:])
    run_speech_table(args.out, settings, command)  # type: ignore[arg-type]
    out = Path(args.out)
    print((out / "table1.md").read_text())
    if (out / "table1_steps.md").is_file():
        print((out / "table1_steps.md").read_text().split("## Provenance")[0])
    print("plots:")
    for png in sorted(out.glob("*.png")):
        print(f"  {png}")
    return 0


@writes_folder("out", "--out", clean=False)  # its runs resume when run again
def _table1(args: argparse.Namespace) -> int:
    _check_threads(args.threads)
    settings = TableSettings(
        corpus_minutes=args.corpus_minutes,
        corpus_speakers=args.speakers,
        max_steps=args.steps,
        max_time=args.max_time,
        ablation_offsets=[] if args.no_ablation else (args.ablation or list(ABLATION)),
        seed=args.seed,
        overrides=args.overrides,
        rows=_rows(args.row),
    )
    return _table(args, settings)


@writes_folder("out", "--out", clean=False)  # its runs resume when run again
def _quickstart(args: argparse.Namespace) -> int:
    _check_threads(args.threads)
    if not (math.isfinite(args.minutes) and 0 < args.minutes <= MAX_MINUTES):
        raise ConfigError(f"--minutes must be in (0, {MAX_MINUTES:g}], got {args.minutes}")
    settings = TableSettings(
        corpus_minutes=20,
        corpus_speakers=10,
        speaker_corpus_minutes=16,
        speaker_corpus_speakers=32,
        max_steps=100_000,
        max_time=args.minutes * 60,
        seed=args.seed,
    )
    return _table(args, settings)


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``quickstart`` and ``table1``."""
    p = sub.add_parser(
        "quickstart",
        help="build the built-in corpus, pretrain the small preset for a bounded time, probe",
    )
    p.add_argument("--out", type=Path, default=Path("runs/quickstart"))
    p.add_argument("--minutes", type=float, default=12.0, help="pretraining time budget")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_quickstart)

    p = sub.add_parser("table1", help="the CPC paper's Table 1 in miniature (espeak corpus)")
    p.add_argument("--out", type=Path, default=Path("results/table1"))
    p.add_argument("--corpus-minutes", type=float, default=30.0)
    p.add_argument("--speakers", type=int, default=12)
    p.add_argument("--steps", type=int, default=1500, help="pretraining steps per model")
    p.add_argument("--max-time", type=float, default=0.0, help="seconds per model (0: none)")
    p.add_argument(
        "--ablation",
        type=int,
        nargs="*",
        default=list(ABLATION),
        metavar="K",
        help="numbers of prediction steps to compare, one more model each (default, and "
        "--ablation alone: 2 4 8 12)",
    )
    p.add_argument("--no-ablation", action="store_true", help="skip the prediction-step models")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--row",
        nargs="+",
        action="append",
        metavar="NAME OVERRIDE",
        help="an extra CPC row: its name, then config overrides (repeatable), e.g. "
        "--row 'transformer head' model.predictor=transformer",
    )
    p.add_argument("overrides", nargs="*", help="config overrides (section.key=value)")
    p.set_defaults(func=_table1)
