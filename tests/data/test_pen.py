import csv
from pathlib import Path

import numpy as np
import pytest

from cpc.data.corpora.pen import (
    CHANNELS,
    generate_pen_corpus,
    generate_pen_samples,
    generate_skilled_forgeries,
)


def _features(sample: np.ndarray, points: int = 64) -> np.ndarray:
    """Centred x, y resampled to a fixed number of points along time."""
    grid = np.linspace(0, len(sample) - 1, points)
    xy = np.stack([np.interp(grid, np.arange(len(sample)), sample[:, c]) for c in (0, 1)], 1)
    return (xy - xy.mean(axis=0)).ravel()


def test_deterministic_and_well_formed() -> None:
    a, wa = generate_pen_samples(3, 2, seed=5)
    b, wb = generate_pen_samples(3, 2, seed=5)
    c, _ = generate_pen_samples(3, 2, seed=6)
    assert np.array_equal(wa, [0, 0, 1, 1, 2, 2]) and np.array_equal(wa, wb)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[0][:50], c[0][:50])
    # adding writers leaves existing ones unchanged
    more, _ = generate_pen_samples(4, 2, seed=5)
    assert np.array_equal(more[5], a[5])
    for sample in a:
        assert sample.dtype == np.float32 and sample.shape[1] == len(CHANNELS) == 6
        assert 100 < len(sample) < 2000 and np.isfinite(sample).all()
        pen, pressure = sample[:, 3], sample[:, 2]
        assert set(np.unique(pen)) == {0.0, 1.0}
        assert np.all(pressure[pen == 0] == 0) and pressure.max() <= 1
        assert pressure[pen == 1].mean() > 0.1
        steps = np.linalg.norm(np.diff(sample[:, :2], axis=0), axis=1)
        assert steps.max() < 10  # mm per 10 ms: no jumps


def test_writer_identity_is_recoverable() -> None:
    samples, writers = generate_pen_samples(10, 6, seed=0)
    feats = np.stack([_features(s) for s in samples])
    dist = np.linalg.norm(feats[:, None] - feats[None], axis=-1)
    np.fill_diagonal(dist, np.inf)
    accuracy = np.mean(writers[dist.argmin(axis=1)] == writers)
    assert accuracy > 0.8  # chance is 0.1


def test_forgeries_are_further_and_slower_than_genuine() -> None:
    genuine, writers = generate_pen_samples(5, 5, seed=1)
    forged, targets = generate_skilled_forgeries(5, 3, seed=1)
    assert np.array_equal(targets, np.repeat(np.arange(5), 3))
    feats = np.stack([_features(s) for s in genuine])
    centroids = np.stack([feats[writers == w].mean(axis=0) for w in range(5)])
    genuine_dist = np.linalg.norm(feats - centroids[writers], axis=1)
    forged_dist = np.array(
        [np.linalg.norm(_features(f) - centroids[t]) for f, t in zip(forged, targets, strict=True)]
    )
    assert forged_dist.mean() > 1.5 * genuine_dist.mean()
    assert np.mean([len(f) for f in forged]) > 1.2 * np.mean([len(g) for g in genuine])


@pytest.mark.parametrize("fmt", ["npy", "svc"])
def test_corpus_files_and_manifest(tmp_path: Path, fmt: str) -> None:
    manifest = generate_pen_corpus(
        tmp_path, num_writers=2, samples_per_writer=2, forgeries_per_writer=1, fmt=fmt
    )
    with open(manifest, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["genuine"] for r in rows] == ["1", "1", "1", "1", "0", "0"]
    assert [r["writer"] for r in rows] == ["w000", "w000", "w001", "w001", "w000", "w001"]
    genuine, _ = generate_pen_samples(2, 2, seed=0)
    first = tmp_path / rows[0]["path"]
    if fmt == "npy":
        assert np.array_equal(np.load(first), genuine[0])
    else:
        assert [r["path"] for r in rows][:2] == ["U1S1.txt", "U1S2.txt"]
        assert rows[4]["path"] == "U1S3.txt"
        lines = first.read_text().splitlines()
        assert int(lines[0]) == len(lines) - 1 == len(genuine[0])
        table = np.array([line.split() for line in lines[1:]], dtype=np.int64)  # (t, 7)
        assert table.shape[1] == 7 and (table[:, :2] > 0).all()
        assert np.array_equal(table[:, 3], genuine[0][:, 3])
        assert np.all(np.diff(table[:, 2]) == 10)  # ms at 100 Hz
        assert np.allclose(table[:, 0] / 100 - 200, genuine[0][:, 0], atol=0.01)


def test_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="fmt"):
        generate_pen_corpus(tmp_path, fmt="csv")
    with pytest.raises(ValueError, match="num_writers"):
        generate_pen_samples(0, 1, seed=0)
