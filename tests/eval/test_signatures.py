import math

import numpy as np
import pytest
import torch

from cpc.eval.signatures import (
    LOCAL_FEATURES,
    local_features,
    score_protocol,
    signature_protocol,
)
from cpc.eval.verification import equal_error_rate


@pytest.mark.parametrize(("gap", "sd"), [(1.0, 1.0), (2.0, 0.5), (0.5, 2.0)])
def test_eer_matches_the_gaussian_closed_form(gap: float, sd: float) -> None:
    # genuine ~ N(gap, sd), impostor ~ N(0, sd): the densities cross at gap / 2, where
    # FAR = FRR = Phi(-gap / (2 sd)). Exact quantiles stand in for samples.
    def quantiles(n: int) -> np.ndarray:
        return torch.special.ndtri((torch.arange(n, dtype=torch.float64) + 0.5) / n).numpy()

    # unequal counts, so FAR and FRR must each be divided by their own
    eer, threshold = equal_error_rate(gap + sd * quantiles(20000), sd * quantiles(7000))
    expected = 0.5 * math.erfc(gap / (2 * sd) / math.sqrt(2))
    assert eer == pytest.approx(expected, abs=2e-4)
    assert threshold == pytest.approx(gap / 2, abs=5e-3)


def test_protocol_references_queries_and_impostors() -> None:
    writers = np.array([0, 0, 0, 1, 1, 1, 1, 2, 2, 2])
    protocol = signature_protocol(writers, np.array([1, 1, 2]), references=2)
    assert {w: r.tolist() for w, r in protocol.references.items()} == {
        0: [0, 1],
        1: [3, 4],
        2: [7, 8],
    }
    assert protocol.genuine == [(2, 0), (5, 1), (6, 1), (9, 2)]
    # one sample (the first query) of every other writer
    assert sorted(protocol.impostor) == sorted([(5, 0), (9, 0), (2, 1), (9, 1), (2, 2), (5, 2)])
    assert protocol.skilled == [(0, 1), (1, 1), (2, 2)]
    with pytest.raises(ValueError, match="writer 0"):
        signature_protocol(writers, [], references=3)


def test_scores_are_normalised_per_writer() -> None:
    # signatures are numbers, distance |a - b|. Writer 0: references 0, 2 (spread 2),
    # writer 1: references 10, 11 (spread 1).
    genuine = [0.0, 2.0, 1.0, 10.0, 11.0, 12.0]
    forgeries = [4.0, 10.5]
    items = [genuine, forgeries]
    protocol = signature_protocol([0, 0, 0, 1, 1, 1], [0, 1], references=2)

    def distances(left, right):
        return np.array(
            [abs(items[a][i] - items[b][j]) for (a, i), (b, j) in zip(left, right, strict=True)]
        )

    scores = score_protocol(protocol, distances)
    # genuine: q=1 vs (0, 2): mean 1 / 2; q=12 vs (10, 11): mean 1.5 / 1
    np.testing.assert_allclose(scores.genuine, [-0.5, -1.5])
    # impostors: q=12 against writer 0: mean(12, 10) / 2; q=1 against writer 1: 9.5 / 1
    np.testing.assert_allclose(sorted(scores.impostor), [-9.5, -5.5])
    # forgeries: 4 vs (0, 2): 3 / 2; 10.5 vs (10, 11): 0.5 / 1
    np.testing.assert_allclose(scores.skilled, [-1.5, -0.5])
    assert scores.eer == 0.0 and 0.0 < scores.skilled_eer < 1.0


def test_local_features_remove_session_constants() -> None:
    rng = np.random.default_rng(0)
    t = np.linspace(0, 2, 200)
    sample = np.column_stack(
        [
            20 * np.sin(3 * t),
            10 * np.cos(5 * t),
            0.5 + 0.3 * np.sin(7 * t),
            (np.sin(2 * t) > -0.8).astype(float),
            rng.uniform(150, 250) + 0 * t,
            rng.uniform(40, 70) + 0 * t,
        ]
    )
    moved = sample.copy()
    moved[:, 0] = 1.3 * sample[:, 0] + 35.0  # another tablet position and scale
    moved[:, 1] = 1.3 * sample[:, 1] - 12.0
    moved[:, 2] = 0.1 + 1.4 * sample[:, 2]  # another pressure calibration
    moved[:, 4:] += 20.0  # another pen tilt
    a, b = local_features(sample), local_features(moved)
    assert a.shape == (200, len(LOCAL_FEATURES)) and a.dtype == np.float32
    np.testing.assert_allclose(a, b, atol=1e-4)
    # ... but not the shape of the movement: a different path changes them
    other = sample.copy()
    other[:, 0] = 20 * np.sin(4 * t)
    assert np.abs(local_features(other) - a).max() > 0.5
    with pytest.raises(ValueError, match="sample"):
        local_features(np.zeros((5, 3)))
