"""Every error type of the package, under one base; this module imports nothing of ``cpc``.

A user's mistake (a bad value, a file that cannot be used, a busy folder) raises one of
these with a message that names the key, file or value at fault; the command line prints
that message on one line and exits 2. Each type also derives from the built-in exception
it refines (``ValueError`` or ``RuntimeError``), so code that caught those still works.

Layers below the error's owner raise it without importing the owner: the schema, the
data layer and the checkpoint readers all share this leaf.
"""

from __future__ import annotations

from typing import Protocol


class CPCError(Exception):
    """Base of every error this package raises on purpose; the message says what to fix."""


class ConfigError(CPCError, ValueError):
    """A configuration key or value that cannot be used; the message names it."""


class RunBusyError(ConfigError):
    """Another live process holds an output folder's lock; the message names it."""


class DataError(CPCError, ValueError):
    """A file that cannot be used, with the path and the reason.

    Args:
        path: The offending file.
        reason: Why it was rejected, written ``"kind: detail"``.

    """

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


class _Report(Protocol):
    checked: int

    def counts(self) -> dict[str, int]: ...


class EmptyDatasetError(DataError):
    """Raised at construction when no file of a source is usable.

    Args:
        source: The folder, manifest or description of the records.
        report: What was rejected and why (a :class:`cpc.data.errors.SkipReport`); its
            counts go into the message.

    """

    def __init__(self, source: str, report: _Report) -> None:
        counts = report.counts()
        if counts:
            why = ", ".join(f"{kind}: {n}" for kind, n in sorted(counts.items()))
            reason = f"no usable files ({report.checked} checked; rejected {why})"
        else:
            reason = f"no usable files ({report.checked} found)"
        super().__init__(source, reason)
        self.report = report


class CheckpointError(CPCError, RuntimeError):
    """A checkpoint that cannot be found, read or applied; the message names the file."""


class UnsafeCheckpointError(CPCError, ValueError):
    """The weight file is malformed or does not match its config; the message says how."""


class UnitsError(CPCError, ValueError):
    """A features folder or units folder that cannot be used; the message names it."""


class NonFiniteLossError(CPCError, RuntimeError):
    """The loss became NaN or infinite; training stopped without saving that step."""


class PeerLostError(CPCError, RuntimeError):
    """Another process of a distributed run died or became unreachable mid-collective.

    This process stopped cleanly; the message names the last checkpoint to resume from.
    """


class OutputError(CPCError, OSError):
    """An output that could not be written (a full disk, a read-only place): the message
    names the path and, for a full disk, the space free and needed. Nothing half-written
    is left behind (:mod:`cpc.checkpoints.outputs`).
    """
