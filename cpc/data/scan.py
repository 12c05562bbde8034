"""Find a data set's files in a folder tree, reporting what cannot be used instead of
dropping it silently.

Symlinked folders are followed (corpora are often assembled from links), each real
folder once: a link back to a folder already on the path is a loop and is reported, as
is a second link to a folder already listed. Among the entries whose name has a wanted
suffix, a folder (``x.wav/``), a dangling link, a link loop or anything else that is not
a regular file is reported with the reason, like other skipped files.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Scan:
    """The result of :func:`scan_folder`.

    Attributes:
        files: Regular files with a wanted suffix, sorted.
        skipped: ``(path, reason)`` for entries that look wanted but cannot be read,
            and for folders not entered; reasons are written ``"kind: detail"``.

    """

    files: list[Path] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def _why_not_a_file(path: Path) -> str | None:
    """Why a wanted-looking entry is not a readable regular file (None: it is one)."""
    try:
        if path.is_symlink() and not path.exists():
            os.stat(path)  # tells a loop (ELOOP) from a missing target (ENOENT)
            return "not a file: a link whose target is missing"
        if path.is_dir():
            return "not a file: a folder named like an audio/signal file"
        if not path.is_file():
            return "not a file: a device, socket or pipe"
    except OSError as err:
        if err.errno == errno.ELOOP:
            return "not a file: a symbolic link loop"
        if isinstance(err, FileNotFoundError):
            return "not a file: a link whose target is missing"
        return f"unreadable: {err.strerror or err}"
    return None


def _regular(path: str) -> bool:
    """Whether ``path`` is a regular file (links followed): one stat, the common case."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def scan_folder(folder: str | Path, extensions: Iterable[str]) -> Scan:
    """Every regular file under ``folder`` whose suffix is wanted, and what was not.

    Args:
        folder: The root, searched recursively (symlinked folders followed once).
        extensions: Suffixes with the dot (``".wav"``), matched case-insensitively.

    """
    wanted = {ext.lower() for ext in extensions}
    scan = Scan()
    seen: set[str] = set()

    def on_error(err: OSError) -> None:
        scan.skipped.append((str(err.filename), f"unreadable: {err.strerror or err}"))

    for top, dirs, names in os.walk(folder, followlinks=True, onerror=on_error):
        real = os.path.realpath(top)
        if real in seen:  # reached again through a link: do not list it twice
            dirs[:] = []
            ancestors = Path(top).parents
            loop = any(os.path.realpath(a) == real for a in ancestors)
            kind = "a symbolic link loop" if loop else f"another path to {real}, already listed"
            scan.skipped.append((top, f"not followed: {kind}"))
            continue
        seen.add(real)
        for name in [*names, *dirs]:
            if os.path.splitext(name)[1].lower() not in wanted:  # no Path per entry
                continue
            path = Path(top, name)
            why = None if _regular(os.path.join(top, name)) else _why_not_a_file(path)
            if why is None:
                scan.files.append(path)
            else:
                scan.skipped.append((str(path), why))
    scan.files.sort()
    return scan
