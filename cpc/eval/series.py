"""Classic baselines for series classification, through ``aeon`` (the ``ucr`` extra).

- :func:`dtw_1nn`: the UCR archive's reference classifier, one nearest neighbour under
  dynamic time warping with a full window (aeon's numba DTW; multichannel series use
  aeon's dependent DTW over all channels; unequal lengths are allowed).
- :func:`minirocket_features`: MiniRocket (Dempster et al. 2021), about 10,000
  random-kernel convolution features per series (proportion of positive values), to be
  fed to a linear probe. Series of unequal length, or shorter than MiniRocket's 9-sample
  minimum, are zero-padded at the end to a common length first.

Series are given as ``(t, c)`` arrays, like every signal in this package.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from types import ModuleType

import numpy as np
import torch

from cpc.eval.probes import ProbeResult, _result

__all__ = ["dtw_1nn", "minirocket_features"]

MINIROCKET_MIN_LENGTH = 9


def _aeon(module: str) -> ModuleType:
    try:
        return importlib.import_module(f"aeon.{module}")
    except ImportError as err:
        raise ImportError("series baselines need aeon: pip install -e '.[ucr]'") from err


def _collection(series: Sequence[np.ndarray]) -> np.ndarray | list[np.ndarray]:
    """Aeon's layout: ``(n, c, t)`` when lengths agree, else a list of ``(c, t)``."""
    arrays = [np.ascontiguousarray(np.asarray(s, dtype=np.float64).T) for s in series]
    if len({a.shape for a in arrays}) == 1:
        return np.stack(arrays)
    return arrays


def _padded(series: Sequence[np.ndarray], length: int) -> np.ndarray:
    out = np.zeros((len(series), series[0].shape[1], length))  # (n, c, t)
    for i, s in enumerate(series):
        out[i, :, : len(s)] = np.nan_to_num(np.asarray(s, dtype=np.float64)).T
    return out


def dtw_1nn(
    train: Sequence[np.ndarray],
    train_y: np.ndarray,
    test: Sequence[np.ndarray],
    test_y: np.ndarray,
) -> ProbeResult:
    """Accuracy of 1-NN under full-window DTW, as :class:`~cpc.eval.probes.ProbeResult`.

    Shape:
        - train, test: lists of ``(t_i, c)``; train_y, test_y: ``(n,)`` int labels.
    """
    knn_module = _aeon("classification.distance_based")
    knn = knn_module.KNeighborsTimeSeriesClassifier(distance="dtw", n_neighbors=1, n_jobs=1)
    knn.fit(_collection(train), np.asarray(train_y))
    pred = np.asarray(knn.predict(_collection(test)), dtype=np.int64)
    classes = int(max(np.max(train_y), np.max(test_y))) + 1
    return _result(torch.from_numpy(pred), torch.as_tensor(test_y), classes, [], k=1, metric="dtw")


def minirocket_features(
    train: Sequence[np.ndarray], test: Sequence[np.ndarray], seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """MiniRocket features fitted on ``train``: ``(n, f)`` and ``(m, f)`` float32."""
    rocket = _aeon("transformations.collection.convolution_based")
    length = max(MINIROCKET_MIN_LENGTH, *(len(s) for s in [*train, *test]))
    transform = rocket.MiniRocket(random_state=seed, n_jobs=1)
    xtr = transform.fit_transform(_padded(train, length))
    xte = transform.transform(_padded(test, length))
    return np.asarray(xtr, dtype=np.float32), np.asarray(xte, dtype=np.float32)
