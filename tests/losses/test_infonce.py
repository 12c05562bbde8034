"""The prediction core against a slow reference written from the CPC paper's eq. 4."""

import math

import pytest
import torch

from cpc.losses.infonce import InfoNCE, build_layout, sample_candidates


def make_inputs(b, s, p, d, k, lengths, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(b, s, p, d, generator=g, dtype=dtype)
    pred = torch.randn(b, s, p, k, d, generator=g, dtype=dtype)
    lens = None if lengths is None else torch.tensor(lengths)
    return pred, z, lens


def reference(pred, z, lengths, offsets, mode, temperature, candidates):
    """Loops straight from the definition: one softmax per (anchor, offset) term.

    Anchors are enumerated in (b, i, p) order; candidates[a] lists pool indices, the
    pool being every valid latent in (b, s, p) order.
    """
    b, s, p, _ = z.shape
    lens = [s] * b if lengths is None else [int(x) for x in lengths]
    pool = [(bb, i, j) for bb in range(b) for i in range(lens[bb]) for j in range(p)]
    k_n = len(offsets)
    loss_sum = [0.0] * k_n
    correct = [0.0] * k_n
    count = [0] * k_n
    a = 0
    for bb in range(b):
        for i in range(s):
            for j in range(p):
                if not i + offsets[0] < lens[bb]:
                    continue
                for ki, k in enumerate(offsets):
                    if i + k >= lens[bb]:
                        continue
                    q = pred[bb, i, j, ki]
                    positive = z[bb, i + k, j]
                    if mode == "all":
                        negs = [z[t] for t in pool if t != (bb, i + k, j)]
                    else:
                        negs = [z[pool[int(c)]] for c in candidates[a] if c >= 0]
                    scores = torch.stack([q @ positive] + [q @ n for n in negs]) / temperature
                    loss_sum[ki] += float(-(scores[0] - torch.logsumexp(scores, 0)))
                    correct[ki] += float(scores[0] > scores[1:].max())
                    count[ki] += 1
                a += 1
    lpo = [ls / max(c, 1) for ls, c in zip(loss_sum, count, strict=True)]
    acc = [c_ / max(c, 1) for c_, c in zip(correct, count, strict=True)]
    return torch.tensor(lpo, dtype=torch.float64), torch.tensor(acc, dtype=torch.float64), count


SHAPES = [
    # b, s, p, d, lengths
    (2, 7, 1, 5, None),
    (3, 9, 1, 4, [9, 6, 3]),
    (2, 5, 3, 6, [5, 4]),
    (1, 12, 1, 3, None),
    (2, 4, 2, 3, [4, 3]),  # with 5 offsets from k=1, offsets 4 and 5 have no term
]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("mode", ["batch", "sequence", "all"])
@pytest.mark.parametrize(("k_min", "num_offsets"), [(1, 3), (2, 2), (1, 1), (1, 5)])
@pytest.mark.parametrize("temperature", [1.0, 0.3])
def test_matches_slow_reference(shape, mode, k_min, num_offsets, temperature):
    b, s, p, d, lengths = shape
    pred, z, lens = make_inputs(b, s, p, d, num_offsets, lengths)
    loss = InfoNCE(num_offsets, k_min, num_negatives=4, negatives=mode, temperature=temperature)
    offsets = list(range(k_min, k_min + num_offsets))  # the definition, not loss.offsets
    cand = None if mode == "all" else random_candidates(lens, b, s, p, offsets, 4, mode)
    out = loss(pred, z, lens, candidates=cand)
    lpo, acc, count = reference(pred, z, lens, offsets, mode, temperature, cand)
    torch.testing.assert_close(out.loss_per_offset, lpo)
    torch.testing.assert_close(out.accuracy, acc)
    assert out.count.tolist() == count
    # Offsets without a term are left out of the mean, not counted as zero.
    with_terms = [x for x, c in zip(lpo.tolist(), count, strict=True) if c > 0]
    torch.testing.assert_close(out.loss, torch.tensor(sum(with_terms) / len(with_terms)).double())


def random_candidates(lens, b, s, p, offsets, n, mode, seed=1):
    """Negatives for each anchor in (b, i, p) order, drawn here (not by the package).

    Pool indices of any valid latent other than the anchor's positives (of its own
    sequence in "sequence" mode), with repeats, and one ``-1`` (a dropped draw) per anchor.
    """
    rng = torch.Generator().manual_seed(seed)
    lens = [s] * b if lens is None else [int(x) for x in lens]
    pool = [(bb, i, j) for bb in range(b) for i in range(lens[bb]) for j in range(p)]
    rows = []
    for bb in range(b):
        for i in range(s):
            for j in range(p):
                if not i + offsets[0] < lens[bb]:
                    continue
                positives = {(bb, i + k, j) for k in offsets}
                allowed = [m for m, t in enumerate(pool) if t not in positives]
                if mode == "sequence":
                    allowed = [m for m in allowed if pool[m][0] == bb]
                picks = torch.randint(len(allowed), (n - 1,), generator=rng).tolist()
                rows.append([allowed[x] for x in picks] + [-1])
    return torch.tensor(rows)


@pytest.mark.parametrize("mode", ["batch", "sequence"])
@pytest.mark.parametrize("num_negatives", [3, 40])  # "auto" picks "gather", then "matmul"
def test_scoring_strategies_agree_with_gradients(mode, num_negatives):
    def run(strategy):
        pred, z, lens = make_inputs(3, 10, 2, 8, 4, [10, 7, 5])
        pred.requires_grad_(True)
        z.requires_grad_(True)
        loss = InfoNCE(4, num_negatives=num_negatives, negatives=mode, strategy=strategy)
        out = loss(pred, z, lens, generator=torch.Generator().manual_seed(0))
        out.loss.backward()
        return out, pred.grad, z.grad

    gather, matmul, auto = run("gather"), run("matmul"), run("auto")
    for other in (matmul, auto):
        torch.testing.assert_close(other[0].loss_per_offset, gather[0].loss_per_offset)
        torch.testing.assert_close(other[0].accuracy, gather[0].accuracy)
        torch.testing.assert_close(other[1], gather[1])
        torch.testing.assert_close(other[2], gather[2])
    assert gather[2].abs().sum() > 0


@pytest.mark.parametrize("mode", ["batch", "sequence", "all"])
@pytest.mark.parametrize("strategy", ["gather", "matmul"])
def test_whole_loss_passes_gradcheck(mode, strategy):
    b, s, p, d, k = 2, 5, 2, 3, 2
    pred, z, lens = make_inputs(b, s, p, d, k, [5, 3])
    pred.requires_grad_(True)
    z.requires_grad_(True)
    loss = InfoNCE(k, num_negatives=5, negatives=mode, temperature=0.7, strategy=strategy)
    cand = random_candidates(lens, b, s, p, [1, 2], 5, mode)  # fixed: a smooth function
    # fast_mode: random projections of the Jacobian (a few passes instead of one per input)
    torch.autograd.gradcheck(
        lambda q, x: loss(q, x, lens, candidates=cand).loss, (pred, z), fast_mode=True
    )


@pytest.mark.parametrize("mode", ["batch", "sequence"])
@pytest.mark.parametrize("n", [1, 7, 31])
def test_equal_scores_give_log_one_plus_n(mode, n):
    pred, z, lens = make_inputs(4, 16, 1, 8, 3, [16, 12, 16, 10])
    out = InfoNCE(3, num_negatives=n, negatives=mode)(torch.zeros_like(pred), z, lens)
    torch.testing.assert_close(out.loss, torch.tensor(math.log(1 + n), dtype=torch.float64))
    assert out.accuracy.eq(0).all(), "a tie is not a correct ranking"


def test_equal_scores_full_softmax_gives_log_pool():
    pred, z, lens = make_inputs(3, 6, 2, 4, 2, [6, 4, 3])
    out = InfoNCE(2, negatives="all")(torch.zeros_like(pred), z, lens)
    pool = (6 + 4 + 3) * 2
    torch.testing.assert_close(out.loss, torch.tensor(math.log(pool), dtype=torch.float64))


@pytest.mark.parametrize("mode", ["batch", "sequence"])
def test_positives_are_never_negatives(mode):
    b, s, p = 4, 20, 2
    lens = torch.tensor([20, 15, 6, 3])
    layout = build_layout(lens, b, s, p, torch.arange(1, 6))
    g = torch.Generator().manual_seed(0)
    cand = sample_candidates(layout, 50, mode, layout.pool.numel(), generator=g)
    positives = torch.where(layout.valid, layout.targets, -2)
    assert not (cand[:, :, None] == positives[:, None, :]).any()
    if mode == "sequence":
        lo, hi = layout.seq_start[:, None], (layout.seq_start + layout.seq_count)[:, None]
        kept = cand[cand >= 0]
        assert ((cand < 0) | ((cand >= lo) & (cand < hi))).all() and kept.numel() > 0


def test_tiny_pool_masks_unavoidable_collisions():
    # a single sequence of 3 steps, offsets 1..2: the anchor at step 0 has 2 positives in a
    # pool of 3, so without redraws about 2/3 of its draws collide and are marked -1.
    layout = build_layout(torch.tensor([3]), 1, 3, 1, torch.tensor([1, 2]))
    g = torch.Generator().manual_seed(0)
    cand = sample_candidates(layout, 64, "sequence", 3, generator=g, max_redraws=0)
    assert (cand[0] == -1).any() and (cand[0] == 0).any()
    assert set(cand[0].tolist()) == {0, -1}
    pred, z, _ = make_inputs(1, 3, 1, 4, 2, None)
    out = InfoNCE(2, num_negatives=64, negatives="sequence")(pred, z, torch.tensor([3]))
    assert torch.isfinite(out.loss)


@pytest.mark.parametrize("mode", ["batch", "sequence", "all"])
def test_padding_never_enters_the_loss(mode):
    b, s, p, d, k = 3, 10, 2, 6, 3
    pred, z, lens = make_inputs(b, s, p, d, k, [10, 6, 4])
    pad = torch.arange(s)[None, :] >= lens[:, None]  # (b, s)
    z2 = z.clone()
    z2[pad] = 1e3 * torch.randn_like(z2[pad])
    pred2 = pred.clone()
    pred2[pad] = 1e3
    loss = InfoNCE(k, num_negatives=5, negatives=mode)
    a = loss(pred, z, lens, generator=torch.Generator().manual_seed(3))
    z2.requires_grad_(True)
    pred2.requires_grad_(True)
    b_ = loss(pred2, z2, lens, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(a.loss_per_offset, b_.loss_per_offset)
    b_.loss.backward()
    assert z2.grad[pad].abs().max() == 0 and pred2.grad[pad].abs().max() == 0
    assert z2.grad[~pad].abs().max() > 0


def test_distributed_flag_is_a_no_op_without_process_group():
    pred, z, lens = make_inputs(2, 8, 1, 4, 2, [8, 5])
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    a = InfoNCE(2, num_negatives=3)(pred, z, lens, generator=g())
    b = InfoNCE(2, num_negatives=3, gather_distributed=True)(pred, z, lens, generator=g())
    torch.testing.assert_close(a.loss, b.loss)


def test_learns_nothing_from_nothing_but_gradients_are_finite():
    pred, z, lens = make_inputs(2, 8, 1, 4, 2, [8, 5], dtype=torch.float32)
    pred.requires_grad_(True)
    InfoNCE(2, num_negatives=3)(pred, z, lens).loss.backward()
    assert torch.isfinite(pred.grad).all()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_offsets": 0}, "num_offsets"),
        ({"num_offsets": 2, "k_min": 0}, "k_min"),
        ({"num_offsets": 2, "negatives": "speaker"}, "negatives"),
        ({"num_offsets": 2, "temperature": 0.0}, "temperature"),
        ({"num_offsets": 2, "num_negatives": 0}, "num_negatives"),
    ],
)
def test_bad_hyper_parameters_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        InfoNCE(**kwargs)


def test_too_short_for_any_term_is_a_clear_error():
    pred, z, _ = make_inputs(2, 4, 1, 3, 2, None)
    with pytest.raises(ValueError, match=r"longest sequence has 2 steps.*k_min=2 needs at least 3"):
        InfoNCE(2, k_min=2)(pred, z, torch.tensor([2, 1]))
    pred, z, _ = make_inputs(2, 2, 1, 3, 2, None)
    with pytest.raises(ValueError, match="longest sequence has 2 steps"):
        InfoNCE(2, k_min=2)(pred, z)


def test_bf16_inputs_give_a_float32_loss():
    # Outside autocast too: the softmax of bf16 scores is taken in float32.
    pred, z, lens = make_inputs(2, 8, 1, 4, 2, [8, 5], dtype=torch.float32)
    loss = InfoNCE(2, num_negatives=3)
    half = loss(pred.bfloat16(), z.bfloat16(), lens, generator=torch.Generator().manual_seed(0))
    assert half.loss.dtype == half.loss_per_offset.dtype == torch.float32
    full = loss(
        pred.bfloat16().float(), z.bfloat16().float(), lens,
        generator=torch.Generator().manual_seed(0),
    )  # fmt: skip
    torch.testing.assert_close(half.loss_per_offset, full.loss_per_offset, atol=0.05, rtol=0.02)


def test_shape_mismatch_is_a_clear_error():
    pred, z, _ = make_inputs(2, 4, 1, 3, 2, None)
    with pytest.raises(ValueError, match="pred must have shape"):
        InfoNCE(3)(pred, z)


def test_defaults_follow_the_papers():
    loss = InfoNCE(12)
    assert loss.offsets == list(range(1, 13))  # CPC paper speech: k = 1..12
    assert (loss.num_negatives, loss.negatives) == (128, "batch")  # CPC_audio
    assert loss.temperature == 1.0 and loss.gather_distributed is False
    assert loss.strategy == "auto" and loss.max_redraws == 10
    assert InfoNCE(2, strategy="matmul", gather_distributed=True).strategy == "matmul"
    assert InfoNCE(2, gather_distributed=True).gather_distributed is True
    assert InfoNCE(2, negatives="all", num_negatives=0).negatives == "all"  # n unused


@pytest.mark.parametrize("mode", ["batch", "sequence", "all"])
def test_no_lengths_means_every_step_is_valid(mode):
    pred, z, _ = make_inputs(3, 6, 2, 4, 2, None)
    loss = InfoNCE(2, num_negatives=5, negatives=mode)
    a = loss(pred, z, generator=torch.Generator().manual_seed(0))
    b = loss(pred, z, torch.tensor([6, 6, 6]), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(a.loss_per_offset, b.loss_per_offset)
    assert a.count.tolist() == b.count.tolist() == [3 * 5 * 2, 3 * 4 * 2]
