"""The ``cpc`` command line: one module per verb, each with ``register(sub)``.

Verbs: ``pretrain``, ``extract``, ``info``, ``convert``, ``pretrained``, ``export``,
``units`` (fit, apply, quality), ``probe``, ``abx``, ``data`` (espeak, pen, ucr, item,
librispeech, shard), ``quickstart``, ``table1``, ``suite``, ``demo`` and ``signatures``.
Every verb is a thin shell over the Python API; an error about the user's input (a bad
config key, a missing file, an empty data set) is printed as one line naming what is
wrong, without a traceback, and the exit status is 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from cpc.cli import (
    abx,
    convert,
    data,
    demo,
    export,
    extract,
    info,
    pretrain,
    pretrained,
    probe,
    signatures,
    suite,
    tables,
    units,
)
from cpc.errors import CPCError

#: The verb modules, in the order ``cpc --help`` lists them.
VERBS = (
    pretrain,
    extract,
    convert,
    pretrained,
    units,
    export,
    info,
    data,
    tables,
    suite,
    demo,
    abx,
    probe,
    signatures,
)


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors on one line like every other error of the command."""

    def error(self, message: str) -> NoReturn:
        line = " ".join(message.split())
        self.exit(2, f"{self.prog}: error: {line} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every sub-command."""
    parser = _Parser(
        prog="cpc", description="Contrastive Predictive Coding for speech, signals and images."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for verb in VERBS:
        verb.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cpc`` command."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except CPCError as err:
        message = str(err)
    except OSError as err:  # a path the user gave: missing, a folder, not writable...
        where = f"{err.filename}: " if err.filename else ""
        message = f"{where}{err.strerror or err}"
    line = " ".join(part.strip() for part in message.splitlines())
    print(f"{_verb(args)}: error: {line}", file=sys.stderr)
    return 2


def _verb(args: argparse.Namespace) -> str:
    """``cpc data pen``: the command and, for grouped verbs, the sub-verb."""
    words = [getattr(args, dest, None) for dest in ("command", "corpus", "action", "source")]
    return " ".join(["cpc", *(str(word) for word in words if word)])


if __name__ == "__main__":
    raise SystemExit(main())
