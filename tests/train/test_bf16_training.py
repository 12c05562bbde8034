"""bf16 training (``run.precision=bf16``) runs, really uses bf16, and learns like float32.

The full-size check (the small preset, 500 steps, phone probe) is in
``benchmarks/NOTES.md``; here tiny models train from one seed in both precisions: through
the trainer's step functions (the loss trajectory, step by step) and through ``train``
(the config switch, the summary, the end point).
"""

import json

import pytest
import torch

import cpc
from cpc.losses.infonce import InfoNCE
from cpc.train import train
from cpc.train.steps import cpu_supports_bf16, micro_step, optimizer_step
from tests.models.test_learning import sine_streams

from .conftest import tiny_config, write_wavs

needs_bf16 = pytest.mark.skipif(not cpu_supports_bf16(), reason="this CPU has no native bf16")

STEPS = 60
CPU = torch.device("cpu")


def _trajectory(precision: str, steps: int = 30) -> torch.Tensor:
    """Training losses of a small signal model that learns, through the trainer's steps."""
    torch.manual_seed(0)
    model = cpc.cpc_signal(2, channels=32, context_dim=32, num_offsets=4, num_negatives=16)
    optimizer = torch.optim.Adam(model.parameters(), 3e-3)
    data = torch.Generator().manual_seed(0)
    losses = []
    for step in range(steps):
        batch = {"x": sine_streams(16, 256, data)}
        negatives = torch.Generator().manual_seed(step)
        out = micro_step(
            model, batch, device=CPU, precision=precision, generator=negatives, scale=1.0
        )
        optimizer_step(model, optimizer, grad_clip=1.0)
        losses.append(float(out.loss))
    return torch.tensor(losses)


@needs_bf16
def test_bf16_loss_trajectory_stays_close_to_float32():
    fp32, bf16 = _trajectory("fp32"), _trajectory("bf16")
    assert fp32[-5:].mean() < 0.7 * fp32[:5].mean(), f"the model must learn: {fp32}"
    assert not torch.equal(fp32, bf16), "bf16 was not used"
    # Measured on the development machine (AVX-512 bf16): at most 0.7% apart.
    relative = ((bf16 - fp32).abs() / fp32).max()
    assert relative < 0.02, (relative, fp32, bf16)


def _train_losses(data, out, precision):
    config = tiny_config(
        data, out, f"run.precision={precision}", f"optim.max_steps={STEPS}",
        "optim.warmup_steps=5", "data.val_fraction=0", "run.seed=3", "model.norm=batch",
        "optim.lr=0.005",
    )  # fmt: skip
    result = train(config)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return result.summary["precision"], [r["loss"] for r in rows if r["split"] == "train"]


@needs_bf16
def test_bf16_training_learns_like_float32(tmp_path):
    data = write_wavs(tmp_path / "wavs", count=8, low=3000, high=6000)
    used32, fp32 = _train_losses(data, tmp_path / "fp32", "fp32")
    used16, bf16 = _train_losses(data, tmp_path / "bf16", "bf16")
    assert (used32, used16) == ("fp32", "bf16")
    assert len(fp32) == len(bf16) == STEPS
    # bf16 really ran: the early losses already differ from float32's (the very first
    # can be exactly log(1 + negatives) in both, with a predictor that starts at zero)
    assert bf16[:5] != fp32[:5]
    assert all(abs(b - f) / f < 0.01 for b, f in zip(bf16[:5], fp32[:5], strict=True))
    # both learn: the mean of the last 10 steps is well below the first 10
    start32, end32 = sum(fp32[:10]) / 10, sum(fp32[-10:]) / 10
    end16 = sum(bf16[-10:]) / 10
    assert end32 < 0.8 * start32
    # and bf16 ends where float32 does
    assert abs(end16 - end32) / end32 < 0.05


@needs_bf16
def test_bf16_predictions_against_float32_latents_are_scored():
    """A norm kept in float32 gives float32 latents beside bf16 predictions."""
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(2, 20, 1, 8, generator=gen)
    pred = torch.randn(2, 20, 1, 3, 8, generator=gen)
    loss = InfoNCE(3, num_negatives=6, strategy="gather")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = loss(pred.bfloat16(), z, generator=torch.Generator().manual_seed(1)).loss
    rounded = loss(
        pred.bfloat16().float(), z.bfloat16().float(), generator=torch.Generator().manual_seed(1)
    ).loss
    torch.testing.assert_close(mixed, rounded, rtol=1e-2, atol=1e-2)
