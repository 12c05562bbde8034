"""Stop a training run gracefully on SIGTERM, SIGINT or SIGUSR1.

A cluster scheduler sends SIGTERM before it preempts a job (Slurm sends the signal of
``--signal``, often SIGUSR1, some time before the end of the allocation), and a person
presses Ctrl-C (SIGINT). :class:`StopSignals` turns the first of them into a request that
the training loop reads at the end of each optimiser step: the step under way finishes,
a checkpoint of it is written, and the run returns with the signal named
(:attr:`cpc.train.trainer.TrainResult.stopped_by`); ``cpc pretrain`` then prints one line
and exits with ``128 + signal``. A second signal while the first is being honoured
raises :class:`Interrupted` (a ``KeyboardInterrupt``) at once: nothing more is saved,
and the last checkpoint written stays the one to resume from.

Under ``torchrun`` a signal may reach some processes only (a terminal's Ctrl-C reaches
all of them, ``kill`` one): the loop reduces the request over every process at each
step boundary (:func:`cpc.train.distributed.any_true`), so every rank stops after the
same step.

Handlers can only be installed from the main thread; elsewhere (a training call in a
worker thread) :class:`StopSignals` installs nothing and the signals keep their default
behaviour.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType
from typing import Any

#: The signals that ask a run to stop after its current step.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)


class Interrupted(KeyboardInterrupt):
    """A second stop signal: the run ends at once, saving nothing more.

    Attributes:
        signum: The signal's number (the command exits with ``128 + signum``).

    """

    def __init__(self, signum: int) -> None:
        super().__init__(f"{signal.Signals(signum).name} received twice: stopped at once")
        self.signum = signum


class StopSignals:
    """Catch the stop signals for the duration of a ``with`` block.

    Attributes:
        requested: The first stop signal received (its number), or None.

    """

    def __init__(self, signals: tuple[signal.Signals, ...] = STOP_SIGNALS) -> None:
        self.signals = signals
        self.requested: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested is not None:
            raise Interrupted(signum)
        self.requested = signum

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in self.signals:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        err: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()


def signal_name(signum: int) -> str:
    """``"SIGTERM"`` for 15."""
    return signal.Signals(signum).name
