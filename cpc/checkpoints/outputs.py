"""Output folders and files: one writer each, nothing half-written, disk errors in one line.

Every verb that writes goes through one of these, so that a full disk, a quota, a file
size limit or a read-only place gives the same answer everywhere: one line (an
:class:`~cpc.errors.OutputError`, exit status 2 on the command line) naming the path and,
for a lack of space, the space free there and the space needed; no temporary folder or
partial file left; what was there before left as it was.

- :func:`output_folder`: hold a folder's lock (:class:`~cpc.checkpoints.lock.RunLock`:
  a second writer is refused at once, naming the first) for the duration of a ``with``
  block; if the block fails in any way, everything it created under the folder is
  removed, and a write failure becomes an :class:`OutputError`.
- :func:`atomic_file`: write a single file under a temporary name beside it and rename
  it into place; a failure removes the temporary file.
- :func:`write_failure`, :func:`check_space`: the one-line message, and the check
  before a write whose size is known (a checkpoint).

Libraries (numpy, safetensors, torch's zip writer) report a failed write in their own
words, not always as an ``OSError`` with an ``errno`` (torch's says ``unexpected pos``):
:func:`is_write_failure` knows them, and a caller that writes with one of them while
holding a path knows that the failure was the write's.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

from cpc.checkpoints.lock import RunLock
from cpc.errors import OutputError

__all__ = [
    "atomic_file",
    "check_space",
    "free_bytes",
    "is_write_failure",
    "output_folder",
    "size_text",
    "write_failure",
]

#: errno values that mean "no room": a full disk, a quota, a file size limit (ulimit -f).
NO_ROOM = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
#: errno values that mean "not a place to write".
NOT_WRITABLE = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})
# How libraries word a failed write when they do not raise OSError(errno).
_WORDED = re.compile(
    r"No space left|Disk quota|File too large|Read-only file system|os error (?:28|27|122|30)\b"
    r"|requested and \d+ written|file write failed|unexpected pos \d+",
    re.IGNORECASE,
)
_ERRNO_IN_TEXT = re.compile(r"os error (\d+)")


def size_text(n: float) -> str:
    """``1.5 MB`` for 1_500_000 (decimal units, as ``df -H``)."""
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"  # pragma: no cover (the loop returns)


def free_bytes(path: str | Path) -> int | None:
    """Bytes free for this user on the file system of ``path`` (or its nearest existing
    parent); None when it cannot be asked.
    """
    here = Path(path).absolute()
    while not here.exists() and here != here.parent:
        here = here.parent
    try:
        return shutil.disk_usage(here).free
    except OSError:
        return None


def _errno(err: BaseException) -> int | None:
    code = getattr(err, "errno", None)
    if isinstance(code, int):
        return code
    match = _ERRNO_IN_TEXT.search(str(err))
    return int(match.group(1)) if match else None


def is_write_failure(err: BaseException) -> bool:
    """Whether ``err`` says a write failed for lack of room or permission."""
    code = _errno(err)
    if code is not None:
        return code in NO_ROOM or code in NOT_WRITABLE
    if type(err).__name__ == "LibsndfileError":  # soundfile: libsndfile lost the errno
        return "System error" in str(err)
    return isinstance(err, Exception) and bool(_WORDED.search(str(err)))


def write_failure(
    path: str | Path,
    err: BaseException,
    needed: int | None = None,
    hint: str = "",
    more_than: bool = False,
) -> OutputError:
    """The one-line error for a write to ``path`` that failed with ``err``.

    Args:
        path: What was being written (named first in the message).
        err: The failure.
        needed: Bytes the write needs (an estimate), when known.
        hint: What to do, appended to the message.
        more_than: ``needed`` is a lower bound ("more than ... needed").

    """
    code = _errno(err)
    if code in NOT_WRITABLE:
        return OutputError(f"{path}: cannot write there ({os.strerror(code)}){hint}")
    cause = os.strerror(code) if code is not None else str(err).splitlines()[0].strip()
    free = free_bytes(path)
    if code is None and free is not None and needed and free < needed:  # a library's words
        cause = f"{os.strerror(errno.ENOSPC)}: {cause}"
    room = [] if free is None else [f"{size_text(free)} free there"]
    if needed:
        room.append(f"{'more than' if more_than else 'about'} {size_text(needed)} needed")
    space = f"; {', '.join(room)}" if room else ""
    return OutputError(f"{path}: not written ({cause}){space}; nothing of it was kept{hint}")


def check_space(path: str | Path, needed: int, hint: str = "") -> None:
    """Raise the :func:`write_failure` of a full disk if ``needed`` bytes do not fit."""
    free = free_bytes(path)
    if free is not None and free < needed:
        raise write_failure(path, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)), needed, hint)


def _owner() -> str:
    return f"{os.getpid()}@{socket.gethostname()}"


@contextlib.contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` when the block ends.

    The temporary name keeps the suffix (writers that look at it still work). On any
    failure the temporary file is removed, and a write failure becomes an
    :class:`OutputError` naming ``path``.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp-{_owner()}{path.suffix}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if is_write_failure(err):
            raise write_failure(path, err) from None
        raise


def _listing(root: Path, only: str | None = None) -> set[Path]:
    """Everything under ``root``; with ``only``, the entries of ``root`` named after it."""
    if not root.is_dir():
        return set()
    if only is None:
        return set(root.rglob("*"))
    return {p for p in root.iterdir() if only in p.name}


def _remove_new(root: Path, before: set[Path], only: str | None = None) -> int:
    """Delete what appeared under ``root`` since ``before``; returns the bytes removed."""
    removed = 0
    for path in sorted(_listing(root, only) - before, key=lambda p: len(p.parts), reverse=True):
        try:
            if path.is_dir() and not path.is_symlink():
                removed += sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
                shutil.rmtree(path, ignore_errors=True)
            else:
                removed += path.lstat().st_size
                path.unlink()
        except OSError:
            pass
    return removed


@contextlib.contextmanager
def output_folder(
    path: str | Path, name: str, beside: bool = False, clean: bool = True
) -> Iterator[Path]:
    """Hold ``path``'s lock while the block writes into it; on failure, remove what it wrote.

    Args:
        path: The output folder (created if needed; removed again if the block fails
            and it held nothing before).
        name: How messages name it, e.g. ``--output feats``.
        beside: Lock ``PARENT/.NAME.lock`` (for a folder that must stay empty until it
            is renamed into place, as ``cpc convert`` writes it).
        clean: Remove what a failed block created. Off for folders of training runs
            (``cpc table1``, ``quickstart``, ``demo``), whose checkpoints are whole and
            resumable: a run interrupted there continues when the command is run again.

    Raises:
        RunBusyError: Another live process writes into ``path``.
        OutputError: The block failed to write (full disk, quota, read-only): the
            message names the file, the space free, and the space this run had used
            when it failed (a lower bound of what it needs).

    """
    path = Path(path)
    # Beside: the folder's own siblings (its temporary copy, ".tmp-NAME-PID"), not the
    # whole parent, which may be anything.
    roots = [(path, None), (path.parent, path.name)] if beside else [(path, None)]
    with RunLock(path, name, beside=beside):
        before = [(root, only, _listing(root, only)) for root, only in roots]
        try:
            yield path
        except BaseException as err:
            removed = sum(_remove_new(root, seen, only) for root, only, seen in before if clean)
            if is_write_failure(err):
                where = getattr(err, "filename", None) or path
                hint = (
                    f" ({name}: this run had written {size_text(removed)} when it failed, "
                    "all removed)"
                    if clean
                    else f" ({name}: what it completed stays; run the command again)"
                )
                free = free_bytes(where) or 0
                code = _errno(err)
                bound = removed + free if clean and (code is None or code in NO_ROOM) else None
                raise write_failure(where, err, bound, hint, more_than=True) from None
            raise
