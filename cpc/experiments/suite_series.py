"""Signal tasks of the suite: aeon's bundled UCR/UEA sets and the signature benchmark.

UCR/UEA sets (standard train/test splits): each CPC row is pretrained on the set's
training series, without labels, from ``configs/signature_pen.yaml`` with the encoder,
window and offsets of :func:`~cpc.data.recipes.signal.fit_series` (fitted to the
shortest series of the set and written to the log). Features: mean and standard
deviation over time of the frozen features of whole series. Baselines: the same linear
probe on per-channel statistics (:func:`~cpc.eval.baselines.signal_statistics`) and on
MiniRocket's random-kernel features, full-window DTW-1NN, and the untrained network.
The probe: logistic regression on standardised features, 300 full passes, no held-out
part (the smallest training set has 36 series).

Signature verification: :func:`cpc.experiments.signature_bench.run_seed` (hard synthetic
writers, skilled forgeries) at the suite's size, once per CPC row.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from cpc.checkpoints.loading import read_meta
from cpc.data.recipe import DataInfo
from cpc.data.recipes.signal import SeriesGeometry, fit_series
from cpc.data.registry import build_model, get_recipe
from cpc.data.ucr import bundled_ts, load_ts
from cpc.eval.baselines import signal_statistics
from cpc.eval.probes import ProbeResult, linear_probe
from cpc.eval.series import dtw_1nn, minirocket_features
from cpc.experiments.signature_bench import BenchSize, run_seed
from cpc.experiments.suite_common import (
    DEFAULT_ROW,
    UNTRAINED,
    Context,
    log,
    pooled,
    pretrain,
    sequence_features,
    timing,
)
from cpc.models.cpc import CPCModel

PRESET = "signature_pen"
Split = tuple[list[np.ndarray], np.ndarray]


def _load(name: str) -> tuple[Split, Split]:
    xs, ys = load_ts(bundled_ts(name, "train"))
    xt, yt = load_ts(bundled_ts(name, "test"))
    ids = {label: i for i, label in enumerate(sorted(set(ys) | set(yt)))}
    return (xs, np.array([ids[y] for y in ys])), (xt, np.array([ids[y] for y in yt]))


def _write(series: list[np.ndarray], out: Path) -> Path:
    """One ``.npy`` per series and a manifest of paths only (no labels to leak)."""
    out.mkdir(parents=True, exist_ok=True)
    for i, s in enumerate(series):
        np.save(out / f"{i:05d}.npy", s)
    manifest = out / "manifest.csv"
    with open(manifest, "w", newline="") as f:
        csv.writer(f).writerows(
            [["path"], *([str(out / f"{i:05d}.npy")] for i in range(len(series)))]
        )
    return manifest


def _overrides(ctx: Context, manifest: Path, geometry: SeriesGeometry, channels: int) -> list[str]:
    steps = ctx.sizes.series_steps
    return [
        f"data.train={manifest}",
        "data.val_fraction=0",
        f"model.in_channels={channels}",
        *geometry.overrides(),
        f"optim.max_steps={steps}",
        f"optim.warmup_steps={min(100, max(1, steps // 8))}",
        f"run.val_every={steps}",
        f"run.ckpt_every={steps}",
        f"run.seed={ctx.seed}",
    ]


def _features(model: CPCModel, info: DataInfo, manifest: Path, layer: str) -> Tensor:
    """Pooled features of every series of ``manifest``, normalised as in pretraining."""
    items = get_recipe("signal").file_dataset(str(manifest), info, model.receptive_field, False)
    feats = [pooled(sequence_features(model, items[i]["x"], layer)) for i in range(len(items))]
    return torch.stack(feats)


def _probe(
    xtr: Tensor | np.ndarray, ytr: np.ndarray, xte: Tensor | np.ndarray, yte: np.ndarray, seed: int
) -> ProbeResult:
    classes = int(max(ytr.max(), yte.max())) + 1
    return linear_probe(
        xtr, ytr, xte, yte, num_classes=classes, epochs=300, val_fraction=0.0, seed=seed
    )


def _cpc_rows(ctx: Context, name: str, train: Split, test: Split) -> dict[str, object]:
    """Pretrain every row on one set; probe the rows and the untrained network."""
    geometry = fit_series(min(len(s) for s in train[0] + test[0]))
    log.info("signals %s: %s", name, geometry.describe())
    ctx.notes.append(f"{name}: {geometry.describe()}")
    work = ctx.work / name
    manifests = _write(train[0], work / "train"), _write(test[0], work / "test")
    channels = train[0][0].shape[1]
    models: dict[str, tuple[CPCModel, DataInfo]] = {}
    for row in ctx.trained():
        overrides = [*_overrides(ctx, manifests[0], geometry, channels), *row.overrides]
        run = work / f"run_{row.slug}"
        with timing(ctx, f"pretrain {name}"):
            model, config = pretrain(PRESET, overrides, run)
        models[row.name] = model, DataInfo.from_dict(read_meta(run)["data"], "signal")
    out: dict[str, object] = {}
    for row in ctx.rows:
        model, info = models[row.reuse or row.name]
        xs = [_features(model, info, m, row.layer) for m in manifests]
        out[row.name] = _probe(xs[0], train[1], xs[1], test[1], ctx.seed)
    torch.manual_seed(ctx.seed)
    untrained = build_model(config.model).eval()
    info = models[DEFAULT_ROW][1] if DEFAULT_ROW in models else next(iter(models.values()))[1]
    xs = [_features(untrained, info, m, "context") for m in manifests]
    out[UNTRAINED] = _probe(xs[0], train[1], xs[1], test[1], ctx.seed)
    return out


def _baselines(ctx: Context, train: Split, test: Split) -> dict[str, object]:
    def stats(series: list[np.ndarray]) -> Tensor:
        return torch.stack([signal_statistics(np.nan_to_num(s)) for s in series])

    rocket = minirocket_features(train[0], test[0], seed=ctx.seed)
    return {
        "statistics": _probe(stats(train[0]), train[1], stats(test[0]), test[1], ctx.seed),
        "MiniRocket": _probe(rocket[0], train[1], rocket[1], test[1], ctx.seed),
        "DTW-1NN": dtw_1nn(train[0], train[1], test[0], test[1]),
    }


def run_ucr(ctx: Context) -> dict[str, dict[str, object]]:
    """Every bundled set: ``{set: {method: result}}``."""
    results: dict[str, dict[str, object]] = {}
    for name in ctx.sizes.series_sets:
        train, test = _load(name)
        log.info("signals %s: %d train / %d test series", name, len(train[0]), len(test[0]))
        cells = _cpc_rows(ctx, name, train, test)
        with timing(ctx, f"baselines {name}"):
            cells |= _baselines(ctx, train, test)
        results[name] = cells
    return results


def run_signatures(ctx: Context) -> dict[str, dict[str, object]]:
    """Signature verification (EER, lower is better) for every trained row."""
    pre, ev = ctx.sizes.signature_writers
    size = BenchSize(pre_writers=pre, eval_writers=ev, steps=ctx.sizes.signature_steps)
    if pre < 10:  # the quick size: fewer samples per writer
        size = BenchSize(
            pre, ev, sessions=2, per_session=3, forgeries=2, references=2, steps=size.steps
        )
    tasks = {"skilled forgeries (EER)": "skilled_eer", "random impostors (EER)": "eer"}
    results: dict[str, dict[str, object]] = {task: {} for task in tasks}
    for row in ctx.trained():
        with timing(ctx, "signatures"):
            run = run_seed(ctx.seed, size, ctx.work, list(row.overrides), tag=row.slug)
        verifiers: dict[str, dict[str, float]] = run["results"]  # type: ignore[assignment]
        names = {f"{row.name}, {kind}": f"CPC context, {kind}" for kind in ("pooled", "DTW")}
        names |= {
            f"{row.name} encoder, {kind}": f"CPC encoder, {kind}" for kind in ("pooled", "DTW")
        }
        if row.name == DEFAULT_ROW:
            names |= {
                f"{UNTRAINED}, {k}": f"random-init CPC context, {k}" for k in ("pooled", "DTW")
            }
            names |= {
                "DTW, local features": "DTW, local features",
                "statistics": "signal statistics",
            }
        for task, key in tasks.items():
            for shown, name in names.items():
                results[task][shown] = {"eer": verifiers[name][key]}
    return results
