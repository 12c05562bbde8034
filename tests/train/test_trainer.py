import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from cpc.config import ConfigError
from cpc.errors import EmptyDatasetError, NonFiniteLossError
from cpc.train import load_model, train
from cpc.train.steps import cpu_supports_bf16, micro_step, optimizer_step

from .conftest import TINY_HEAD, checkpoint_of, latest, tiny_config, write_wavs


def records(out_dir):
    return [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]


def test_end_to_end_run_reports_skips_metrics_and_checkpoints(tmp_path):
    data = write_wavs(tmp_path / "wavs", count=8)
    (data / "spk0" / "broken.wav").write_bytes(b"not audio")
    (data / "spk1" / "empty.wav").write_bytes(b"")
    out = tmp_path / "run"
    config = tiny_config(
        data, out, "data.val_fraction=0.25", "run.val_every=2", "run.ckpt_every=2",
        "run.keep_last=1", "run.tensorboard=true",
    )  # fmt: skip
    result = train(config)
    assert result.step == 4
    assert checkpoint_of(result) == latest(out) and checkpoint_of(result).name == "step_00000004"
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["step_00000004"]
    skipped = result.summary["data"]["skipped_by_reason"]
    assert skipped == {"unreadable": 1, "empty": 1}
    assert result.summary["stop_reason"] == "max_steps"
    assert result.input_seconds_per_s is not None and result.input_seconds_per_s > 0
    assert result.items_per_s > 0

    rows = records(out)
    train_rows = [r for r in rows if r["split"] == "train"]
    val_rows = [r for r in rows if r["split"] == "val"]
    assert [r["step"] for r in train_rows] == [1, 2, 3, 4]
    assert [r["step"] for r in val_rows] == [2, 4]
    for r in train_rows:
        assert len(r["accuracy"]) == 4 and math.isfinite(r["loss"])
        assert r["lr"] > 0 and r["input_seconds_per_s"] > 0
    assert train_rows[0]["lr"] == pytest.approx(0.001)  # warm-up step 1 of 2
    assert json.loads((out / "summary.json").read_text())["step"] == 4
    assert (out / "config.yaml").is_file()
    load_model(out)


def test_non_finite_loss_stops_and_keeps_the_last_checkpoint(tmp_path):
    data = write_wavs(tmp_path / "wavs")
    out = tmp_path / "run"
    config = tiny_config(data, out, "run.ckpt_every=2", "optim.max_steps=8")

    def poison(step, model):
        if step == 3:
            with torch.no_grad():
                next(model.parameters()).fill_(float("nan"))

    with pytest.raises(NonFiniteLossError, match=r"non-finite loss \(nan.*at step 4") as err:
        train(config, on_step=poison)
    assert "step_00000002" in str(err.value)
    assert latest(out).name == "step_00000002"
    model = load_model(out)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert max(r["step"] for r in records(out)) == 3


def test_max_time_stops_cleanly_with_a_checkpoint(tmp_path):
    config = tiny_config(write_wavs(tmp_path / "wavs"), tmp_path / "run", "run.max_time=0.000001")
    result = train(config)
    assert result.step == 1 and result.summary["stop_reason"] == "max_time"
    assert checkpoint_of(result).name == "step_00000001"


def test_existing_checkpoints_without_resume_and_empty_data_are_errors(tmp_path):
    config = tiny_config(write_wavs(tmp_path / "wavs"), tmp_path / "run", "optim.max_steps=1")
    train(config)
    config.run.resume = False
    with pytest.raises(ConfigError, match="already holds checkpoints"):
        train(config)
    empty = tmp_path / "empty"
    (empty / "a").mkdir(parents=True)
    (empty / "a" / "x.wav").write_bytes(b"")
    with pytest.raises(EmptyDatasetError, match="no usable files"):
        train(tiny_config(empty, tmp_path / "run2"))


def test_resume_at_max_steps_is_a_no_op(tmp_path):
    config = tiny_config(write_wavs(tmp_path / "wavs"), tmp_path / "run", "optim.max_steps=2")
    first = train(config)
    again = train(config)
    assert again.step == 2 and checkpoint_of(again) == checkpoint_of(first)


class MeanModel(nn.Module):
    """A loss that is a mean over items, like CPC's with equal-length windows."""

    def __init__(self):
        super().__init__()
        self.w = nn.Linear(3, 1)

    def forward(self, x, lengths=None, generator=None):
        loss = ((self.w(x).squeeze(-1) - 1.0) ** 2).mean()
        return type("Out", (), {"loss": loss, "accuracy": torch.zeros(2)})()


def test_accumulating_two_micro_batches_equals_one_double_batch():
    torch.manual_seed(0)
    x = torch.randn(8, 3)
    models = [MeanModel(), MeanModel()]
    models[1].load_state_dict(models[0].state_dict())
    opts = [torch.optim.AdamW(m.parameters(), lr=0.1) for m in models]
    cpu = torch.device("cpu")
    for _ in range(3):
        for half in (x[:4], x[4:]):
            micro_step(models[0], {"x": half}, device=cpu, precision="fp32", generator=None,
                       scale=0.5)  # fmt: skip
        optimizer_step(models[0], opts[0], grad_clip=1.0)
        micro_step(models[1], {"x": x}, device=cpu, precision="fp32", generator=None, scale=1.0)
        optimizer_step(models[1], opts[1], grad_clip=1.0)
    for a, b in zip(models[0].parameters(), models[1].parameters(), strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)


@pytest.mark.skipif(not cpu_supports_bf16(), reason="this CPU has no native bf16")
def test_bf16_autocast_smoke(tmp_path):
    config = tiny_config(write_wavs(tmp_path / "wavs"), tmp_path / "run", "run.precision=bf16",
                         "optim.max_steps=2")  # fmt: skip
    result = train(config)
    assert result.summary["precision"] == "bf16"
    assert math.isfinite(result.summary["train"]["loss"])


def test_signal_and_image_runs(tmp_path):
    rng = np.random.default_rng(0)
    sig = tmp_path / "sig" / "w1"
    sig.mkdir(parents=True)
    for i in range(8):
        t = np.arange(300)[:, None]
        np.save(sig / f"s{i}.npy", np.sin(t / (5 + i) + rng.random(3)) + 0.1 * rng.random((300, 3)))
    config = tiny_config(
        tmp_path / "sig", tmp_path / "run_sig", "model.modality=signal", "data.kind=signal",
        "model.in_channels=3", "model.kernels=[4, 4]", "model.strides=[2, 2]",
        "data.window=64", "data.normalize=dataset", "optim.max_steps=2",
    )  # fmt: skip
    result = train(config)
    meta = json.loads((checkpoint_of(result) / "meta.json").read_text())
    assert meta["data"]["channels"] == ["0", "1", "2"] and "stats" in meta["data"]

    config = tiny_config(
        "textures", tmp_path / "run_img", "model.modality=image", "data.kind=image",
        "model.in_channels=1", "model.patch_size=8", "model.patch_stride=4",
        "model.widths=[8]", "model.dim=16", "model.context=masked_conv",
        "model.context_layers=1", "model.num_offsets=2", "data.image_size=20",
        "data.val_fraction=0.1", "run.val_every=2", "optim.max_steps=2",
        model=TINY_HEAD,  # the speech encoder keys are not image keys
    )  # fmt: skip
    result = train(config)
    assert result.input_seconds_per_s is None and result.items_per_s > 0
    assert len(result.summary["val"]["accuracy"]) == 2


def test_worker_processes_do_not_change_what_is_trained(tmp_path):
    data = write_wavs(tmp_path / "wavs")
    weights = []
    for workers in (0, 2):
        out = tmp_path / f"run{workers}"
        result = train(tiny_config(data, out, f"data.num_workers={workers}", "optim.max_steps=3"))
        weights.append(load_model(checkpoint_of(result)).state_dict())
    for key, value in weights[0].items():
        assert torch.equal(value, weights[1][key]), key
