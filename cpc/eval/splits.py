"""Deterministic train/test splits by group (speaker, writer) for probes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def _group_codes(groups: Sequence[Any] | np.ndarray) -> np.ndarray:
    arr = np.asarray(groups)
    if arr.ndim != 1 or len(arr) == 0:
        raise ValueError(f"groups must be a non-empty 1-D sequence, got shape {arr.shape}")
    return np.unique(arr, return_inverse=True)[1].reshape(-1)


def split_by_group(
    groups: Sequence[Any] | np.ndarray, test_fraction: float = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Hold out whole groups: no group (speaker, writer) has samples on both sides.

    Use it for probes that must generalise across groups, such as phone classification
    on unseen speakers. ``round(test_fraction * num_groups)`` groups (at least one, and
    at least one left for training) are drawn at random for the test side.

    Args:
        groups: Group of each sample (any sortable values).
        test_fraction: Fraction of the groups held out.
        seed: Seed of the draw; the same inputs and seed give the same split.

    Returns:
        ``(train_idx, test_idx)``: sorted sample indices.

    Shape:
        - groups: ``(n,)``; outputs: ``(n_train,)`` and ``(n_test,)``

    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    codes = _group_codes(groups)
    num_groups = int(codes.max()) + 1
    if num_groups < 2:
        raise ValueError("split_by_group needs at least two groups")
    n_test = min(max(1, round(test_fraction * num_groups)), num_groups - 1)
    test_groups = np.random.default_rng(seed).permutation(num_groups)[:n_test]
    is_test = np.isin(codes, test_groups)
    return np.flatnonzero(~is_test), np.flatnonzero(is_test)


def split_within_groups(
    groups: Sequence[Any] | np.ndarray, test_fraction: float = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Split inside each group, so every group appears on both sides.

    Use it for identification tasks (which speaker, which writer), where the test
    classes must have been seen in training. Each group with ``m >= 2`` samples sends
    ``round(test_fraction * m)`` of them, clipped to ``[1, m - 1]``, to the test side;
    a group with a single sample stays in training.

    Args:
        groups: Group of each sample (any sortable values).
        test_fraction: Fraction of each group's samples held out.
        seed: Seed of the draw; the same inputs and seed give the same split.

    Returns:
        ``(train_idx, test_idx)``: sorted sample indices.

    Shape:
        - groups: ``(n,)``; outputs: ``(n_train,)`` and ``(n_test,)``

    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    codes = _group_codes(groups)
    rng = np.random.default_rng(seed)
    is_test = np.zeros(len(codes), dtype=bool)
    for g in range(int(codes.max()) + 1):
        members = rng.permutation(np.flatnonzero(codes == g))
        if len(members) >= 2:
            n_test = min(max(1, round(test_fraction * len(members))), len(members) - 1)
            is_test[members[:n_test]] = True
    return np.flatnonzero(~is_test), np.flatnonzero(is_test)
