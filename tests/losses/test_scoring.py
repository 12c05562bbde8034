"""The chunked scoring of sampled candidates equals the materialised product."""

import pytest
import torch

from cpc.losses import infonce
from cpc.losses.infonce import InfoNCE, _ScoreSampled, build_layout


@pytest.mark.parametrize("chunk", [1, 3, 100])
def test_chunked_scores_and_gradients(chunk):
    # Fresh values per case: a buffer left from an earlier case must not pass for ours.
    g = torch.Generator().manual_seed(chunk)
    q = torch.randn(7, 3, 5, dtype=torch.float64, generator=g, requires_grad=True)
    pool = torch.randn(9, 5, dtype=torch.float64, generator=g, requires_grad=True)
    cand = torch.randint(0, 9, (7, 6), generator=g)  # repeats included
    out = _ScoreSampled.apply(q, pool, cand, chunk)
    torch.testing.assert_close(out, torch.bmm(q, pool[cand].transpose(1, 2)))
    torch.autograd.gradcheck(lambda q, p: _ScoreSampled.apply(q, p, cand, chunk), (q, pool))


@pytest.mark.parametrize("chunk_elements", [1, 50, 1 << 20])
def test_chunk_size_never_changes_the_loss(chunk_elements):
    g = torch.Generator().manual_seed(0)
    z = torch.randn(3, 10, 2, 8, dtype=torch.float64, generator=g)
    pred = torch.randn(3, 10, 2, 4, 8, dtype=torch.float64, generator=g)
    lens = torch.tensor([10, 7, 5])
    ref = InfoNCE(4, num_negatives=6, strategy="matmul")(pred, z, lens, generator=g.manual_seed(1))
    out = InfoNCE(4, num_negatives=6, strategy="gather", chunk_elements=chunk_elements)(
        pred, z, lens, generator=g.manual_seed(1)
    )
    torch.testing.assert_close(out.loss_per_offset, ref.loss_per_offset)


def test_bad_chunk_elements_is_named():
    with pytest.raises(ValueError, match="chunk_elements"):
        InfoNCE(2, chunk_elements=0)


@pytest.mark.parametrize(
    ("strategy", "num_negatives", "chunk_elements", "chunked"),
    [
        ("gather", 40, 1 << 21, (1 << 21) // (42 * 3)),
        ("gather", 4, 1, 1),  # a chunk is never empty
        ("matmul", 1, 1 << 21, None),
        ("auto", 4, 1 << 21, None),  # pool 18 = 3 x (2 offsets + 4 negatives): matmul
        ("auto", 3, 90, 90 // (5 * 3)),  # pool 18 > 3 x 5: gather, in chunks of 6 anchors
    ],
)
def test_strategy_takes_the_path_it_names(strategy, num_negatives, chunk_elements, chunked):
    # Both paths give the same values (tested above), so check which one ran: the
    # chunked product is _ScoreSampled, "matmul" one product over the whole pool.
    calls = []
    real = _ScoreSampled.apply

    def spy(q, pool, candidates, chunk):
        calls.append(chunk)
        return real(q, pool, candidates, chunk)

    g = torch.Generator().manual_seed(0)
    z = torch.randn(2, 9, 1, 3, generator=g)  # a pool of 18 latents
    pred = torch.randn(2, 9, 1, 2, 3, generator=g)
    loss = InfoNCE(2, num_negatives=num_negatives, strategy=strategy, chunk_elements=chunk_elements)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_ScoreSampled, "apply", spy)
        loss(pred, z, generator=g)
    assert calls == ([] if chunked is None else [chunked])


def _own_sequence_case(dtype=torch.float64):
    g = torch.Generator().manual_seed(3)
    z = torch.randn(3, 10, 2, 8, dtype=dtype, generator=g, requires_grad=True)
    pred = torch.randn(3, 10, 2, 4, 8, dtype=dtype, generator=g, requires_grad=True)
    return z, pred, torch.tensor([10, 7, 3])


@pytest.mark.parametrize("num_negatives", [6, 40])  # 40: more than the shortest sequence
def test_own_sequence_product_equals_the_gathered_scores(num_negatives):
    # Ragged lengths, two columns per step (p = 2), sequences of 20, 14 and 6 latents:
    # the third is so short that some draws keep colliding and come back as -1.
    z, pred, lens = _own_sequence_case()
    results = {}
    for strategy in ("gather", "sequence"):
        loss = InfoNCE(4, num_negatives=num_negatives, negatives="sequence", strategy=strategy)
        out = loss(pred, z, lens, generator=torch.Generator().manual_seed(1))
        grads = torch.autograd.grad(out.loss, (pred, z))
        results[strategy] = (out.loss_per_offset, out.accuracy, *grads)
    for got, ref in zip(results["sequence"], results["gather"], strict=True):
        torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-12)


def test_own_sequence_product_takes_given_candidates_with_masked_draws():
    z, pred, lens = _own_sequence_case()
    offsets = torch.arange(1, 5)
    layout = build_layout(lens, 3, 10, 2, offsets)
    u = torch.rand(layout.anchors.numel(), 5, generator=torch.Generator().manual_seed(4))
    cand = layout.seq_start[:, None] + (u * layout.seq_count[:, None]).long()
    cand[:, 0] = -1  # a draw that kept colliding: masked out of every softmax
    got = InfoNCE(4, num_negatives=5, negatives="sequence", strategy="sequence")
    want = InfoNCE(4, num_negatives=5, negatives="sequence", strategy="gather")
    torch.testing.assert_close(
        got(pred, z, lens, candidates=cand.clone()).loss,
        want(pred, z, lens, candidates=cand.clone()).loss,
        rtol=1e-10,
        atol=0,
    )


def test_own_sequence_strategy_needs_own_sequence_negatives():
    z, pred, lens = _own_sequence_case()
    with pytest.raises(ValueError, match="negatives='sequence'"):
        InfoNCE(4, num_negatives=6, negatives="batch", strategy="sequence")(pred, z, lens)


@pytest.mark.parametrize(
    ("s", "negatives", "own"),
    [(9, "sequence", True), (40, "sequence", False), (9, "batch", False), (9, "mixed", False)],
)
def test_auto_scores_short_sequences_against_themselves(s, negatives, own):
    # auto: the own-sequence product while s * p <= 3 x (2 offsets + 4 negatives) = 18
    calls = []
    real = infonce._score_own_sequence

    def spy(*args):
        calls.append("own")
        return real(*args)

    g = torch.Generator().manual_seed(0)
    z = torch.randn(2, s, 1, 3, generator=g)
    pred = torch.randn(2, s, 1, 2, 3, generator=g)
    loss = InfoNCE(2, num_negatives=4, negatives=negatives)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(infonce, "_score_own_sequence", spy)
        loss(pred, z, generator=g)
    assert calls == (["own"] if own else [])
