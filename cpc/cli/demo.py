"""``cpc demo``: pretrain a small signal model on synthetic streams, through the trainer.

The streams are two-channel sinusoids with a random frequency and phase per file plus
noise (channel 0) and the clean cosine (channel 1), written as ``.npy`` files into the
run folder; the model is trained by :func:`cpc.train.trainer.train` like any run, for a
time budget, and the per-offset accuracy of the last logged steps is printed beside
chance (one positive among ``num_negatives + 1`` candidates).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from pathlib import Path

import numpy as np

from cpc.cli.outputs import writes_folder
from cpc.config import Config, ConfigError, DataConfig, ModelConfig, OptimConfig, RunConfig
from cpc.data.recipes.signal import SignalModel
from cpc.data.seeds import check_seed
from cpc.train.trainer import train

FILES = 64
LENGTH = 2048
MAX_SECONDS = 7 * 24 * 3600.0  # a week


def write_streams(folder: Path, seed: int) -> Path:
    """``FILES`` synthetic two-channel streams of ``LENGTH`` samples as ``.npy`` files."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n = np.arange(LENGTH, dtype=np.float32)
    for i in range(FILES):
        f, phase = rng.uniform(0.02, 0.1), rng.uniform(0, 2 * math.pi)
        noisy = np.sin(2 * math.pi * f * n + phase) + 0.1 * rng.standard_normal(LENGTH)
        clean = np.cos(2 * math.pi * f * n)
        np.save(folder / f"stream_{i:03d}.npy", np.stack([noisy, clean], 1).astype(np.float32))
    return folder


def demo_config(out: Path, seconds: float, seed: int) -> Config:
    """The demo's run: a small signal model, 512-sample windows, a time budget."""
    return Config(
        model=ModelConfig(
            modality="signal",
            modality_fields=SignalModel(in_channels=2, channels=64),
            context_dim=64,
            num_offsets=6,
            num_negatives=32,
        ),
        data=DataConfig(train=str(out / "streams"), window=512, batch_size=32),
        optim=OptimConfig(lr=2e-3, warmup_steps=20, max_steps=100_000),
        run=RunConfig(
            out_dir=str(out / "run"),
            seed=seed,
            device="cpu",
            max_time=seconds,
            log_every=20,
            val_every=10**9,
            ckpt_every=10**9,
            progress=False,
            resume=False,
        ),
    )


@writes_folder("out", "--out")  # its run does not resume: a failed one leaves nothing
def run(args: argparse.Namespace) -> int:
    """Train for ``--seconds`` and print the accuracy per offset against chance."""
    if not (math.isfinite(args.seconds) and 0 < args.seconds <= MAX_SECONDS):
        raise ConfigError(f"--seconds must be a number in (0, {MAX_SECONDS:g}], got {args.seconds}")
    check_seed(args.seed, "--seed")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    write_streams(args.out / "streams", args.seed)
    config = demo_config(args.out, args.seconds, args.seed)
    result = train(config)
    last = result.summary.get("train") or {}
    accuracy = " ".join(f"{a:.2f}" for a in last.get("accuracy", []))
    chance = 1 / (int(config.model.num_negatives or 0) + 1)
    print(f"step {result.step}: accuracy per offset [{accuracy}]; chance {chance:.3f}")
    print(json.dumps({"checkpoint": str(result.checkpoint)}))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``demo``."""
    p = sub.add_parser("demo", help="pretrain a small model on synthetic streams for a minute")
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("runs/demo"), help="run folder (new)")
    p.set_defaults(func=run)
