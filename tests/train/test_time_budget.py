"""A time budget schedules: the learning rate decays over ``run.max_time`` to ``min_lr``."""

import itertools
import json

import pytest

import cpc.train.trainer as trainer
from cpc.config import OptimConfig
from cpc.train import train
from cpc.train.schedule import lr_at

from .conftest import tiny_config, write_wavs


def test_lr_follows_the_larger_of_step_and_time_progress():
    cfg = OptimConfig(lr=1e-3, min_lr=1e-5, warmup_steps=10, max_steps=1000)
    # Time ahead of steps: the position is elapsed / max_time of the way.
    assert lr_at(20, cfg, elapsed=100.0, max_time=100.0) == pytest.approx(1e-5)
    half = lr_at(20, cfg, elapsed=50.5, max_time=100.0)  # position 505 = 10 + 990 / 2
    assert half == pytest.approx((1e-3 + 1e-5) / 2)
    # Steps ahead of time: the step decides, exactly as without a budget.
    assert lr_at(500, cfg, elapsed=1.0, max_time=100.0) == lr_at(500, cfg)
    # Warm-up compresses into the first warmup_steps / max_steps of the budget.
    assert lr_at(0, cfg, elapsed=0.5, max_time=100.0) == pytest.approx(1e-3 * 6 / 10)


def test_budgeted_run_reaches_min_lr_at_the_budget(tmp_path, monkeypatch):
    ticks = iter(range(10**6))
    monkeypatch.setattr(trainer, "clock", lambda: float(next(ticks)))  # one second a call
    config = tiny_config(
        write_wavs(tmp_path / "wavs"),
        tmp_path / "run",
        "optim.max_steps=100000",
        "optim.warmup_steps=100",
        "optim.lr=1.0e-3",
        "optim.min_lr=1.0e-5",
        "run.max_time=20",
        "run.log_every=1",
    )
    result = train(config)
    assert result.summary["stop_reason"] == "max_time"
    rows = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    lrs = [json.loads(r)["lr"] for r in rows if json.loads(r)["split"] == "train"]
    # The clock advances 2 s a step (one read for the rate, one after the step).
    assert len(lrs) == result.step == 10
    assert max(lrs) > 0.9e-3  # the peak is reached early in the budget
    assert all(a >= b for a, b in itertools.pairwise(lrs))  # then decays
    last = lr_at(0, config.optim, elapsed=19.0, max_time=20.0)
    assert lrs[-1] == pytest.approx(last) and last < 1e-5 + 0.01 * (1e-3 - 1e-5)
    assert lr_at(0, config.optim, elapsed=20.0, max_time=20.0) == 1e-5
