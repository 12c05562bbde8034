"""Where numbers go: JSON lines, optional TensorBoard, a progress bar, throughput.

Every record is one line of ``out_dir/metrics.jsonl``::

    {"step": 500, "split": "train", "loss": 1.93, "accuracy": [0.61, ...], "lr": 0.0002,
     "items_per_s": 41.2, "input_seconds_per_s": 52.7, "time": 1712345678.9}

``accuracy`` has one entry per prediction offset; ``input_seconds_per_s`` (seconds of
input per second of training, summed over processes) is present when the input has a
known sampling rate (audio; signals resampled to ``data.rate``). Only rank 0 writes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from cpc.train import distributed

logger = logging.getLogger(__name__)

METRICS_FILE = "metrics.jsonl"


class MetricsLogger:
    """Append records to ``metrics.jsonl`` and, optionally, TensorBoard.

    Args:
        out_dir: The run directory.
        tensorboard: Also write TensorBoard scalars to ``out_dir/tensorboard`` (skipped
            with a warning when tensorboard is not installed).
        enabled: False on every rank but 0: then nothing is written.
        resume_step: On resume, records of steps after this one (written by the
            interrupted run after its last checkpoint, and about to be redone) are
            dropped, so the file holds each step once.

    """

    def __init__(
        self,
        out_dir: str | Path,
        tensorboard: bool = False,
        enabled: bool = True,
        resume_step: int | None = None,
    ) -> None:
        self.path = Path(out_dir) / METRICS_FILE
        self.enabled = enabled
        self._writer: Any = None
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is not None:
            self._truncate_after(resume_step)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                logger.warning("run.tensorboard is set but tensorboard is not installed; skipped")
            else:
                self._writer = SummaryWriter(str(Path(out_dir) / "tensorboard"))

    def _truncate_after(self, step: int) -> None:
        if not self.path.is_file():
            return
        kept = []
        for line in self.path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:  # a line cut by a kill
                continue
            if int(record.get("step", 0)) <= step:
                kept.append(line)
        tmp = self.path.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(f"{line}\n" for line in kept))
        os.replace(tmp, self.path)

    def log(self, record: dict[str, Any]) -> None:
        """Write one record (``step`` and ``split`` required; ``time`` added)."""
        if not self.enabled:
            return
        record = {**record, "time": round(time.time(), 3)}
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        if self._writer is not None:
            step, split = int(record["step"]), record["split"]
            for key, value in record.items():
                if key in ("step", "split", "time"):
                    continue
                if isinstance(value, list):
                    for k, v in enumerate(value):
                        self._writer.add_scalar(f"{split}/{key}_{k}", v, step)
                    if value:
                        self._writer.add_scalar(
                            f"{split}/{key}_mean", sum(value) / len(value), step
                        )
                elif isinstance(value, int | float):
                    self._writer.add_scalar(f"{split}/{key}", value, step)

    def close(self) -> None:
        """Flush and close TensorBoard."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class ProgressBar:
    """A tqdm bar over optimiser steps with loss, mean accuracy and throughput.

    Shown on rank 0 when enabled. On a terminal it refreshes every few tenths of a
    second; into a file or a pipe (cluster logs) at most once a minute.
    """

    def __init__(self, total: int, initial: int, enabled: bool) -> None:
        self._bar: Any = None
        if not enabled:
            return
        from tqdm.auto import tqdm

        tty = sys.stderr.isatty()
        self._bar = tqdm(
            total=total,
            initial=initial,
            desc="train",
            unit="step",
            dynamic_ncols=True,
            mininterval=0.2 if tty else 60.0,
            file=sys.stderr,
        )

    @property
    def active(self) -> bool:
        """Whether the bar is shown."""
        return self._bar is not None

    def update(self, n: int = 1, **postfix: str) -> None:
        """Advance by ``n`` steps and show ``postfix`` fields."""
        if self._bar is None:
            return
        if postfix:
            self._bar.set_postfix(postfix, refresh=False)
        self._bar.update(n)

    def write(self, message: str) -> None:
        """Print a line without breaking the bar."""
        if self._bar is not None:
            self._bar.write(message, file=sys.stderr)

    def close(self) -> None:
        """Remove the bar."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class Throughput:
    """Items and input seconds per second of training time, pauses excluded.

    Call :meth:`add` after every step and :meth:`pause`/:meth:`resume` around
    validation and checkpoints. :meth:`rates` reads and resets the current window;
    :meth:`overall` reads everything since construction.
    """

    def __init__(self) -> None:
        self._window = [0.0, 0.0, 0.0]  # items, input seconds, elapsed
        self._total = [0.0, 0.0, 0.0]
        self._start: float | None = time.perf_counter()

    def add(self, items: float, input_seconds: float) -> None:
        """Count a step's items and seconds of input."""
        for acc in (self._window, self._total):
            acc[0] += items
            acc[1] += input_seconds

    def _tick(self) -> None:
        if self._start is not None:
            now = time.perf_counter()
            self._window[2] += now - self._start
            self._total[2] += now - self._start
            self._start = now

    def pause(self) -> None:
        """Stop the clock."""
        self._tick()
        self._start = None

    def resume(self) -> None:
        """Restart the clock."""
        if self._start is None:
            self._start = time.perf_counter()

    def rates(self) -> tuple[float, float]:
        """(items/s, input seconds/s) since the last call."""
        self._tick()
        items, seconds, elapsed = self._window
        self._window = [0.0, 0.0, 0.0]
        return items / max(elapsed, 1e-9), seconds / max(elapsed, 1e-9)

    def overall(self) -> tuple[float, float]:
        """(items/s, input seconds/s) over everything counted."""
        self._tick()
        items, seconds, elapsed = self._total
        return items / max(elapsed, 1e-9), seconds / max(elapsed, 1e-9)


class RunLog:
    """The training loop's bookkeeping: running means, records, progress, throughput.

    :meth:`add` takes every micro-batch's loss and accuracy; :meth:`step` advances the
    bar and, when asked to emit, averages since the last record over every process
    (one all-reduce) and writes a ``train`` record; :meth:`val` writes a ``val`` one.
    Time spent inside :meth:`paused` (validation, checkpoints) does not count towards
    throughput.

    Args:
        out_dir, tensorboard, enabled, resume_step: As for :class:`MetricsLogger`.
        total_steps: The run's ``optim.max_steps``, for the bar.
        progress: Show the bar (rank 0 only).
        seconds_per_sample: Input seconds per sample, or None (then no
            ``input_seconds_per_s``).
        device: Where the all-reduced sums live (GPU under NCCL).

    """

    def __init__(
        self,
        out_dir: str | Path,
        *,
        tensorboard: bool,
        enabled: bool,
        resume_step: int,
        total_steps: int,
        progress: bool,
        seconds_per_sample: float | None,
        device: torch.device,
    ) -> None:
        self.metrics = MetricsLogger(out_dir, tensorboard, enabled, resume_step)
        self.bar = ProgressBar(total_steps, resume_step, enabled and progress)
        self.meter = Throughput()
        self.seconds_per_sample, self.device = seconds_per_sample, device
        self.last_train: dict[str, Any] = {}
        self.last_val: dict[str, Any] = {}
        self._reset()

    def _reset(self) -> None:
        self._count, self._items, self._samples = 0, 0.0, 0.0
        # loss then accuracy per offset, summed where they were computed: reading them
        # here would wait for the device at every micro-batch; step() reads them once
        # per logged step
        self._sums: torch.Tensor | None = None

    def add(self, loss: torch.Tensor, accuracy: torch.Tensor, items: int, samples: int) -> None:
        """Count one micro-batch: its loss (), accuracy (k,), items and input samples."""
        row = torch.cat([loss.detach().float().reshape(1), accuracy.detach().float().reshape(-1)])
        self._sums = row if self._sums is None else self._sums + row
        self._count += 1
        self._items += items
        self._samples += samples

    def step(self, step: int, lr: float, emit: bool) -> None:
        """One optimiser step done; write a ``train`` record if ``emit``."""
        if emit and self._sums is not None:
            counts = torch.tensor([self._count, self._items, self._samples], dtype=torch.float64)
            sums = torch.cat([counts.to(self.device), self._sums.to(self.device, torch.float64)])
            sums = distributed.all_reduce(sums, "sum").cpu()
            count, items, samples, loss = (float(v) for v in sums[:4])
            self.meter.add(items, samples)
            items_s, samples_s = self.meter.rates()
            record: dict[str, Any] = {
                "step": step,
                "split": "train",
                "loss": loss / count,
                "accuracy": [round(float(a) / count, 5) for a in sums[4:]],
                "lr": lr,
                "items_per_s": round(items_s, 3),
            }
            rate = f"{items_s:.1f}it/s"
            if self.seconds_per_sample is not None:
                record["input_seconds_per_s"] = round(samples_s * self.seconds_per_sample, 3)
                rate = f"{record['input_seconds_per_s']:.1f}s/s"
            self.last_train = record
            self.metrics.log(record)
            mean_acc = sum(record["accuracy"]) / max(len(record["accuracy"]), 1)
            self.bar.update(0, loss=f"{record['loss']:.3f}", acc=f"{mean_acc:.3f}", rate=rate)
            if not self.bar.active and self.metrics.enabled:
                logger.info(
                    "step %d: loss %.4f, mean accuracy %.3f, lr %.3g, %s",
                    step,
                    record["loss"],
                    mean_acc,
                    lr,
                    rate,
                )
            self._reset()
        self.bar.update(1)

    def val(self, step: int, loss: float, accuracy: list[float]) -> None:
        """Write a ``val`` record."""
        self.last_val = {"step": step, "split": "val", "loss": loss, "accuracy": accuracy}
        self.metrics.log(dict(self.last_val))
        mean_acc = sum(accuracy) / max(len(accuracy), 1)
        line = f"step {step}: val loss {loss:.4f}, mean accuracy {mean_acc:.3f}"
        if self.bar.active:
            self.bar.write(line)
        elif self.metrics.enabled:
            logger.info(line)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Stop the throughput clock for the duration."""
        self.meter.pause()
        try:
            yield
        finally:
            self.meter.resume()

    def overall(self) -> tuple[float, float | None]:
        """(items/s, input seconds/s or None) over the whole run so far."""
        items_s, samples_s = self.meter.overall()
        if self.seconds_per_sample is None:
            return items_s, None
        return items_s, samples_s * self.seconds_per_sample

    def close(self) -> None:
        """Close the bar and TensorBoard."""
        self.bar.close()
        self.metrics.close()
