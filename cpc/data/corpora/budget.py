"""Sizes of a generated corpus, checked before anything is created.

A generator's flags decide how much it writes (``--writers 1000000000``,
``--minutes 1e9``): each generator estimates the bytes it will write, and the bytes it
holds in memory while generating, from its counts, and refuses in one line naming the
limit before the output folder exists. The limits are the machine's (the free space
under the output folder, the memory available now) and a fixed ceiling per count that
keeps a run to days, not years, on one machine.
"""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

from cpc.data.seeds import check_seed
from cpc.errors import ConfigError


def check_count(value: int, name: str, least: int, most: int) -> int:
    """``value`` if it is an integer in ``[least, most]``.

    Raises:
        ConfigError: Naming ``name`` and the range.

    """
    if isinstance(value, bool) or not isinstance(value, int) or not least <= value <= most:
        raise ConfigError(f"{name} must be an integer in [{least}, {most}], got {value!r}")
    return value


def check_amount(value: float, name: str, most: float) -> float:
    """``value`` if it is a finite number in ``(0, most]`` (NaN and infinities fail).

    Raises:
        ConfigError: Naming ``name`` and the range.

    """
    if not (isinstance(value, int | float) and math.isfinite(value) and 0 < value <= most):
        raise ConfigError(f"{name} must be a number in (0, {most:g}], got {value!r}")
    return float(value)


def free_disk(path: Path) -> int:
    """Free bytes on the file system that would hold ``path`` (its nearest existing parent)."""
    for parent in [path, *path.parents]:
        if parent.exists():
            return shutil.disk_usage(parent).free
    return shutil.disk_usage(Path.cwd()).free


def available_memory() -> int | None:
    """Bytes of memory available now (Linux ``MemAvailable``), or None when unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return None


def _gb(n: float) -> str:
    return f"{n / 1e9:.3g} GB"


def check_bytes(what: str, disk: float, memory: float, out: Path) -> None:
    """Refuse a corpus needing more disk under ``out`` or more memory than there is.

    Args:
        what: The corpus and its counts, for the message.
        disk: Bytes it will write.
        memory: Bytes it holds in memory at once.
        out: The output folder (need not exist).

    Raises:
        ConfigError: One line with the estimate and the limit it passes.

    """
    free = free_disk(out)
    if disk > free:
        raise ConfigError(
            f"{what} would write about {_gb(disk)}; {out} has {_gb(free)} free: ask for less"
        )
    avail = available_memory()
    if avail is not None and memory > avail:
        raise ConfigError(
            f"{what} would hold about {_gb(memory)} in memory; {_gb(avail)} is available: "
            "ask for less"
        )


#: Signatures one pen corpus may hold, and the bytes one costs on disk and in memory
#: (measured: about 11 kB per .npy file; text files are larger, generation holds every
#: sample in memory before writing). A million signatures take hours to generate.
MAX_SIGNATURES = 1_000_000
MAX_PER_WRITER = 100_000
BYTES_PER_SIGNATURE = 16_000


def check_pen(out: Path, writers: int, genuine: int, forgeries: int, seed: int) -> None:
    """Bounds of a pen corpus (:mod:`cpc.data.corpora.pen` and ``pen_sessions``).

    Args:
        out: The output folder.
        writers: Writers.
        genuine: Genuine samples per writer.
        forgeries: Forgeries per writer.
        seed: The generator's seed.

    Raises:
        ConfigError: A count out of range, or a corpus larger than the limits.

    """
    check_count(writers, "writers (--writers)", 1, MAX_SIGNATURES)
    check_count(genuine, "samples per writer (--samples)", 1, MAX_PER_WRITER)
    check_count(forgeries, "forgeries per writer (--forgeries)", 0, MAX_PER_WRITER)
    check_seed(seed, "seed (--seed)")
    total = writers * (genuine + forgeries)
    if total > MAX_SIGNATURES:
        raise ConfigError(
            f"{writers} writers x {genuine + forgeries} samples = {total} signatures; "
            f"a pen corpus holds at most {MAX_SIGNATURES}"
        )
    size = total * BYTES_PER_SIGNATURE
    check_bytes(f"a pen corpus of {total} signatures", size, size, out)


#: Ceilings of a speech corpus: minutes of audio (about 19 GB of 16 kHz int16) and
#: speakers (each costs at least one sentence, a few seconds).
MAX_MINUTES = 10_000.0
MAX_SPEAKERS = 10_000
SECONDS_PER_SPEAKER = 4.0


def check_speech(
    out: Path, minutes: float, speakers: int, seed: int, sample_rate: int, workers: int
) -> None:
    """Bounds of an eSpeak corpus (:mod:`cpc.data.corpora.espeak`).

    Disk: 16-bit samples plus frame labels; memory: one speaker's audio as float64
    per worker.

    Raises:
        ConfigError: A value out of range, or a corpus larger than the limits.

    """
    check_amount(minutes, "minutes (--minutes)", MAX_MINUTES)
    check_count(speakers, "speakers (--speakers)", 1, MAX_SPEAKERS)
    check_seed(seed, "seed (--seed)")
    check_count(sample_rate, "sample_rate", 100, 192_000)
    seconds = max(minutes * 60.0, speakers * SECONDS_PER_SPEAKER)
    disk = seconds * sample_rate * 2 + seconds * 100 * 8
    memory = min(workers, speakers) * (seconds / speakers) * sample_rate * 8
    check_bytes(f"{minutes:g} minutes of speech by {speakers} speakers", disk, memory, out)
