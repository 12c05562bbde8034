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
import contextlib
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from types import FrameType
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
from cpc.train.signals import Interrupted, signal_name

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
        with _stop_signals_interrupt():
            return int(args.func(args))
    except KeyboardInterrupt as err:  # Ctrl-C, or a second stop signal during training
        signum = getattr(err, "signum", signal.SIGINT)
        print(
            f"{_verb(args)}: interrupted by {signal_name(signum)}: stopped at once "
            "(a partial output of this run was removed; a run's checkpoints stay)",
            file=sys.stderr,
        )
        return 128 + signum
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
    groups = ("command", "data_verb", "units_verb", "convert_verb")
    words = [getattr(args, dest, None) for dest in groups]
    return " ".join(["cpc", *(str(word) for word in words if word)])


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signum)


@contextlib.contextmanager
def _stop_signals_interrupt() -> Iterator[None]:
    """SIGTERM and SIGUSR1 interrupt a verb as Ctrl-C does (its partial output is removed
    on the way out); ``pretrain`` catches them itself to stop after a whole step.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGTERM, signal.SIGUSR1)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    raise SystemExit(main())
