"""Figures for training runs and probe results (matplotlib, Agg backend, files only).

Every function writes one PNG, closes its figure and returns the path; nothing is shown
on screen, so the module works on headless machines and inside tests.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure


def _save(fig: Figure, out_png: str | Path) -> Path:
    path = Path(out_png)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def _mean_accuracy(value: Any) -> float | None:
    if value is None:
        return None
    arr = np.asarray(value, dtype=np.float64)
    return float(arr.mean()) if arr.size else None


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """Read a JSON-lines metrics file, skipping blank lines.

    Args:
        path: File with one JSON object per line.

    Returns:
        The records in file order.

    """
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def plot_training_curves(
    metrics: str | Path | Sequence[Mapping[str, Any]],
    out_png: str | Path,
    *,
    title: str = "CPC training",
) -> Path:
    """Plot loss and mean prediction accuracy against step, one line per split.

    Records look like ``{"step": 100, "split": "train", "loss": 2.3, "accuracy":
    [0.4, 0.3, ...]}``; ``accuracy`` (per offset, or one number) is averaged over
    offsets. Records without ``step`` are skipped, a missing ``split`` counts as
    ``"train"``, and the accuracy panel is left out when no record has accuracies.

    Args:
        metrics: A JSON-lines path or the records themselves.
        out_png: Output file.
        title: Figure title.

    Returns:
        The written path.

    """
    records = read_metrics(metrics) if isinstance(metrics, str | Path) else list(metrics)
    curves: dict[str, dict[str, list[tuple[float, float]]]] = {"loss": {}, "accuracy": {}}
    for rec in records:
        if "step" not in rec:
            continue
        split = str(rec.get("split", "train"))
        loss, acc = rec.get("loss"), _mean_accuracy(rec.get("accuracy"))
        if loss is not None:
            curves["loss"].setdefault(split, []).append((rec["step"], float(loss)))
        if acc is not None:
            curves["accuracy"].setdefault(split, []).append((rec["step"], 100 * acc))
    panels = [name for name in ("loss", "accuracy") if curves[name]]
    if not panels:
        raise ValueError("no record has a step with a loss or an accuracy")
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    labels = {"loss": "InfoNCE loss", "accuracy": "mean prediction accuracy (%)"}
    for ax, name in zip(axes[0], panels, strict=True):
        for split, points in sorted(curves[name].items()):
            steps, values = zip(*sorted(points), strict=True)
            marker = "o" if len(points) < 30 else None
            ax.plot(steps, values, label=split, marker=marker, markersize=3)
        ax.set_xlabel("step")
        ax.set_ylabel(labels[name])
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    return _save(fig, out_png)


def plot_accuracy_vs_offset(
    acc_by_method: Mapping[str, Sequence[float]],
    offsets: Sequence[int],
    out_png: str | Path,
    *,
    xlabel: str = "prediction offset k",
    ylabel: str = "accuracy (%)",
    title: str = "Prediction accuracy by offset",
    percent: bool = True,
) -> Path:
    """Plot one line per method of a score against an integer x axis.

    Also serves for "accuracy against number of prediction steps" by passing the step
    counts as ``offsets`` and a matching ``xlabel``.

    Args:
        acc_by_method: Scores per method, one per offset (fractions if ``percent``).
        offsets: X values.
        out_png: Output file.
        xlabel: X axis label.
        ylabel: Y axis label.
        title: Figure title.
        percent: Multiply scores by 100.

    Returns:
        The written path.

    Shape:
        - each ``acc_by_method`` value: ``(len(offsets),)``

    """
    fig, ax = plt.subplots(figsize=(6, 4))
    for method, values in acc_by_method.items():
        if len(values) != len(offsets):
            raise ValueError(f"{method}: {len(values)} values for {len(offsets)} offsets")
        ys = np.asarray(values, dtype=np.float64) * (100 if percent else 1)
        ax.plot(list(offsets), ys, marker="o", markersize=4, label=method)
    ax.set_xticks(list(offsets))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, out_png)


def plot_confusion(
    confusion: Any,
    class_names: Sequence[str],
    out_png: str | Path,
    *,
    title: str = "Confusion (rows normalised)",
) -> Path:
    """Plot a row-normalised confusion matrix (true class down, prediction across).

    The figure and font sizes grow with the number of classes so that ~40 phone labels
    stay readable; rows without samples stay empty (zero).

    Args:
        confusion: Counts, true classes as rows.
        class_names: Name of each class.
        out_png: Output file.
        title: Figure title.

    Returns:
        The written path.

    Shape:
        - confusion: ``(c, c)``, class_names: ``(c,)``

    """
    counts = np.asarray(confusion, dtype=np.float64)
    c = len(class_names)
    if counts.shape != (c, c):
        raise ValueError(f"confusion is {counts.shape} for {c} class names")
    totals = counts.sum(axis=1, keepdims=True)
    norm = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    side = min(max(4.5, 0.28 * c + 2.0), 24.0)
    font = 9 if c <= 20 else 8 if c <= 60 else 6
    fig, ax = plt.subplots(figsize=(side + 1.0, side))
    image = ax.imshow(norm, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks(range(c), [str(n) for n in class_names], rotation=90, fontsize=font)
    ax.set_yticks(range(c), [str(n) for n in class_names], fontsize=font)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    if c <= 12:
        for i in range(c):
            for j in range(c):
                color = "white" if norm[i, j] > 0.5 else "black"
                ax.text(j, i, f"{norm[i, j]:.2f}", ha="center", va="center", color=color)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of true class")
    return _save(fig, out_png)


def pca_2d(x: Any) -> np.ndarray:
    """Project onto the two leading principal components (exact, deterministic).

    Components come from the eigenvectors of the covariance (float64), signs fixed so
    that each component's largest loading is positive.

    Args:
        x: Data matrix.

    Returns:
        The projections.

    Shape:
        - x: ``(n, d)`` with ``d >= 2``; output: ``(n, 2)``

    """
    data = torch.as_tensor(np.asarray(x), dtype=torch.float64)
    if data.ndim != 2 or data.shape[1] < 2:
        raise ValueError(f"x must be (n, d) with d >= 2, got {tuple(data.shape)}")
    centred = data - data.mean(0)
    _, vecs = torch.linalg.eigh(centred.T @ centred)  # ascending eigenvalues
    comps = vecs[:, [-1, -2]]  # (d, 2)
    signs = torch.sign(comps.gather(0, comps.abs().argmax(0, keepdim=True)))
    return (centred @ (comps * signs)).numpy()


def plot_projection(
    x: Any,
    labels: Sequence[Any] | np.ndarray,
    out_png: str | Path,
    *,
    method: str = "pca",
    title: str = "PCA of features",
    max_points: int = 5000,
    seed: int = 0,
) -> Path:
    """Scatter a 2-D projection of features coloured by label.

    With at most 20 distinct labels each gets a qualitative colour and a legend entry;
    with more, labels are mapped to a continuous colour map without a legend. Above
    ``max_points`` rows a fixed random subset (``seed``) is drawn.

    Args:
        x: Features.
        labels: Label of each row (numbers or strings).
        out_png: Output file.
        method: Projection; only ``"pca"`` is implemented.
        title: Figure title.
        max_points: Largest number of points drawn.
        seed: Seed of the subset.

    Returns:
        The written path.

    Shape:
        - x: ``(n, d)``, labels: ``(n,)``

    """
    if method != "pca":
        raise ValueError(f"method must be 'pca', got {method!r}")
    data, labs = np.asarray(x), np.asarray(labels)
    if len(data) != len(labs):
        raise ValueError(f"{len(data)} rows but {len(labs)} labels")
    if len(data) > max_points:
        keep = np.sort(np.random.default_rng(seed).choice(len(data), max_points, replace=False))
        data, labs = data[keep], labs[keep]
    points = pca_2d(data)
    classes, codes = np.unique(labs, return_inverse=True)
    fig, ax = plt.subplots(figsize=(6.5, 5))
    if len(classes) <= 20:
        cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
        for i, name in enumerate(classes):
            sel = codes.reshape(-1) == i
            ax.scatter(
                points[sel, 0], points[sel, 1], s=8, alpha=0.7, color=cmap(i), label=str(name)
            )
        ax.legend(fontsize=8, markerscale=2, bbox_to_anchor=(1.02, 1), loc="upper left")
    else:
        sc = ax.scatter(points[:, 0], points[:, 1], s=6, alpha=0.7, c=codes, cmap="viridis")
        fig.colorbar(sc, ax=ax, label="label index")
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    return _save(fig, out_png)
