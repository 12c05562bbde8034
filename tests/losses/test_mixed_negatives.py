"""``negatives="mixed"``: a fraction of the negatives from the anchor's own sequence.

Checked three ways: against a slow reference of the draw written from the definition
(one uniform number per draw, mapped into the anchor's sequence for the first
``round(f * n)`` columns and into the whole pool for the rest; a draw on a positive is
dropped when no redraw is allowed); at the extremes it is exactly the ``"sequence"`` and
``"batch"`` draws; and end to end through the loss's gradient, the number of draws that
land outside the anchor's sequence follows the binomial law of the batch part.
"""

import math

import pytest
import torch

from cpc.losses.infonce import InfoNCE, build_layout, sample_candidates
from tests.losses.test_draws import drawn_histograms


def reference_draws(layout, n, n_own, pool_size, seed):
    """The draw of every anchor, one loop per anchor and column, with max_redraws=0."""
    u = torch.rand(layout.anchors.numel(), n, generator=torch.Generator().manual_seed(seed))
    out = torch.empty(u.shape, dtype=torch.long)
    for a in range(u.shape[0]):
        positives = {int(t) for t, ok in zip(layout.targets[a], layout.valid[a], strict=True) if ok}
        start, count = int(layout.seq_start[a]), int(layout.seq_count[a])
        for j in range(n):
            if j < n_own:
                draw = start + min(int(u[a, j] * count), count - 1)
            else:
                draw = min(int(u[a, j] * pool_size), pool_size - 1)
            out[a, j] = -1 if draw in positives else draw
    return out


@pytest.mark.parametrize("n_own", [0, 3, 7, 10])
def test_mixed_draws_match_the_slow_reference(n_own):
    offsets = torch.tensor([1, 2, 3])
    layout = build_layout(torch.tensor([9, 6, 4]), 3, 9, 1, offsets)
    pool_size = int(layout.pool.numel())
    got = sample_candidates(
        layout, 10, "mixed", pool_size, generator=torch.Generator().manual_seed(5),
        max_redraws=0, num_sequence=n_own,
    )  # fmt: skip
    assert torch.equal(got, reference_draws(layout, 10, n_own, pool_size, seed=5))


@pytest.mark.parametrize(("fraction", "same_as"), [(0.0, "batch"), (1.0, "sequence")])
def test_the_extremes_are_the_batch_and_sequence_draws(fraction, same_as):
    lengths, z = torch.tensor([9, 6, 4]), torch.randn(3, 9, 1, 8, dtype=torch.float64)
    pred = torch.randn(3, 9, 1, 3, 8, dtype=torch.float64)
    mixed = InfoNCE(3, num_negatives=16, negatives="mixed", sequence_fraction=fraction)
    other = InfoNCE(3, num_negatives=16, negatives=same_as)
    a = mixed(pred, z, lengths, generator=torch.Generator().manual_seed(1))
    b = other(pred, z, lengths, generator=torch.Generator().manual_seed(1))
    # the same draws; "sequence" may score them with its own product (rounding only)
    torch.testing.assert_close(a.loss, b.loss, rtol=1e-12, atol=0)


def test_the_batch_share_of_the_draws_leaves_the_sequence_at_the_expected_rate():
    n, fraction, lengths = 1200, 0.25, [9, 6, 4]
    loss = InfoNCE(3, num_negatives=n, negatives="mixed", sequence_fraction=fraction)
    pool, anchors, hist = drawn_histograms(loss, lengths, 9, 1, seed=0)
    n_batch = n - round(fraction * n)
    for anchor, rows in zip(anchors, hist, strict=True):
        outside = torch.ones(len(pool), dtype=torch.bool)
        outside[anchor["sequence"]] = False
        positives = {t for t in anchor["targets"] if t is not None}
        q = float(outside.sum()) / (len(pool) - len(positives))  # positives are redrawn
        got = float(rows[0][outside].sum())
        assert abs(got - n_batch * q) <= 5 * math.sqrt(n_batch * q * (1 - q)), anchor["at"]


def test_a_fraction_outside_zero_to_one_is_refused():
    with pytest.raises(ValueError, match="sequence_fraction"):
        InfoNCE(3, negatives="mixed", sequence_fraction=1.5)
