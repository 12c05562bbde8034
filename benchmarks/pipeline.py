"""The data pipeline: time to produce a training batch from wav files.

Wav files at 8, 16 and 44.1 kHz are written to a temporary folder; a batch is 8
random 20480-sample windows at 16 kHz read by :class:`cpc.data.AudioWindowDataset`
(only the needed stretch of each file is decoded, then resampled) and padded by
:func:`cpc.data.pad_collate`, one batch after another on one thread: what a
``DataLoader`` worker does (workers run with ``torch.set_num_threads(1)``), timed
without the overlap with compute that workers give. The time is compared with the time
the paper model needs to consume the batch (its training step).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch

from benchmarks.common import median
from cpc.data import AudioWindowDataset, pad_collate


def _write_wavs(folder: Path, rate: int, files: int, seconds: float) -> None:
    rng = np.random.default_rng(rate)
    t = np.arange(int(seconds * rate)) / rate
    for i in range(files):
        tone = 0.3 * np.sin(2 * np.pi * (110 + 20 * i) * t)
        wave = (tone + 0.05 * rng.standard_normal(t.size)).astype(np.float32)
        sf.write(folder / f"clip{i:03d}.wav", wave, rate, subtype="PCM_16")


def pipeline(
    step_time_s: float,
    rates: tuple[int, ...] = (8000, 16000, 44100),
    batch: int = 8,
    window: int = 20480,
    batches: int = 10,
    files: int = 16,
    seconds: float = 6.0,
) -> dict[str, Any]:
    """Median time per batch for each source rate, and its share of a training step."""
    rng = np.random.default_rng(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rows = _measure(rates, batch, window, batches, files, seconds, rng, step_time_s)
    finally:
        torch.set_num_threads(threads)
    return {
        "batch": batch,
        "window": window,
        "target_rate": 16000,
        "threads": 1,
        "step_time_s": step_time_s,
        "rows": rows,
    }


def _measure(
    rates: tuple[int, ...],
    batch: int,
    window: int,
    batches: int,
    files: int,
    seconds: float,
    rng: np.random.Generator,
    step_time_s: float,
) -> list[dict[str, Any]]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for rate in rates:
            folder = Path(tmp) / str(rate)
            folder.mkdir()
            _write_wavs(folder, rate, files, seconds)
            data = AudioWindowDataset(folder, sample_rate=16000, window=window)
            times = []
            for epoch in range(batches + 1):  # the first batch builds the resampler
                data.set_epoch(epoch)
                picks = rng.choice(len(data), size=batch, replace=False)
                start = time.perf_counter()
                pad_collate([data[int(i)] for i in picks])
                times.append(time.perf_counter() - start)
            t = median(times[1:])
            rows.append({"source_rate": rate, "time_s": t, "share_of_step": t / step_time_s})
    return rows
