"""How fast the small speech preset leaves chance, per encoder variant and learning rate.

The measurement behind ``results/layernorm/``: the small preset's shape (128 channels,
GRU of 128, 12 offsets, 64 negatives, windows of 10240 samples, batches of 16) trained
with the preset's optimiser (AdamW without decay, linear warm-up over 100 steps, cosine
to 3000, gradient clip 5) on windows of a corpus made by ``cpc data espeak``. Every
variant sees the same batches and the same negatives. Prints one JSON line per
(variant, lr) with the loss and mean accuracy averaged over the 10 steps ending at each
reported step, and the encoder's time-varying share of its output at those steps (1:
latents vary over time like batch-norm ones; near 0: a constant vector per channel).

    python -m benchmarks.layernorm_learning --corpus /tmp/espeak/manifest.csv
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import torch
from torch import Tensor

from cpc.config import OptimConfig
from cpc.data.audio import AudioWindowDataset
from cpc.models.builders import cpc_audio_small
from cpc.models.cpc import CPCModel
from cpc.models.encoders import ConvEncoder
from cpc.train.schedule import build_optimizer, lr_at, set_lr
from cpc.train.steps import negatives_generator


def _old_conv_bias(model: CPCModel) -> None:
    """Convolutions with PyTorch's default bias, as before the fix."""
    encoder = model.encoder
    assert isinstance(encoder, ConvEncoder)
    norm = "batch" if isinstance(encoder.layers[1], torch.nn.BatchNorm1d) else "layer"
    model.encoder = ConvEncoder(1, encoder.out_dim, encoder.kernels, encoder.strides, norm, True)


def _old_predictor(model: CPCModel) -> None:
    """The maps with ``nn.Linear``'s default random initialisation, as before the fix."""
    first = model.predictor.first
    assert isinstance(first, torch.nn.Linear)
    first.reset_parameters()


#: Variants: builder arguments, then changes back to the code before the fix.
VARIANTS: dict[str, tuple[str, tuple[Callable[[CPCModel], None], ...]]] = {
    "batch": ("batch", ()),
    "layer": ("layer", ()),
    "batch_before": ("batch", (_old_predictor,)),
    "layer_before": ("layer", (_old_conv_bias, _old_predictor)),
    "layer_no_conv_bias_only": ("layer", (_old_predictor,)),
    "layer_zero_maps_only": ("layer", (_old_conv_bias,)),
}


def _variant(name: str) -> CPCModel:
    """The model of a named variant (seeded: every variant starts from one draw)."""
    norm, changes = VARIANTS[name]
    torch.manual_seed(0)
    model = cpc_audio_small(norm=norm)
    torch.manual_seed(1)
    for change in changes:
        change(model)
    return model


def time_varying_share(z: Tensor) -> float:
    """Share of the latents' energy that varies over time. Shape: z (b, s, p, d)."""
    centred = z - z.mean(1, keepdim=True)
    return float(centred.pow(2).mean() / z.pow(2).mean().clamp_min(1e-12))


def batches(corpus: str, steps: int, batch: int, window: int) -> list[Tensor]:
    """``steps`` batches of random windows (seeded), read once and shared by all runs."""
    data = AudioWindowDataset(corpus, window=window, cover=True, seed=0)
    seeded = torch.Generator().manual_seed(0)
    order = torch.randperm(len(data) * (1 + steps * batch // len(data)), generator=seeded)
    out = []
    for step in range(steps):
        idx = order[step * batch : (step + 1) * batch] % len(data)
        data.set_epoch(step)
        out.append(torch.stack([data[int(i)]["x"] for i in idx]))
    return out


def run(name: str, lr: float, data: list[Tensor], report: list[int]) -> dict[str, object]:
    model = _variant(name)
    optim = OptimConfig(lr=lr, min_lr=1e-5, weight_decay=0.0, warmup_steps=100, max_steps=3000)
    optimizer = build_optimizer(model, optim)
    losses: list[float] = []
    accs: list[float] = []
    rows: dict[str, object] = {"variant": name, "lr": lr}
    start = time.perf_counter()
    for step, x in enumerate(data):
        set_lr(optimizer, lr_at(step, optim))
        out = model(x, generator=negatives_generator(x.device, 0, step, 0))
        optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        losses.append(float(out.loss.detach()))
        accs.append(float(out.accuracy.mean()))
        if step + 1 in report:
            rows[f"step{step + 1}"] = {
                "loss": round(sum(losses[-10:]) / len(losses[-10:]), 4),
                "acc": round(sum(accs[-10:]) / len(accs[-10:]), 4),
                "time_var": round(time_varying_share(out.z.detach()), 4),
            }
    rows["seconds"] = round(time.perf_counter() - start, 1)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--lrs", default="2e-3,2e-4")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--report", default="1,50,100,150,200,300")
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = batches(args.corpus, args.steps, 16, 10240)
    report = [int(s) for s in args.report.split(",")]
    for name in args.variants.split(","):
        for lr in (float(v) for v in args.lrs.split(",")):
            print(json.dumps(run(name, lr, data, report)), flush=True)


if __name__ == "__main__":
    main()
