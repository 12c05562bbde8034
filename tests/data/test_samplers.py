import pytest

from cpc.data.samplers import GroupedBatchSampler

GROUPS = [0] * 10 + [1] * 7 + [2] * 3 + [3] * 12


def run(sampler: GroupedBatchSampler, epoch: int = 0) -> list[list[int]]:
    sampler.set_epoch(epoch)
    return list(sampler)


@pytest.mark.parametrize("groups_per_batch", [1, 2])
def test_batches_come_from_few_groups_and_cover_everything(groups_per_batch: int) -> None:
    sampler = GroupedBatchSampler(GROUPS, batch_size=4, groups_per_batch=groups_per_batch)
    batches = run(sampler)
    assert len(batches) == len(sampler)
    assert sorted(i for batch in batches for i in batch) == list(range(len(GROUPS)))
    for batch in batches:
        assert len({GROUPS[i] for i in batch}) <= groups_per_batch


def test_drop_last_gives_full_batches() -> None:
    sampler = GroupedBatchSampler(GROUPS, batch_size=4, drop_last=True)
    batches = run(sampler)
    assert len(batches) == len(sampler) == 2 + 1 + 0 + 3
    assert all(len(batch) == 4 and len({GROUPS[i] for i in batch}) == 1 for batch in batches)


def test_deterministic_and_reshuffled_per_epoch() -> None:
    a = GroupedBatchSampler(GROUPS, batch_size=4, seed=5)
    b = GroupedBatchSampler(GROUPS, batch_size=4, seed=5)
    assert run(a, 3) == run(b, 3)
    assert run(a, 3) != run(a, 4)
    assert run(a, 3) != run(GroupedBatchSampler(GROUPS, batch_size=4, seed=6), 3)


@pytest.mark.parametrize("drop_last", [False, True])
def test_replicas_get_disjoint_batches_of_equal_count(drop_last: bool) -> None:
    def make(rank: int) -> GroupedBatchSampler:
        return GroupedBatchSampler(
            GROUPS, batch_size=4, drop_last=drop_last, seed=2, num_replicas=3, rank=rank
        )

    per_rank = [run(make(rank), epoch=1) for rank in range(3)]
    assert len({len(batches) for batches in per_rank}) == 1
    assert len(per_rank[0]) == len(make(0))
    seen = [i for batches in per_rank for batch in batches for i in batch]
    assert len(seen) == len(set(seen))
    single = run(GroupedBatchSampler(GROUPS, batch_size=4, drop_last=drop_last, seed=2), 1)
    assert sorted(map(tuple, (b for bs in per_rank for b in bs))) == sorted(
        map(tuple, single[: len(per_rank[0]) * 3])
    )


def test_ungrouped_mode_and_bad_arguments() -> None:
    sampler = GroupedBatchSampler(GROUPS, batch_size=8, groups_per_batch=8, drop_last=True)
    batches = run(sampler)
    assert len(batches) == 4 and all(len(b) == 8 for b in batches)
    assert any(len({GROUPS[i] for i in b}) > 1 for b in batches)
    with pytest.raises(ValueError, match="multiple"):
        GroupedBatchSampler(GROUPS, batch_size=6, groups_per_batch=4)
    with pytest.raises(ValueError, match="rank"):
        GroupedBatchSampler(GROUPS, batch_size=4, num_replicas=2, rank=2)
    with pytest.raises(ValueError, match="no batch"):
        GroupedBatchSampler([0, 1, 2], batch_size=4, drop_last=True)
