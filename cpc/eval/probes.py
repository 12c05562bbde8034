"""Probes that measure what frozen features know.

Everything here works on plain tensors or arrays, so it does not depend on model
internals: extract features first (``model.features(...)``, see :func:`extract`), then
probe them. The protocol follows CPC (van den Oord et al. 2018) and CPC_audio: a linear
classifier trained on frozen features (phones per 10 ms frame, speakers per utterance),
compared against the same probe on baseline features (:mod:`cpc.eval.baselines`) and on a
randomly initialised model of the same architecture.

Sections: classifiers (:func:`linear_probe`, :func:`knn_probe`), feature preparation
(:func:`frames_from_sequences`, :func:`pool_sequences`, :func:`extract`). Data splits
live in :mod:`cpc.eval.splits`, writer verification in :mod:`cpc.eval.verification`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

ArrayLike = Tensor | np.ndarray


class FeatureExtractor(Protocol):
    """Anything with CPC's ``features`` method (a trained or randomly initialised model)."""

    def features(
        self, x: Tensor, lengths: Tensor | None = None, layer: str = "context"
    ) -> tuple[Tensor, Tensor | None]:
        """Return features of shape ``(b, s, p, d)`` and valid steps ``(b,)`` or None."""
        ...


@dataclass
class ProbeResult:
    """Outcome of a probe on its test set.

    Attributes:
        accuracy: Fraction of test samples classified correctly.
        per_class_accuracy: Recall of each class, ``(num_classes,)``; NaN for classes
            without test samples.
        confusion: Counts with true classes as rows and predictions as columns,
            ``(num_classes, num_classes)``.
        predictions: Predicted class of each test sample, ``(n_test,)``.
        absent_from_train: Classes that had no training sample (never predicted).
        extra: Probe-specific details (epochs run, k, metric, ...).

    """

    accuracy: float
    per_class_accuracy: np.ndarray
    confusion: np.ndarray
    predictions: np.ndarray
    absent_from_train: list[int] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def balanced_accuracy(self) -> float:
        """Mean recall over the classes present in the test set."""
        return float(np.nanmean(self.per_class_accuracy))

    def to_dict(self) -> dict[str, Any]:
        """Summarise as JSON-friendly values (without the per-sample predictions)."""
        return {
            "accuracy": self.accuracy,
            "balanced_accuracy": self.balanced_accuracy,
            "per_class_accuracy": [
                None if np.isnan(a) else float(a) for a in self.per_class_accuracy
            ],
            "confusion": self.confusion.tolist(),
            "absent_from_train": list(self.absent_from_train),
            **self.extra,
        }


def _to_tensor(x: ArrayLike, dtype: torch.dtype) -> Tensor:
    t = torch.as_tensor(x) if isinstance(x, np.ndarray) else x.detach().cpu()
    return t.to(dtype)


def _check_labels(
    train_x: Tensor, train_y: Tensor, test_x: Tensor, test_y: Tensor, num_classes: int | None
) -> int:
    if train_x.ndim != 2 or test_x.ndim != 2 or train_x.shape[1] != test_x.shape[1]:
        raise ValueError(
            f"features must be (n, d) with equal d, got {tuple(train_x.shape)} and "
            f"{tuple(test_x.shape)}"
        )
    if len(train_y) != len(train_x) or len(test_y) != len(test_x):
        raise ValueError("features and labels must have the same number of rows")
    if len(train_x) == 0 or len(test_x) == 0:
        raise ValueError("train and test sets must not be empty")
    top = int(max(train_y.max(), test_y.max())) + 1
    if num_classes is None:
        num_classes = top
    if top > num_classes or min(int(train_y.min()), int(test_y.min())) < 0:
        raise ValueError(f"labels must lie in [0, {num_classes}), got max {top - 1}")
    return num_classes


def _result(
    predictions: Tensor, test_y: Tensor, num_classes: int, absent: list[int], **extra: Any
) -> ProbeResult:
    pred = predictions.numpy().astype(np.int64)
    true = test_y.numpy().astype(np.int64)
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(confusion, (true, pred), 1)
    support = confusion.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = np.where(support > 0, np.diag(confusion) / support, np.nan)
    return ProbeResult(
        accuracy=float((pred == true).mean()),
        per_class_accuracy=per_class,
        confusion=confusion,
        predictions=pred,
        absent_from_train=absent,
        extra=extra,
    )


def linear_probe(
    train_x: ArrayLike,
    train_y: ArrayLike,
    test_x: ArrayLike,
    test_y: ArrayLike,
    *,
    num_classes: int | None = None,
    epochs: int = 50,
    lr: float = 1e-2,
    weight_decay: float = 0.0,
    batch_size: int = 1024,
    val_fraction: float = 0.1,
    patience: int = 5,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> ProbeResult:
    """Train a multinomial logistic regression on frozen features and test it.

    Features are standardised with the training mean and standard deviation. The
    classifier (zero-initialised, so the optimum of this convex problem is reached from a
    fixed start) is trained with Adam on shuffled minibatches; ``weight_decay`` is an L2
    penalty on the weight matrix only, not the bias. With ``val_fraction > 0`` a random
    part of the training set is held out, the weights with the lowest held-out loss are
    kept, and training stops after ``patience`` epochs without improvement; with
    ``val_fraction == 0`` it runs exactly ``epochs`` epochs. The same ``seed`` gives the
    same result (on the same device).

    Classes absent from the training set cannot be learned: their logits are masked at
    prediction time, so they are never predicted, and their test samples count as errors
    (recall 0). They are listed in ``ProbeResult.absent_from_train``.

    Args:
        train_x: Training features.
        train_y: Training labels in ``[0, num_classes)``.
        test_x: Test features.
        test_y: Test labels.
        num_classes: Number of classes; defaults to ``max(label) + 1`` over both sets.
        epochs: Maximum number of passes over the training data.
        lr: Adam learning rate.
        weight_decay: L2 penalty on the weights.
        batch_size: Minibatch size.
        val_fraction: Fraction of training rows held out for early stopping.
        patience: Epochs without held-out improvement before stopping.
        seed: Seed for the split and the shuffling.
        device: Where to train (features are moved there batch by batch).

    Returns:
        The test-set :class:`ProbeResult`; ``extra`` holds ``epochs_run`` and
        ``train_accuracy``.

    Shape:
        - train_x: ``(n, d)``, train_y: ``(n,)``
        - test_x: ``(m, d)``, test_y: ``(m,)``

    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be positive, got {epochs}, {batch_size}")
    xtr, xte = _to_tensor(train_x, torch.float32), _to_tensor(test_x, torch.float32)
    ytr, yte = _to_tensor(train_y, torch.long), _to_tensor(test_y, torch.long)
    num_classes = _check_labels(xtr, ytr, xte, yte, num_classes)
    mean, std = xtr.mean(0), xtr.std(0, unbiased=False).clamp_min(1e-6)
    xtr, xte = (xtr - mean) / std, (xte - mean) / std

    gen = torch.Generator().manual_seed(seed)
    n_val = round(val_fraction * len(xtr)) if len(xtr) > 1 else 0
    order = torch.randperm(len(xtr), generator=gen)
    present = torch.bincount(ytr, minlength=num_classes) > 0
    clf = _Classifier.zeros(present, xtr.shape[1], lr=lr, weight_decay=weight_decay, device=device)
    schedule = _Schedule(epochs, batch_size, patience, gen)
    epochs_run = _fit(
        clf, xtr, ytr, fit_idx=order[n_val:], val_idx=order[:n_val], schedule=schedule
    )

    with torch.no_grad():
        pred_te = _batched_argmax(clf.logits, xte, batch_size)
        pred_tr = _batched_argmax(clf.logits, xtr, batch_size)
    absent = [int(c) for c in torch.nonzero(~present).flatten()]
    return _result(
        pred_te,
        yte,
        num_classes,
        absent,
        epochs_run=epochs_run,
        train_accuracy=float((pred_tr == ytr).float().mean()),
    )


@dataclass
class _Classifier:
    """A multinomial logistic regression and its Adam state (the linear probe's model).

    Classes absent from training get a logit of minus infinity (``mask``), so they are
    never predicted; weight decay applies to the weight matrix, not the bias.
    """

    weight: Tensor  # (c, d)
    bias: Tensor  # (c,)
    mask: Tensor  # (c,)
    optim: torch.optim.Optimizer
    device: str | torch.device

    @classmethod
    def zeros(
        cls,
        present: Tensor,
        dim: int,
        *,
        lr: float,
        weight_decay: float,
        device: str | torch.device,
    ) -> _Classifier:
        """Zero-initialised (the convex optimum is reached from a fixed start)."""
        num_classes = len(present)
        mask = torch.where(present, 0.0, float("-inf")).to(device)  # (c,)
        weight = torch.zeros(num_classes, dim, device=device, requires_grad=True)
        bias = torch.zeros(num_classes, device=device, requires_grad=True)
        groups: list[dict[str, Any]] = [
            {"params": [weight], "weight_decay": weight_decay},
            {"params": [bias], "weight_decay": 0.0},
        ]
        return cls(weight, bias, mask, torch.optim.Adam(groups, lr=lr), device)

    def logits(self, x: Tensor) -> Tensor:
        return F.linear(x.to(self.device), self.weight, self.bias) + self.mask  # (n, c)

    def step(self, x: Tensor, y: Tensor) -> None:
        """One Adam step on the cross-entropy of a minibatch."""
        loss = F.cross_entropy(self.logits(x), y.to(self.device))
        self.optim.zero_grad(set_to_none=True)
        loss.backward()
        self.optim.step()

    @torch.no_grad()
    def loss(self, x: Tensor, y: Tensor) -> float:
        return float(F.cross_entropy(self.logits(x), y.to(self.device)))

    def snapshot(self) -> tuple[Tensor, Tensor]:
        return self.weight.detach().clone(), self.bias.detach().clone()

    @torch.no_grad()
    def restore(self, snapshot: tuple[Tensor, Tensor]) -> None:
        self.weight.copy_(snapshot[0])
        self.bias.copy_(snapshot[1])


@dataclass
class _Schedule:
    """How long the probe trains: epochs, minibatches, early stopping and shuffling."""

    epochs: int
    batch_size: int
    patience: int
    gen: torch.Generator


def _fit(
    clf: _Classifier, x: Tensor, y: Tensor, *, fit_idx: Tensor, val_idx: Tensor, schedule: _Schedule
) -> int:
    """Train on rows ``fit_idx``; keep the weights of the lowest loss on rows ``val_idx``.

    Without held-out rows, runs every epoch. Returns the number of epochs run.
    """
    best = (float("inf"), clf.snapshot())
    stale, epochs_run = 0, 0
    for _ in range(schedule.epochs):
        epochs_run += 1
        perm = fit_idx[torch.randperm(len(fit_idx), generator=schedule.gen)]
        for start in range(0, len(perm), schedule.batch_size):
            idx = perm[start : start + schedule.batch_size]
            clf.step(x[idx], y[idx])
        if len(val_idx) == 0:
            continue
        val_loss = clf.loss(x[val_idx], y[val_idx])
        if val_loss < best[0] - 1e-6:
            best, stale = (val_loss, clf.snapshot()), 0
        else:
            stale += 1
            if stale >= schedule.patience:
                break
    if len(val_idx) > 0:
        clf.restore(best[1])
    return epochs_run


def _batched_argmax(fn: Any, x: Tensor, batch_size: int) -> Tensor:
    parts = [fn(x[i : i + batch_size]).argmax(-1).cpu() for i in range(0, len(x), batch_size)]
    return torch.cat(parts)


def knn_probe(
    train_x: ArrayLike,
    train_y: ArrayLike,
    test_x: ArrayLike,
    test_y: ArrayLike,
    *,
    k: int = 5,
    metric: str = "cosine",
    num_classes: int | None = None,
    chunk_size: int = 4096,
) -> ProbeResult:
    """Classify each test sample by a majority vote of its ``k`` nearest training samples.

    Distances are computed chunk by chunk (test chunk against train chunk, keeping a
    running top-k), so memory grows as ``chunk_size ** 2``, not ``n * m``. Ties in the
    vote go to the tied class that holds the nearest neighbour.

    Args:
        train_x: Training features.
        train_y: Training labels.
        test_x: Test features.
        test_y: Test labels.
        k: Number of neighbours (clipped to the training set size).
        metric: ``"cosine"`` similarity or ``"euclidean"`` distance.
        num_classes: Number of classes; defaults to ``max(label) + 1``.
        chunk_size: Rows per chunk on both sides.

    Returns:
        The test-set :class:`ProbeResult`; ``extra`` holds ``k`` and ``metric``.

    Shape:
        - train_x: ``(n, d)``, train_y: ``(n,)``
        - test_x: ``(m, d)``, test_y: ``(m,)``

    """
    if metric not in ("cosine", "euclidean"):
        raise ValueError(f"metric must be 'cosine' or 'euclidean', got {metric!r}")
    if k < 1:
        raise ValueError(f"k must be positive, got {k}")
    xtr, xte = _to_tensor(train_x, torch.float32), _to_tensor(test_x, torch.float32)
    ytr, yte = _to_tensor(train_y, torch.long), _to_tensor(test_y, torch.long)
    num_classes = _check_labels(xtr, ytr, xte, yte, num_classes)
    k = min(k, len(xtr))
    if metric == "cosine":
        xtr, xte = F.normalize(xtr, dim=-1), F.normalize(xte, dim=-1)
    sq_tr = (xtr * xtr).sum(-1)  # (n,)

    preds = []
    for q0 in range(0, len(xte), chunk_size):
        q = xte[q0 : q0 + chunk_size]  # (mq, d)
        best_s = torch.full((len(q), k), float("-inf"))
        best_i = torch.zeros((len(q), k), dtype=torch.long)
        for t0 in range(0, len(xtr), chunk_size):
            sim = q @ xtr[t0 : t0 + chunk_size].T  # (mq, nt)
            if metric == "euclidean":  # similarity = -squared distance, up to |q|^2
                sim = 2 * sim - sq_tr[t0 : t0 + chunk_size]
            idx = torch.arange(t0, t0 + sim.shape[1]).expand_as(sim)
            best_s, pos = torch.cat([best_s, sim], 1).topk(k, dim=1)
            best_i = torch.cat([best_i, idx], 1).gather(1, pos)
        neigh = ytr[best_i]  # (mq, k), nearest first
        votes = torch.zeros(len(q), num_classes).scatter_add_(1, neigh, torch.ones(neigh.shape))
        top = votes.gather(1, neigh) == votes.max(1, keepdim=True).values  # (mq, k)
        first = top.to(torch.int8).argmax(1, keepdim=True)  # nearest neighbour of a top class
        preds.append(neigh.gather(1, first).squeeze(1))
    absent = [int(c) for c in torch.nonzero(torch.bincount(ytr, minlength=num_classes) == 0)]
    return _result(torch.cat(preds), yte, num_classes, absent, k=k, metric=metric)


def frames_from_sequences(
    feats_list: Sequence[ArrayLike],
    labels_list: Sequence[ArrayLike],
    *,
    offset: int = 0,
    tolerance: int = 2,
    names: Sequence[str] | None = None,
) -> tuple[Tensor, Tensor]:
    """Pair per-utterance feature frames with frame labels and stack them.

    Alignment rule: feature frame ``j`` is paired with label frame ``j + offset``
    (``offset > 0`` drops the first labels, ``offset < 0`` the first feature frames).
    After this shift the two sequences may differ in length by up to ``tolerance`` frames
    (the encoder's receptive field eats a few samples at the end); both are truncated to
    the shorter one. A larger difference means the features and labels do not describe
    the same stretch of signal (wrong hop, wrong file), and raises.

    Args:
        feats_list: One feature sequence per utterance, ``(s, d)`` or ``(s, 1, d)``.
        labels_list: One frame-label sequence per utterance, ``(s',)``.
        offset: Label frame paired with feature frame 0.
        tolerance: Largest accepted length difference, in frames, after the shift.
        names: Utterance names used in error messages (defaults to indices).

    Returns:
        ``(x, y)``: stacked features and labels.

    Raises:
        ValueError: If the numbers of utterances differ or an utterance's lengths differ
            by more than ``tolerance`` frames; the message names the utterance.

    Shape:
        - x: ``(N, d)``, y: ``(N,)`` with ``N`` the sum of the aligned lengths.

    """
    if len(feats_list) != len(labels_list):
        raise ValueError(f"{len(feats_list)} feature sequences but {len(labels_list)} labels")
    xs, ys = [], []
    for i, (f, lab) in enumerate(zip(feats_list, labels_list, strict=True)):
        feats, labels = _to_tensor(f, torch.float32), _to_tensor(lab, torch.long)
        if feats.ndim == 3 and feats.shape[1] == 1:
            feats = feats[:, 0]  # (s, 1, d) -> (s, d)
        if feats.ndim != 2 or labels.ndim != 1:
            raise ValueError(f"utterance {i}: want (s, d) features and (s,) labels")
        if offset >= 0:
            labels = labels[offset:]
        else:
            feats = feats[-offset:]
        if abs(len(feats) - len(labels)) > tolerance:
            name = names[i] if names is not None else f"#{i}"
            raise ValueError(
                f"utterance {name}: {len(feats)} feature frames vs {len(labels)} label frames "
                f"after offset {offset}, more than the tolerance of {tolerance}"
            )
        n = min(len(feats), len(labels))
        xs.append(feats[:n])
        ys.append(labels[:n])
    return torch.cat(xs), torch.cat(ys)


def pool_sequences(feats: ArrayLike, lengths: ArrayLike | None = None) -> Tensor:
    """Mean of features over the valid steps and all positions of each sequence.

    Args:
        feats: Features from ``model.features``; a 3-D input is read as ``p = 1``.
        lengths: Valid steps per sequence; None means all steps are valid.

    Returns:
        One vector per sequence; padded steps never enter the mean.

    Shape:
        - feats: ``(b, s, p, d)`` or ``(b, s, d)``
        - lengths: ``(b,)``
        - output: ``(b, d)``

    """
    x = _to_tensor(feats, torch.float32)
    if x.ndim == 3:
        x = x.unsqueeze(2)  # (b, s, d) -> (b, s, 1, d)
    if x.ndim != 4:
        raise ValueError(f"feats must be (b, s, p, d), got {tuple(x.shape)}")
    b, s = x.shape[:2]
    lens = torch.full((b,), s) if lengths is None else _to_tensor(lengths, torch.long)
    if (lens < 1).any() or (lens > s).any():
        raise ValueError(f"lengths must lie in [1, {s}], got {lens.tolist()}")
    valid = (torch.arange(s) < lens[:, None]).to(x.dtype)  # (b, s)
    total = torch.einsum("bspd,bs->bd", x.nan_to_num(), valid)  # padding may hold anything
    return total / (lens * x.shape[2]).to(x.dtype)[:, None]


@torch.no_grad()
def extract(
    model: FeatureExtractor,
    x: Tensor,
    lengths: Tensor | None = None,
    *,
    layer: str = "context",
) -> list[Tensor]:
    """Run ``model.features`` on a batch and return each item without its padding.

    Call ``model.eval()`` first; this function does not change the model's mode.

    Args:
        model: Anything with a ``features`` method (see :class:`FeatureExtractor`).
        x: A padded batch of model inputs.
        lengths: Valid input lengths (samples), or None.
        layer: ``"context"`` or ``"encoder"``.

    Returns:
        One CPU tensor per item, trimmed to its valid steps.

    Shape:
        - each output: ``(s_i, p, d)``

    """
    feats, out_lengths = model.features(x, lengths=lengths, layer=layer)  # (b, s, p, d)
    feats = feats.detach().cpu()
    if out_lengths is None:
        return list(feats.unbind(0))
    return [f[: int(n)] for f, n in zip(feats, out_lengths.tolist(), strict=True)]
