"""Candidates gathered across two processes equal one process holding the whole batch.

Two Gloo processes each hold part of a batch (pools of different sizes, so the padded
all-gather must trim), score their anchors against the gathered pool with fixed
candidates, and backpropagate. One process on the concatenated batch is the reference:
with the same number of terms per offset on each rank, its loss is the mean of the two
ranks' losses, and since the gather sends gradients back to the rank that owns each
latent, every rank's gradient is twice the reference's (DDP then averages them).
"""

import tempfile
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from cpc import ranks as world
from cpc.losses.gather import gather_pool
from cpc.losses.infonce import InfoNCE

K, D, S = 3, 4, 6
#: Terms per offset are equal on both ranks (8, 6, 4); pools are 10 and 11 latents, the
#: length-1 sequence being in the pool without being an anchor.
LENGTHS = ([6, 4], [6, 4, 1])
MODES = ("batch", "all", "sequence")


def rank_inputs(rank):
    g = torch.Generator().manual_seed(10 + rank)
    b = len(LENGTHS[rank])
    z = torch.randn(b, S, 1, D, generator=g, dtype=torch.float64)
    pred = torch.randn(b, S, 1, K, D, generator=g, dtype=torch.float64)
    return pred, z, torch.tensor(LENGTHS[rank])


def candidates(mode, pools, rank_of_anchor):
    """Fixed negatives: global pool indices (each rank's own range in "sequence" mode)."""
    g = torch.Generator().manual_seed(5)
    total = sum(pools)
    rows = []
    for rank in rank_of_anchor:
        lo = 0 if mode == "batch" else sum(pools[:rank])
        hi = total if mode == "batch" else lo + pools[rank]
        rows.append(torch.randint(lo, hi, (7,), generator=g))
    return torch.stack(rows)


def layout_facts():
    pools = [sum(lengths) for lengths in LENGTHS]
    anchors = [sum(max(0, n - 1) for n in lengths) for lengths in LENGTHS]
    rank_of_anchor = [r for r in (0, 1) for _ in range(anchors[r])]
    return pools, anchors, rank_of_anchor


def run_rank(rank, init_file, results):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        assert (world.rank(), world.world_size()) == (rank, 2)
        pools, anchors, rank_of_anchor = layout_facts()
        out = {}
        for mode in MODES:
            pred, z, lens = rank_inputs(rank)
            pred.requires_grad_(True)
            z.requires_grad_(True)
            cand = candidates(mode, pools, rank_of_anchor)
            mine = cand[sum(anchors[:rank]) : sum(anchors[: rank + 1])]
            if mode == "sequence":
                mine = mine - sum(pools[:rank])  # not gathered: indices into the local pool
            loss = InfoNCE(K, num_negatives=7, negatives=mode, gather_distributed=True)
            res = loss(pred, z, lens, candidates=mine)
            res.loss.backward()
            out[mode] = (res.loss.detach(), res.loss_per_offset.detach(), pred.grad, z.grad)
        # Without gather_distributed a rank draws from its own pool only, as alone.
        pred, z, lens = rank_inputs(rank)
        g = torch.Generator().manual_seed(0)
        out["local"] = InfoNCE(K, num_negatives=7)(pred, z, lens, generator=g).loss
        pool = rank_inputs(rank)[1][0, : 2 + rank, 0]  # pools of 2 and 3 latents
        gathered, offset = gather_pool(pool)
        out["gather"] = (gathered, torch.tensor(offset))
        torch.save(out, results / f"rank{rank}.pt")
        dist.barrier()  # neither rank tears down Gloo while the other still uses it
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def ranks():
    # Not pytest's tmp_path: another pytest session on the machine prunes old basetemp
    # folders, and deleting the rendezvous file under live Gloo processes aborts them.
    with tempfile.TemporaryDirectory(prefix="cpc-gather-") as name:
        folder = Path(name)
        try:
            mp.spawn(run_rank, args=(folder / "init", folder), nprocs=2, join=True)
        except mp.ProcessExitedException:
            # Gloo's threads can abort a process as it exits ("terminate called without
            # an active exception"), after its results are written; only that is excused.
            if not all((folder / f"rank{r}.pt").exists() for r in (0, 1)):
                raise
        return [torch.load(folder / f"rank{r}.pt") for r in (0, 1)]


def test_gather_pool_concatenates_in_rank_order_and_trims_padding(ranks):
    expected = torch.cat([rank_inputs(r)[1][0, : 2 + r, 0] for r in (0, 1)])
    for rank, got in enumerate(ranks):
        gathered, offset = got["gather"]
        torch.testing.assert_close(gathered, expected)
        assert int(offset) == (0 if rank == 0 else 2)
    # Without a process group (this process) it is the identity.
    pool = rank_inputs(0)[1][0, :2, 0]
    gathered, offset = gather_pool(pool)
    assert gathered is pool and offset == 0 and world.world_size() == 1


def test_without_the_flag_each_process_keeps_to_its_own_pool(ranks):
    for rank, got in enumerate(ranks):
        pred, z, lens = rank_inputs(rank)
        g = torch.Generator().manual_seed(0)
        alone = InfoNCE(K, num_negatives=7)(pred, z, lens, generator=g).loss
        torch.testing.assert_close(got["local"], alone)


@pytest.mark.parametrize("mode", MODES)
def test_two_processes_equal_one_process_with_the_whole_batch(ranks, mode):
    pools, _, rank_of_anchor = layout_facts()
    inputs = [rank_inputs(r) for r in (0, 1)]
    pred = torch.cat([x[0] for x in inputs]).requires_grad_(True)
    z = torch.cat([x[1] for x in inputs]).requires_grad_(True)
    lens = torch.cat([x[2] for x in inputs])
    cand = candidates(mode, pools, rank_of_anchor)
    loss = InfoNCE(K, num_negatives=7, negatives=mode)
    ref = loss(pred, z, lens, candidates=cand)
    ref.loss.backward()

    got_loss = (ranks[0][mode][0] + ranks[1][mode][0]) / 2
    torch.testing.assert_close(got_loss, ref.loss.detach())
    mean_per_offset = (ranks[0][mode][1] + ranks[1][mode][1]) / 2
    torch.testing.assert_close(mean_per_offset, ref.loss_per_offset.detach())
    b0 = len(LENGTHS[0])
    for rank, rows in ((0, slice(0, b0)), (1, slice(b0, None))):
        _, _, pred_grad, z_grad = ranks[rank][mode]
        torch.testing.assert_close(pred_grad, 2 * pred.grad[rows])
        torch.testing.assert_close(z_grad, 2 * z.grad[rows])
