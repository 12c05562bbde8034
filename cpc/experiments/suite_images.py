"""Image task of the suite: Fashion-MNIST linear probes on pooled grid features.

Each CPC row is pretrained on the 60,000 training images without labels
(``configs/image_fashion_mnist.yaml``: 8-pixel patches on a 4-pixel stride, rows
predicted from the rows above). Features: the mean over the patch grid of the frozen
features (context, or encoder + context). The probe is trained on the first
``image_train`` training images (all their labels, then ``per_class`` labels per class)
and tested on the first ``image_test`` test images. Baselines: raw pixels and the
untrained network. Needs the IDX files (``apt-get install dataset-fashion-mnist``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from cpc.config import load_config
from cpc.data.images import DEFAULT_IDX_ROOT, IDXImageDataset
from cpc.data.registry import build_model
from cpc.eval.baselines import raw_pixel_features
from cpc.eval.probes import linear_probe
from cpc.experiments.suite_common import UNTRAINED, Context, few_labels, pretrain, timing
from cpc.models.cpc import CPCModel

PRESET = "image_fashion_mnist"
TASKS = ("Fashion-MNIST, all labels", "Fashion-MNIST, 10 per class")


def available() -> bool:
    """Whether the Fashion-MNIST IDX files are installed."""
    return (DEFAULT_IDX_ROOT / "train-labels-idx1-ubyte.gz").is_file() or (
        DEFAULT_IDX_ROOT / "train-labels-idx1-ubyte"
    ).is_file()


def _images(train: bool, count: int) -> tuple[Tensor, Tensor]:
    """The first ``count`` images in [-1, 1] (as the model was trained) and labels."""
    data = IDXImageDataset(DEFAULT_IDX_ROOT, train=train)
    x = data.images[:count].float().div(255).sub(0.5).div(0.5)[:, None]  # (n, 1, h, w)
    return x, data.labels[:count]


@torch.no_grad()
def _grid_features(model: CPCModel, images: Tensor, layer: str) -> Tensor:
    out = []
    for start in range(0, len(images), 256):
        parts = [model.features(images[start : start + 256], layer=p)[0] for p in layer.split("+")]
        out.append(torch.cat([p.mean((1, 2)) for p in parts], dim=1))  # (b, s, p, d) -> (b, d)
    return torch.cat(out)


def _overrides(ctx: Context) -> list[str]:
    steps = ctx.sizes.image_steps
    return [
        f"optim.max_steps={steps}",
        f"optim.warmup_steps={min(100, max(1, steps // 4))}",
        f"run.val_every={steps}",
        "run.val_batches=4",
        f"run.ckpt_every={steps}",
        f"run.seed={ctx.seed}",
    ]


def _probes(xtr: Tensor, ytr: Tensor, xte: Tensor, yte: Tensor, ctx: Context) -> dict[str, object]:
    few = torch.from_numpy(few_labels(ytr.numpy(), 0.0, ctx.seed, minimum=ctx.sizes.per_class))
    return {
        TASKS[0]: linear_probe(xtr, ytr, xte, yte, num_classes=10, seed=ctx.seed),
        TASKS[1]: linear_probe(
            xtr[few],
            ytr[few],
            xte,
            yte,
            num_classes=10,
            epochs=300,
            val_fraction=0.0,
            seed=ctx.seed,
        ),
    }


def run_images(ctx: Context) -> dict[str, dict[str, object]]:
    """Every row, pixels and the untrained network on both probes."""
    xtr, ytr = _images(True, ctx.sizes.image_train)
    xte, yte = _images(False, ctx.sizes.image_test)
    models: dict[str, CPCModel] = {}
    for row in ctx.trained():
        run = ctx.work / f"run_{row.slug}"
        with timing(ctx, "pretrain images"):
            models[row.name] = pretrain(PRESET, [*_overrides(ctx), *row.overrides], run)[0]
    sets: dict[str, tuple[Tensor, Tensor]] = {}
    for row in ctx.rows:
        model = models[row.reuse or row.name]
        sets[row.name] = (
            _grid_features(model, xtr, row.layer),
            _grid_features(model, xte, row.layer),
        )
    torch.manual_seed(ctx.seed)
    untrained = build_model(load_config(PRESET, _overrides(ctx)).model).eval()
    sets[UNTRAINED] = (
        _grid_features(untrained, xtr, "context"),
        _grid_features(untrained, xte, "context"),
    )
    sets["pixels"] = raw_pixel_features(xtr), raw_pixel_features(xte)
    results: dict[str, dict[str, object]] = {task: {} for task in TASKS}
    for name, (ftr, fte) in sets.items():
        for task, value in _probes(ftr, ytr, fte, yte, ctx).items():
            results[task][name] = value
    ctx.notes.append(
        f"images: probe on {len(xtr)} training images ({ctx.sizes.per_class} per class in the "
        f"second column: {10 * ctx.sizes.per_class} labels), tested on {len(xte)}"
    )
    return results


__all__ = ["TASKS", "available", "run_images"]
