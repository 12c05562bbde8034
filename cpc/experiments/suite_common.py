"""What every family of the task suite shares: rows, sizes, pretraining and pooling.

A *row* is one named pretraining configuration (config overrides on the family's preset)
or a feature choice on another row's checkpoint (``layer="encoder+context"``); every row
of a family goes through the same probes as the family's baselines and its untrained
network. See :mod:`cpc.experiments.suite` for the pipeline.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from cpc.checkpoints.loading import load_model
from cpc.config import Config, load_config
from cpc.features.extract import extract_sequence
from cpc.models.cpc import CPCModel
from cpc.train.trainer import train

log = logging.getLogger("cpc.suite")

FAMILIES: tuple[str, ...] = ("speech", "signals", "images")
DEFAULT_ROW = "CPC (default)"
UNTRAINED = "untrained network"


@dataclass(frozen=True)
class Row:
    """One CPC row of the suite.

    Attributes:
        name: Shown in the table.
        overrides: Config overrides on the family's preset (``section.key=value``).
        layer: ``"context"``, ``"encoder"`` or ``"encoder+context"`` (concatenated).
        reuse: Name of the row whose checkpoint this row reads instead of pretraining
            its own (a feature choice, not a training choice); None: its own.
        families: The families it applies to.

    """

    name: str
    overrides: tuple[str, ...] = ()
    layer: str = "context"
    reuse: str | None = None
    families: tuple[str, ...] = FAMILIES

    @property
    def slug(self) -> str:
        """A file-name-safe form of the name."""
        return re.sub(r"[^a-z0-9]+", "_", self.name.lower()).strip("_")


#: The rows of the committed table: the default, the speech candidates of issue 20, and
#: the two-layer features (free: they read the default row's checkpoint).
DEFAULT_ROWS: tuple[Row, ...] = (
    Row(DEFAULT_ROW),
    Row("negatives=batch", ("model.negatives=batch",), families=("speech",)),
    Row(
        "negatives=mixed (half own sequence)",
        ("model.negatives=mixed", "model.sequence_fraction=0.5"),
        families=("speech",),
    ),
    Row(
        "same-speaker batches (batch negatives)",
        ("model.negatives=batch", "data.group_by=speaker"),
        families=("speech",),
    ),
    Row("encoder+context features", layer="encoder+context", reuse=DEFAULT_ROW),
)


@dataclass(frozen=True)
class Sizes:
    """Sizes and budgets of one suite run (defaults: the committed table)."""

    speech_steps: int = 300
    speech_batch: int = 16
    """Speech windows per batch (the preset's)."""
    phone_minutes: float = 16.0
    phone_speakers: int = 12
    unseen_speakers: int = 2
    speaker_minutes: float = 12.0
    speaker_speakers: int = 32
    language_minutes: float = 8.0
    language_speakers: int = 24
    word_voices: int = 8
    max_phone_frames: int = 60_000
    label_fraction: float = 0.02
    series_steps: int = 200
    series_sets: tuple[str, ...] = (
        "ArrowHead",
        "BasicMotions",
        "GunPoint",
        "ItalyPowerDemand",
        "JapaneseVowels",
        "OSULeaf",
        "PickupGestureWiimoteZ",
        "ACSF1",
    )
    signature_writers: tuple[int, int] = (40, 15)
    """Pretraining and evaluation writers of the signature benchmark."""
    signature_steps: int = 300
    image_steps: int = 300
    image_train: int = 10_000
    image_test: int = 10_000
    per_class: int = 10


QUICK = Sizes(
    speech_steps=2,
    speech_batch=4,
    phone_minutes=0.5,
    phone_speakers=3,
    unseen_speakers=1,
    speaker_minutes=0.4,
    speaker_speakers=3,
    language_minutes=0.4,
    language_speakers=8,
    word_voices=2,
    max_phone_frames=2000,
    label_fraction=0.02,
    series_steps=2,
    series_sets=("ItalyPowerDemand",),
    signature_writers=(4, 3),
    signature_steps=2,
    image_steps=2,
    image_train=200,
    image_test=100,
    per_class=2,
)


@dataclass
class Context:
    """One family's run: where it works, its sizes, rows and seed."""

    work: Path
    sizes: Sizes
    rows: list[Row]
    seed: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def trained(self) -> list[Row]:
        """The rows that pretrain a checkpoint of their own."""
        return [r for r in self.rows if r.reuse is None]


def pretrain(preset: str, overrides: list[str], run_dir: Path) -> tuple[CPCModel, Config]:
    """Pretrain ``preset`` with ``overrides`` into ``run_dir`` (a finished run is reused:
    the trainer resumes from its last checkpoint and stops at ``optim.max_steps``).
    """
    config = load_config(preset, [f"run.out_dir={run_dir}", "run.progress=false", *overrides])
    train(config)
    return load_model(run_dir).eval(), config


@torch.no_grad()
def sequence_features(model: CPCModel, x: Tensor, layer: str) -> Tensor:
    """Frame features ``(s, d)`` of one whole item; ``"encoder+context"`` concatenates."""
    parts = [extract_sequence(model, x, part, chunk_steps=None) for part in layer.split("+")]
    steps = min(len(p) for p in parts)
    return torch.cat([p[:steps].reshape(steps, -1) for p in parts], dim=1)


def pooled(frames: Tensor) -> Tensor:
    """Mean and standard deviation over time, one vector: ``(s, d) -> (2 d,)``."""
    frames = frames.reshape(len(frames), -1).float()
    std = frames.std(0, unbiased=False) if len(frames) > 1 else torch.zeros(frames.shape[1])
    return torch.cat([frames.mean(0), std])


def few_labels(labels: np.ndarray, fraction: float, seed: int, minimum: int = 1) -> np.ndarray:
    """Indices of a class-stratified ``fraction`` of ``labels`` (at least ``minimum`` per
    class), the labelled part of a low-label probe.
    """
    rng = np.random.default_rng(seed)
    keep: list[int] = []
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        n = max(minimum, round(fraction * len(idx)))
        keep += rng.permutation(idx)[:n].tolist()
    return np.sort(np.asarray(keep, dtype=np.int64))


@contextmanager
def timing(ctx: Context, key: str) -> Iterator[None]:
    """Add the wall time of the ``with`` block to ``ctx.timings[key]``."""
    start = time.monotonic()
    try:
        yield
    finally:
        ctx.timings[key] = ctx.timings.get(key, 0.0) + time.monotonic() - start
