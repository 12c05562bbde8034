import numpy as np
import pytest

from cpc.eval.dtw import dtw_distance, dtw_pairs


def slow_dtw(a: np.ndarray, b: np.ndarray) -> float:
    """The recursion written cell by cell, straight from its definition."""
    n, m = len(a), len(b)
    d = np.full((n + 1, m + 1), np.inf)
    d[0, 0] = 0.0
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            cost = np.linalg.norm(a[i - 1] - b[j - 1])
            d[i, j] = cost + min(d[i - 1, j - 1], d[i - 1, j], d[i, j - 1])
    return float(d[n, m])


def test_hand_computed_case() -> None:
    # a = 0 1 2 3, b = 0 2 3: cost |a_i - b_j|; the best path (0,0) (1,0)|(1,1) (2,1) (3,2)
    # pays 0 + 1 + 0 + 0 = 1 (matching a=1 to b=0 or b=2 costs 1 either way).
    a = np.array([[0.0], [1.0], [2.0], [3.0]])
    b = np.array([[0.0], [2.0], [3.0]])
    assert dtw_distance(a, b) == pytest.approx(1.0)
    assert dtw_distance(a, b, normalize=True) == pytest.approx(1.0 / 7)
    # a time-stretched copy costs nothing; one extra frame of distance 5 costs 5
    assert dtw_distance(a, np.repeat(a, 3, axis=0)) == 0.0
    assert dtw_distance(np.array([[0.0, 0.0]]), np.array([[3.0, 4.0]])) == pytest.approx(5.0)
    # 2-D frames, Euclidean cost: (0,0)->(3,4) is 5, then (3,4)->(3,4) is 0
    assert dtw_distance(np.array([[0.0, 0.0], [3.0, 4.0]]), np.array([[3.0, 4.0]])) == 5.0


def test_batched_pairs_match_the_slow_reference() -> None:
    rng = np.random.default_rng(0)
    left = [rng.normal(size=(int(rng.integers(1, 12)), 3)) for _ in range(9)]
    right = [rng.normal(size=(int(rng.integers(1, 12)), 3)) for _ in range(9)]
    got = dtw_pairs(left, right, normalize=False, batch_size=4, dtype=__import__("torch").float64)
    want = [slow_dtw(a, b) for a, b in zip(left, right, strict=True)]
    np.testing.assert_allclose(got, want, rtol=1e-10)
    norm = dtw_pairs(left, right, batch_size=3)
    lengths = np.array([len(a) + len(b) for a, b in zip(left, right, strict=True)])
    np.testing.assert_allclose(norm, np.array(want) / lengths, rtol=1e-5)
    # symmetric, and a sequence is at distance 0 from itself
    assert dtw_distance(left[0], right[0]) == pytest.approx(dtw_distance(right[0], left[0]))
    assert dtw_distance(left[1], left[1]) == 0.0


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="as many"):
        dtw_pairs([np.zeros((2, 1))], [])
    with pytest.raises(ValueError, match=r"\(t, d\)"):
        dtw_pairs([np.zeros(3)], [np.zeros((2, 1))])
