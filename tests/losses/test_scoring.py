"""The chunked scoring of sampled candidates equals the materialised product."""

import pytest
import torch

from cpc.losses.infonce import InfoNCE, _ScoreSampled


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
