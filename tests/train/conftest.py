"""Shared helpers for the training tests: tiny wav corpora, tiny configs, subprocesses."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.nn.functional as F

import cpc
from cpc.config import Config, load_config

REPO = Path(cpc.__file__).resolve().parent.parent

#: A CPU-sized audio model: receptive field 105 samples, 40x downsampling.
TINY_MODEL = [
    "model.channels=16",
    "model.context_dim=16",
    "model.kernels=[10, 8, 4]",
    "model.strides=[5, 4, 2]",
    "model.num_offsets=4",
    "model.num_negatives=8",
]


@pytest.fixture(autouse=True)
def _one_thread_for_training_tests(one_thread):
    """Every training test runs on one thread (``tests/conftest.py``)."""


def write_wavs(
    folder: Path, count: int = 6, low: int = 2000, high: int = 5000, seed: int = 0
) -> Path:
    """Noisy tones of random lengths in two speaker folders."""
    rng = np.random.default_rng(seed)
    for i in range(count):
        speaker = folder / f"spk{i % 2}"
        speaker.mkdir(parents=True, exist_ok=True)
        n = int(rng.integers(low, high))
        t = np.arange(n) / 16000
        x = 0.3 * np.sin(2 * np.pi * (150 + 40 * i) * t) + 0.05 * rng.standard_normal(n)
        sf.write(speaker / f"f{i}.wav", x.astype(np.float32), 16000)
    return folder


#: The common (head) keys of TINY_MODEL: what a tiny model of any modality can take.
TINY_HEAD = ["model.context_dim=16", "model.num_offsets=4", "model.num_negatives=8"]


def tiny_config(
    train_dir: str | Path, out_dir: Path, *overrides: str, model: list[str] = TINY_MODEL
) -> Config:
    """A fast audio run: 1024-sample windows, batches of 4, a few steps.

    ``model``: the model keys (another modality: :data:`TINY_HEAD` and its own keys).
    """
    base = [
        *model,
        f"data.train={train_dir}",
        "data.window=1024",
        "data.batch_size=4",
        f"run.out_dir={out_dir}",
        "run.device=cpu",
        "run.progress=false",
        "run.log_every=1",
        "run.val_every=1000",
        "run.ckpt_every=1000",
        "run.val_batches=2",
        "optim.max_steps=4",
        "optim.warmup_steps=2",
        "optim.lr=0.002",
    ]
    return load_config(None, [*base, *overrides])


def subprocess_env() -> dict[str, str]:
    """Environment for child processes: this checkout on the path, one thread each."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["OMP_NUM_THREADS"] = "1"
    return env


def run_python(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``python args...`` with :func:`subprocess_env`.

    The child gets its own process group, and on a timeout the whole group is killed:
    torchrun's workers would otherwise outlive it and hold its output pipes open.
    """
    proc = subprocess.Popen(
        [sys.executable, *args],
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(f"{args} timed out after {timeout}s\n{out}\n{err}") from None
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def latest(out_dir: Path) -> Path:
    """The newest checkpoint of a run, which must exist."""
    from cpc.train import latest_checkpoint

    found = latest_checkpoint(out_dir)
    assert found is not None, f"no checkpoint in {out_dir}"
    return found


def checkpoint_of(result: object) -> Path:
    """The checkpoint a :class:`~cpc.train.TrainResult` names, which must exist."""
    path = getattr(result, "checkpoint", None)
    assert isinstance(path, Path), "the run wrote no checkpoint"
    return path


@contextmanager
def dropout_in_models(p: float = 0.2) -> Iterator[None]:
    """Models built by the trainer drop latents before the context, with torch's global RNG.

    The tiny model has no randomness of its own outside the trainer's per-step
    generators, so a resume that forgot to restore the global RNG would go unnoticed.
    """
    import cpc.train.trainer as trainer

    real = trainer.build_model

    def build(config):  # type: ignore[no-untyped-def]
        model = real(config)
        model.context.register_forward_pre_hook(
            lambda module, args: (F.dropout(args[0], p, module.training), *args[1:])
        )
        return model

    trainer.build_model = build
    try:
        yield
    finally:
        trainer.build_model = real


@pytest.fixture
def fresh_run(tmp_path):
    """A tiny run's config, its model built from seed 0 (untrained) and its optimizer."""
    from cpc.data.registry import build_model
    from cpc.train.schedule import build_optimizer

    config = tiny_config(tmp_path / "data", tmp_path / "run")
    torch.manual_seed(0)
    model = build_model(config.model)
    return config, model, build_optimizer(model, config.optim)


def save_step(config, model, optimizer, step, **kwargs):
    """``save_checkpoint`` of a run at ``step`` (epoch 2, batch 1 unless ``state=`` says)."""
    from cpc.checkpoints.store import TrainState, save_checkpoint

    state = kwargs.pop("state", TrainState(step=step, epoch=2, batch_in_epoch=1))
    return save_checkpoint(
        config.run.out_dir, model=model, optimizer=optimizer, state=state, config=config,
        **kwargs,
    )  # fmt: skip
