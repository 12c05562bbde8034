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
