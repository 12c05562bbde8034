"""Batches drawn from few groups (speakers, writers), split across distributed replicas.

CPC_audio draws each batch from one speaker so that negatives sampled within the batch
share the speaker and the loss cannot be lowered by recognising speakers.
:class:`GroupedBatchSampler` generalises this: a batch is made of ``groups_per_batch``
chunks, each chunk ``batch_size // groups_per_batch`` indices from one group.

Which sampler the trainer should use: always this one, as a DataLoader
``batch_sampler``. ``groups_per_batch=1`` gives same-group batches;
``groups_per_batch=batch_size`` makes every chunk a single index, i.e. plain shuffled
batches, so the "same group" and "whole batch" negative modes share one code path and
one distributed split. torch's ``DistributedSampler`` is then not needed (it shuffles
indices, not batches, and cannot keep groups together).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler

from cpc import ranks


class GroupedBatchSampler(Sampler[list[int]]):
    """Shuffled batches whose indices come from at most ``groups_per_batch`` groups.

    Every epoch, with a generator seeded by ``(seed, epoch)``: the members of each group
    are shuffled and cut into chunks of ``batch_size // groups_per_batch``; the chunks
    are shuffled; consecutive runs of ``groups_per_batch`` chunks form the batches. Two
    chunks of one batch may come from the same group, so a batch spans *at most*
    ``groups_per_batch`` groups.

    ``drop_last=True`` drops each group's last partial chunk and a final incomplete run
    of chunks, so every batch has exactly ``batch_size`` indices. ``drop_last=False``
    keeps every index once per epoch (single process), with some smaller batches.

    Distributed: the epoch's batch list is the same on every replica; replica ``rank``
    takes batches ``rank, rank + num_replicas, ...`` after the list is cut to a multiple
    of ``num_replicas``. Replicas get disjoint batches and the same number of them (DDP
    needs equal step counts); the few batches cut differ from epoch to epoch.

    Args:
        groups: Group id of every data set index (e.g. ``dataset.groups``).
        batch_size: Indices per full batch; a multiple of ``groups_per_batch``.
        groups_per_batch: Chunks per batch (1: CPC_audio's same-speaker batches;
            ``batch_size``: ungrouped batches).
        drop_last: See above.
        seed: Base seed; every replica must use the same one.
        num_replicas: Number of processes (default: the torch.distributed world size,
            or 1).
        rank: This process (default: the torch.distributed rank, or 0).

    """

    def __init__(
        self,
        groups: Sequence[int],
        batch_size: int,
        groups_per_batch: int = 1,
        *,
        drop_last: bool = False,
        seed: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
    ) -> None:
        if batch_size < 1 or groups_per_batch < 1 or batch_size % groups_per_batch:
            raise ValueError(
                f"batch_size ({batch_size}) must be a positive multiple of "
                f"groups_per_batch ({groups_per_batch})"
            )
        self.batch_size, self.groups_per_batch = batch_size, groups_per_batch
        self.chunk = batch_size // groups_per_batch
        self.drop_last, self.seed, self.epoch = drop_last, seed, 0
        self.num_replicas, self.rank = ranks.resolve(num_replicas, rank)
        ids = np.asarray(groups, dtype=np.int64)
        self._members = [np.flatnonzero(ids == g) for g in np.unique(ids)]
        if len(self) == 0:
            sizes = sorted((len(m) for m in self._members), reverse=True)[:5]
            raise ValueError(
                f"no batch for rank {self.rank} of {self.num_replicas}: {len(ids)} indices "
                f"in {len(self._members)} groups (largest {sizes}), chunks of {self.chunk}, "
                f"drop_last={drop_last}"
            )

    def set_epoch(self, epoch: int) -> None:
        """Reshuffle for ``epoch``; call it on every replica before each epoch."""
        self.epoch = epoch

    def _num_chunks(self) -> int:
        if self.drop_last:
            return sum(len(m) // self.chunk for m in self._members)
        return sum(-(-len(m) // self.chunk) for m in self._members)

    def _num_batches(self) -> int:
        chunks = self._num_chunks()
        if self.drop_last:
            return chunks // self.groups_per_batch
        return -(-chunks // self.groups_per_batch)

    def __len__(self) -> int:
        return self._num_batches() // self.num_replicas

    def __iter__(self) -> Iterator[list[int]]:
        """Yield this replica's batches of data set indices for the current epoch."""
        rng = np.random.default_rng([self.seed, self.epoch])
        chunks: list[np.ndarray] = []
        for members in self._members:
            shuffled = rng.permutation(members)
            for start in range(0, len(shuffled), self.chunk):
                piece = shuffled[start : start + self.chunk]
                if len(piece) == self.chunk or not self.drop_last:
                    chunks.append(piece)
        order = rng.permutation(len(chunks))
        usable = len(self) * self.num_replicas
        for b in range(self.rank, usable, self.num_replicas):
            picked = order[b * self.groups_per_batch : (b + 1) * self.groups_per_batch]
            yield np.concatenate([chunks[c] for c in picked]).tolist()
