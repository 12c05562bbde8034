"""``cpc pretrain CONFIG [section.key=value ...]``: train a model from a config."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from cpc.config import load_config
from cpc.train.signals import signal_name
from cpc.train.trainer import train


def run(args: argparse.Namespace) -> int:
    """Train the config's model; print the run summary as JSON."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    config = load_config(args.config, args.overrides)
    result = train(config, stop_signals=True)
    if result.stopped_by is not None:  # SIGTERM, SIGINT or SIGUSR1, after a whole step
        saved = result.checkpoint or "none (no step was completed)"
        print(
            f"cpc pretrain: stopped by {signal_name(result.stopped_by)} after step "
            f"{result.step}; checkpoint: {saved} (run the same command to resume)",
            file=sys.stderr,
        )
        return 128 + result.stopped_by
    print(json.dumps(result.summary, indent=2, default=str))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``pretrain``."""
    p = sub.add_parser("pretrain", help="pretrain a model from a YAML config")
    p.add_argument("config", help="YAML config file, or a shipped preset: speech_small_cpu, ...")
    p.add_argument("overrides", nargs="*", help="section.key=value overrides")
    p.set_defaults(func=run)
