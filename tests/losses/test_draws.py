"""The loss's own draws of negatives, read back through its gradient.

No test here calls ``sample_candidates``: the draws are observed from the outside. With
every prediction zero, every score is zero and each term's softmax is uniform over its
positive and its ``N`` negatives; with one-hot latents (``z`` at pool position ``j`` is
``e_j``) the gradient of the loss with respect to the prediction of a term is then

    d loss / d pred[a, k] = ((e_pos + H) / (1 + N) - e_pos) / (K' * count_k)

where ``H`` counts how often each pool latent was drawn as a negative for that term,
``K'`` is the number of offsets with at least one term and ``count_k`` the number of terms
of offset ``k``. So ``H`` is recovered exactly, and tested against a layout written here
from the definitions (not from the package): which latents are eligible, that none is a
positive, that every eligible one is reached (the last of the pool included), and that
the frequencies are uniform (chi-square).
"""

import math

import pytest
import torch

from cpc.losses.infonce import InfoNCE, Layout, build_layout, sample_candidates


def reference_layout(lengths, s, p, offsets):
    """Pool, anchors and targets straight from the definitions.

    Returns the pool as a list of (b, i, j) in (b, s, p) order, and for each anchor
    (in the same order) a dict: its (b, i, j), the pool index of its target per offset
    (None when the term does not exist) and the pool indices of its own sequence.
    """
    pool = [(b, i, j) for b, n in enumerate(lengths) for i in range(n) for j in range(p)]
    where = {t: m for m, t in enumerate(pool)}
    anchors = []
    for b, n in enumerate(lengths):
        sequence = [where[(b, i, j)] for i in range(n) for j in range(p)]
        for i in range(s):
            for j in range(p):
                if i < n and i + offsets[0] < n:
                    targets = [where.get((b, i + k, j)) if i + k < n else None for k in offsets]
                    anchors.append({"at": (b, i, j), "targets": targets, "sequence": sequence})
    return pool, anchors


def drawn_histograms(loss, lengths, s, p, seed):
    """Run the loss on probe inputs; return (pool, anchors, H) with H[a][k] a histogram.

    H[a][k] is a float tensor over pool indices (None where the term does not exist).
    """
    offsets = list(range(loss.k_min, loss.k_min + loss.num_offsets))
    pool, anchors = reference_layout(lengths, s, p, offsets)
    b, m, k_n = len(lengths), len(pool), len(offsets)
    d = m + 3  # not the pool size, so that the two cannot be confused
    z = torch.full((b, s, p, d), 1e3, dtype=torch.float64)  # padding: never scored
    for index, (bb, i, j) in enumerate(pool):
        z[bb, i, j] = 0
        z[bb, i, j, index] = 1
    pred = torch.zeros(b, s, p, k_n, d, dtype=torch.float64, requires_grad=True)
    out = loss(pred, z, torch.tensor(lengths), generator=torch.Generator().manual_seed(seed))
    out.loss.backward()
    count = [sum(a["targets"][k] is not None for a in anchors) for k in range(k_n)]
    assert out.count.tolist() == count
    k_eff = sum(c > 0 for c in count)
    hist = []
    for anchor in anchors:
        rows = []
        for k, target in enumerate(anchor["targets"]):
            if target is None:
                rows.append(None)
                continue
            # u = (e_pos + H) / (1 + h) - e_pos, with h = H.sum() draws kept in the softmax
            u = pred.grad[anchor["at"]][k][:m] * k_eff * count[k]
            kept = 1 / (1 + u[target]) - 1  # read off the positive's own entry
            h = u * (1 + kept)
            h[target] = 0  # checked by the other offsets' rows of the same draw
            torch.testing.assert_close(h, h.round(), atol=1e-6, rtol=0)  # counts are integers
            torch.testing.assert_close(h.sum(), kept)
            rows.append(h.round())
        hist.append(rows)
    # Nothing but the anchors' predictions may have a gradient.
    seen = torch.zeros(b, s, p, dtype=torch.bool)
    for anchor in anchors:
        seen[anchor["at"]] = True
    assert pred.grad[~seen].abs().max() == 0
    return pool, anchors, hist


def chi_square_bound(df, z=5.0):
    """Upper quantile of chi-square with ``df`` degrees of freedom (Wilson-Hilferty)."""
    return df * (1 - 2 / (9 * df) + z * math.sqrt(2 / (9 * df))) ** 3


SHAPES = [
    # lengths, s, p
    ([9, 6, 4], 9, 1),
    ([5, 3], 5, 2),  # a grid: "sequence" means the whole image, every row and column
]


@pytest.mark.parametrize(("lengths", "s", "p"), SHAPES)
@pytest.mark.parametrize("mode", ["batch", "sequence"])
@pytest.mark.parametrize("strategy", ["gather", "matmul"])
def test_own_draws_are_eligible_cover_everything_and_are_uniform(lengths, s, p, mode, strategy):
    n = 1500
    loss = InfoNCE(3, num_negatives=n, negatives=mode, strategy=strategy)
    pool, anchors, hist = drawn_histograms(loss, lengths, s, p, seed=0)
    chi2, df = 0.0, 0
    for anchor, rows in zip(anchors, hist, strict=True):
        first = rows[0]  # offset k_min: every anchor has it
        for row in rows[1:]:
            if row is not None:  # one draw per anchor, shared by all its offsets
                assert torch.equal(row, first), anchor["at"]
        candidates = range(len(pool)) if mode == "batch" else anchor["sequence"]
        positives = {t for t in anchor["targets"] if t is not None}
        eligible = [c for c in candidates if c not in positives]
        kept = int(first.sum())
        # A draw is dropped after 11 hits on a positive in a row (max_redraws=10): a
        # binomial number of them, which matters only where positives fill the sequence.
        q = (len(candidates) - len(eligible)) / len(candidates)
        q = q ** (loss.max_redraws + 1)
        assert abs(n - kept - n * q) <= 5 * math.sqrt(n * q * (1 - q)) + 0.5, (anchor, kept)
        outside = torch.ones(len(pool), dtype=torch.bool)
        outside[eligible] = False
        assert first[outside].sum() == 0, f"{anchor['at']} drew a positive or outside its {mode}"
        drawn = first[eligible]
        assert (drawn > 0).all(), f"{anchor['at']} never drew {torch.tensor(eligible)[drawn == 0]}"
        expected = kept / len(eligible)
        chi2 += float(((drawn - expected) ** 2 / expected).sum())
        df += len(eligible) - 1
    assert chi2 < chi_square_bound(df), (chi2, df)


@pytest.mark.parametrize("p", [1, 2])
def test_full_softmax_scores_every_pool_latent_once(p):
    lengths, s = [6, 4, 2], 6
    loss = InfoNCE(3, negatives="all")
    offsets = [1, 2, 3]
    pool, anchors = reference_layout(lengths, s, p, offsets)
    m = len(pool)
    z = torch.full((3, s, p, m), 1e3, dtype=torch.float64)
    for index, (bb, i, j) in enumerate(pool):
        z[bb, i, j] = 0
        z[bb, i, j, index] = 1
    pred = torch.zeros(3, s, p, 3, m, dtype=torch.float64, requires_grad=True)
    out = loss(pred, z, torch.tensor(lengths))
    out.loss.backward()
    count = [sum(a["targets"][k] is not None for a in anchors) for k in range(3)]
    for anchor in anchors:
        for k, target in enumerate(anchor["targets"]):
            if target is None:
                continue
            g = pred.grad[anchor["at"]][k] * 3 * count[k]
            e_pos = torch.zeros(m, dtype=torch.float64)
            e_pos[target] = 1
            # softmax over the whole pool, the positive once among them
            torch.testing.assert_close((g + e_pos) * m, torch.ones(m, dtype=torch.float64))


def test_draws_that_keep_hitting_a_positive_are_dropped_not_scored():
    # One sequence of 3 steps, offsets 1..2: the anchor at step 0 has positives at steps
    # 1 and 2, so step 0 is its only eligible negative; the anchor at step 1 has the
    # positive step 2 (its offset 2 falls off the end). Without redraws about 2/3 and 1/3
    # of their draws hit a positive: those must leave the softmax, not be scored.
    n = 60
    loss = InfoNCE(2, num_negatives=n, negatives="sequence", max_redraws=0)
    z = torch.eye(3, dtype=torch.float64).view(1, 3, 1, 3)  # one-hot: step i is e_i
    pred = torch.zeros(1, 3, 1, 2, 3, dtype=torch.float64, requires_grad=True)
    out = loss(pred, z, torch.tensor([3]), generator=torch.Generator().manual_seed(0))
    out.loss.backward()
    count = [2, 1]  # terms per offset; K' = 2
    kept = []
    for step, eligible in [(0, [0]), (1, [0, 1])]:
        u = pred.grad[0, step, 0, 0] * 2 * count[0]  # ((e_pos + H) / (1 + h) - e_pos)
        target = step + 1
        h = round(float(1 / (1 + u[target]) - 1))  # draws kept in the softmax
        assert 0 < h < n, f"anchor {step}: {h} of {n} draws kept; some must be dropped"
        hist = u * (1 + h)
        hist[target] = 0
        torch.testing.assert_close(hist[eligible].sum(), torch.tensor(h, dtype=torch.float64))
        assert hist[2] == 0 and (step == 1 or hist[1] == 0), "a positive was scored"
        kept.append(h)
    expected = [(math.log(1 + kept[0]) + math.log(1 + kept[1])) / 2, math.log(1 + kept[0])]
    torch.testing.assert_close(out.loss_per_offset, torch.tensor(expected, dtype=torch.float64))


def one_anchor_layout(targets, seq_start=0, seq_count=None):
    """A layout of one anchor with the given positive pool indices (unit tests of draws)."""
    t = torch.tensor([targets])
    count = torch.tensor([seq_count if seq_count is not None else 0])
    return Layout(
        pool=torch.arange(0),
        anchors=torch.tensor([0]),
        targets=t,
        valid=torch.ones_like(t, dtype=torch.bool),
        seq_start=torch.tensor([seq_start]),
        seq_count=count,
    )


@pytest.mark.parametrize("max_redraws", [0, 2, None])  # None: the default, 10
def test_a_draw_is_dropped_after_max_redraws_hits_in_a_row(max_redraws):
    # 4 latents, 3 of them the anchor's positives: a draw survives a round with
    # probability 1/4, so after r redraws a fraction (3/4)^(r + 1) is dropped.
    n = 20000
    kwargs = {} if max_redraws is None else {"max_redraws": max_redraws}
    layout = one_anchor_layout([1, 2, 3], seq_start=0, seq_count=4)
    g = torch.Generator().manual_seed(0)
    cand = sample_candidates(layout, n, "sequence", 4, generator=g, **kwargs)
    assert set(cand.unique().tolist()) <= {-1, 0}
    q = 0.75 ** ((10 if max_redraws is None else max_redraws) + 1)
    dropped = int((cand == -1).sum())
    assert abs(dropped - n * q) <= 5 * math.sqrt(n * q * (1 - q)), (dropped, n * q)


@pytest.mark.parametrize("mode", ["batch", "sequence"])
def test_draws_are_offset_to_where_this_process_pool_starts_in_the_gathered_pool(mode):
    # A process whose pool starts at 6 in a gathered pool of 9: its anchor's positive,
    # local index 1, is gathered index 7, and its sequence (local 0..2) is 6..8.
    layout = one_anchor_layout([1], seq_start=0, seq_count=3)
    g = torch.Generator().manual_seed(0)
    cand = sample_candidates(layout, 4000, mode, 9, pool_offset=6, generator=g)
    allowed = set(range(9)) if mode == "batch" else {6, 7, 8}
    assert set(cand.flatten().tolist()) == allowed - {7}


def test_repr_names_the_offsets_and_negatives():
    text = repr(InfoNCE(3, k_min=2, num_negatives=7, negatives="sequence", temperature=0.5))
    assert "offsets=2..4, negatives='sequence', num_negatives=7, temperature=0.5" in text


@pytest.mark.parametrize("p", [1, 3])
@pytest.mark.parametrize("mode", ["batch", "sequence", "mixed"])
@pytest.mark.parametrize("pool_offset", [0, 5])
def test_range_test_of_positives_equals_comparing_every_target(p, mode, pool_offset):
    # InfoNCE's layouts know their positives are evenly spaced and test draws against
    # that range; the generic layout compares with every target. Same draws, same
    # redraws, same -1s (tiny sequences of 2 and 3 steps keep colliding).
    offsets = torch.arange(1, 5)
    lengths = torch.tensor([9, 3, 2, 7])
    fast = build_layout(lengths, 4, 9, p, offsets, consecutive=True)
    slow = build_layout(lengths, 4, 9, p, offsets)
    assert fast.target_stride == p and slow.target_stride is None
    pool_size = int(fast.pool.numel()) + pool_offset
    kwargs = {"max_redraws": 2, "num_sequence": 10}
    got, want = (
        sample_candidates(
            layout, 24, mode, pool_size, pool_offset, torch.Generator().manual_seed(7), **kwargs
        )
        for layout in (fast, slow)
    )
    assert torch.equal(got, want)
    assert mode == "batch" or (want == -1).any()  # own draws: collisions exercised
