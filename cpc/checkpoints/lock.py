"""One writer per output folder: a lock file held with ``flock``.

Every verb that writes a folder holds its lock while it writes (``cpc pretrain`` its
run directory, ``cpc extract`` its ``--output``, ...; see
:func:`cpc.checkpoints.outputs.output_folder`). ``FOLDER/.lock`` is opened and locked
with ``fcntl.flock(LOCK_EX | LOCK_NB)``; the holder writes its pid, host and start time
into it. The kernel releases the lock when the holder exits in any way (including
``kill -9``), so a lock whose process is gone is simply free and the next run takes it
over, saying whose it was. A second writer of a busy folder refuses at once with one
line naming the holder, before it reads any data or writes anything. (On NFS, Linux
maps ``flock`` onto byte-range locks that the server arbitrates between clients.)
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import socket
import sys
import time
from pathlib import Path
from types import TracebackType

from cpc.config import ConfigError
from cpc.errors import RunBusyError

logger = logging.getLogger(__name__)

LOCK_NAME = ".lock"


def _holder(text: str) -> str:
    """'pid 123 on host h since T' from a lock file's contents (best effort)."""
    try:
        info = json.loads(text)
        return f"pid {info['pid']} on host {info['host']} (since {info['since']})"
    except (ValueError, KeyError, TypeError):
        return "an unknown process"


class RunLock:
    """Exclusive lock of an output folder for the lifetime of the run writing it.

    Usage: ``with RunLock(out_dir): ...``. A lock file this lock created is removed on
    release (and the folder too if this lock created it and it stayed empty); one found
    there (left by a run that was killed) stays, describing its last holder.

    Args:
        out_dir: The folder to lock.
        name: How messages name it (default ``run.out_dir=OUT``; a verb passes its flag,
            ``--output OUT``).
        beside: Lock ``PARENT/.NAME.lock`` instead of ``OUT/.lock``, for a folder that
            must be empty or absent until it is renamed into place whole.

    Raises (on enter):
        RunBusyError: Another live process holds the lock.
        ConfigError: The directory cannot be created or written (read-only, a file).

    """

    def __init__(self, out_dir: str | Path, name: str | None = None, beside: bool = False) -> None:
        self.target = Path(out_dir)
        self.name = name or f"run.out_dir={self.target}"
        self.beside = beside
        self.out_dir = self.target.parent if beside else self.target
        self.path = self.out_dir / (f".{self.target.name}{LOCK_NAME}" if beside else LOCK_NAME)
        self._fd: int | None = None
        self._made_dirs: list[Path] = []  # folders this lock created, deepest first
        self._made_file = False

    def acquire(self) -> None:
        """Take the lock or raise; a stale holder (process gone) is replaced."""
        self._made_dirs = [p for p in [self.out_dir, *self.out_dir.parents] if not p.exists()]
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            for _ in range(10):  # the file may be replaced between open and flock
                fd = self._lock_file()
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
                if same:
                    break
                os.close(fd)
            else:
                raise ConfigError(f"{self.path}: keeps changing; is another run starting?")
        except FileNotFoundError:
            raise ConfigError(f"{self.path}: removed while locking; try again") from None
        except OSError as err:
            for parent in [self.out_dir, *self.out_dir.parents]:
                if parent.exists() and not parent.is_dir():
                    raise ConfigError(f"{self.name}: {parent} is a file, not a folder") from None
            raise ConfigError(f"{self.name}: cannot write there ({err.strerror or err})") from None
        previous = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip()
        self._made_file = not previous
        if previous:
            logger.info("taking over %s left by %s, which has exited", self.path, _holder(previous))
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "command": " ".join(sys.argv)[:500],
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        os.fsync(fd)  # other nodes of a distributed run read it (trainer._check_shared)
        self._fd = fd

    def _lock_file(self) -> int:
        """Open and flock the lock file; RunBusyError when a live process holds it."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            previous = os.pread(fd, 4096, 0).decode("utf-8", "replace")
            os.close(fd)
            if err.errno in (errno.EWOULDBLOCK, errno.EACCES):
                other = self.name.split("=")[0].split(" ")[0]
                raise RunBusyError(
                    f"{self.name} is in use by {_holder(previous)}: wait for it to finish "
                    f"or pick another {other}"
                ) from None
            raise
        return fd

    def release(self) -> None:
        """Give the lock up (idempotent).

        The lock file is removed when this lock created it, and the directory (and the
        parents it had to create) too when nothing else was written there: a run that stopped
        before writing anything leaves nothing behind. Acquirers check that the file they
        locked is still the one at the path, so removing it cannot let two runs in.
        """
        if self._fd is None:
            return
        try:
            if self._made_file:
                self.path.unlink()
                for folder in self._made_dirs:  # the folder, then parents it had to make
                    if any(folder.iterdir()):
                        break
                    folder.rmdir()
        except OSError:
            pass  # leaving an empty lock behind is harmless
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        err: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
