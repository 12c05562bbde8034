"""The bad-input policy shared by every data set: report and skip, or raise when strict.

A file that cannot be used (unreadable, empty, corrupt, non-finite, too short) is never a
reason to crash a long run. Data sets record it in a :class:`SkipReport` with the path
and the reason, skip it, and go on; ``strict=True`` turns the same event into a
:class:`DataError`. A data set left with nothing usable fails at construction with
:class:`EmptyDatasetError`, whose message names the source and counts the reasons.

Reasons are written ``"kind: detail"`` (``"too short: 120 samples < 465"``); the part
before the colon is what :meth:`SkipReport.counts` groups by.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from cpc.errors import DataError

logger = logging.getLogger(__name__)

T = TypeVar("T")


def reason_kind(reason: str) -> str:
    """Return the part of a reason before its first colon, used to group counts."""
    return reason.split(":", 1)[0].strip()


@dataclass
class SkipReport:
    """What a data set rejected or repaired, for the run summary.

    Attributes:
        skipped: ``(path, reason)`` for every file left out.
        notes: ``(path, message)`` for files kept after a repair (a channel filled
            with zeros, a non-numeric column dropped).
        checked: How many files were examined.

    """

    skipped: list[tuple[str, str]] = field(default_factory=list)
    notes: list[tuple[str, str]] = field(default_factory=list)
    checked: int = 0

    def skip(self, path: str, reason: str, strict: bool = False) -> None:
        """Record a rejected file once (a file failing in many windows counts once, by
        its first reason), or raise :class:`DataError` when ``strict``.
        """
        if strict:
            raise DataError(path, reason)
        if self.has(path):
            return
        self.skipped.append((str(path), reason))
        logger.warning("skipping %s: %s", path, reason)

    def has(self, path: str) -> bool:
        """Whether ``path`` was already skipped."""
        return any(p == str(path) for p, _ in self.skipped)

    def note(self, path: str, message: str) -> None:
        """Record a repair made to a file that is kept."""
        self.notes.append((str(path), message))
        logger.info("%s: %s", path, message)

    def counts(self) -> dict[str, int]:
        """Count the skipped files per reason kind."""
        return dict(Counter(reason_kind(reason) for _, reason in self.skipped))

    def summary(self) -> str:
        """One line for a run log: how many files were kept, skipped and why."""
        kept = self.checked - len(self.skipped)
        line = f"{kept} of {self.checked} files usable"
        counts = self.counts()
        if counts:
            why = ", ".join(f"{kind}: {n}" for kind, n in sorted(counts.items()))
            line += f"; skipped {len(self.skipped)} ({why})"
        if self.notes:
            line += f"; {len(self.notes)} repaired"
        return line

    def __len__(self) -> int:
        return len(self.skipped)


def load_or_next(
    index: int,
    size: int,
    load: Callable[[int], T],
    bad: set[int],
    report: SkipReport,
    path_of: Callable[[int], str],
    strict: bool = False,
) -> T:
    """Load item ``index``, or the next loadable one when it turns out to be corrupt.

    A file that passed the cheap checks at construction can still fail when decoded
    during training. The failure is recorded (in this process's ``report``; with
    DataLoader workers each worker keeps its own copy, and the event is also logged),
    the index joins ``bad`` so it is not decoded again, and the next index (wrapping
    around) is tried. The substitute is deterministic, so runs stay reproducible.

    Args:
        index: The requested item.
        size: Number of items.
        load: Loads one item; raises :class:`DataError` for a bad file.
        bad: Indices already known to fail; updated in place.
        report: Where failures are recorded.
        path_of: The file behind an index, for the final error.
        strict: Raise the first failure instead of substituting.

    Returns:
        The loaded item (its own ``"index"`` says which one it is).

    """
    for step in range(size):
        j = (index + step) % size
        if j in bad or report.has(path_of(j)):  # another window of a file known bad
            continue
        try:
            return load(j)
        except DataError as err:
            if strict:
                raise
            bad.add(j)
            report.skip(err.path, err.reason)
    raise DataError(path_of(index), "unreadable: every item of the data set failed to load")
