"""Loaders for training: the modality's recipe builds the data sets, this the batches.

What a run sees is a pure function of ``(seed, epoch, position)``: the batch order comes
from :class:`~cpc.data.samplers.GroupedBatchSampler` (seeded by ``(seed, epoch)``),
every window offset and image augmentation from ``(seed, epoch, index)``, and the
DataLoader's worker seeds from a generator seeded by ``(seed, epoch, rank)``. A resumed
run therefore rebuilds the epoch's batch list and skips the batches already consumed
(indices only, nothing is read), and sees exactly what the interrupted run would have.

Sources (``data.train`` / ``data.val``) are the recipe's business
(:mod:`cpc.data.recipes`); this module knows batches, not modalities: the grouped
sampler, the resume-aware loader and the run summary's counts.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from cpc.config import Config, ConfigError
from cpc.data.errors import SkipReport
from cpc.data.recipe import Collate, DataInfo, DataSplits, StreamSet, TrainSet
from cpc.data.registry import get_recipe
from cpc.data.samplers import GroupedBatchSampler
from cpc.data.seeds import mix_seed
from cpc.models.cpc import CPCModel

__all__ = ["SkipBatches", "TrainData", "build_data", "make_loader", "mix_seed", "skip_summary"]

logger = logging.getLogger(__name__)


@dataclass
class TrainData:
    """The data of a run.

    Attributes:
        train: The training data set.
        val: The validation data set, or None.
        sampler: This process's training batches (has ``set_epoch``).
        val_sampler: This process's validation batches, or None.
        collate: Builds a batch dict with ``"x"`` and, for sequences, ``"lengths"``.
        info: Facts saved in checkpoints (:class:`~cpc.data.recipe.DataInfo`).
        summary: Counts for the run summary (items, files skipped by reason).

    """

    train: TrainSet | StreamSet
    val: TrainSet | None
    sampler: GroupedBatchSampler | None
    val_sampler: GroupedBatchSampler | None
    collate: Collate
    info: DataInfo
    summary: dict[str, Any] = field(default_factory=dict)
    batch_size: int = 1
    loader: Any = None
    """The current epoch's loader (streamed data: whose state checkpoints save)."""

    @property
    def seconds_per_sample(self) -> float | None:
        """Input seconds per sample, None when the input has no rate (images)."""
        return self.info.seconds_per_sample

    @property
    def streamed(self) -> bool:
        """Whether the training set streams (shards by URL) instead of being indexed."""
        return isinstance(self.train, StreamSet)

    def epoch_loader(
        self,
        epoch: int,
        start: int,
        *,
        seed: int,
        num_workers: int = 0,
        pin_memory: bool = False,
        state: dict[str, Any] | None = None,
    ) -> Any:
        """The batches of ``epoch`` from position ``start`` on, for this process.

        Indexed data skips the first ``start`` batches (indices only). Streamed data
        resumes from ``state``, the loader state a checkpoint saved
        (:meth:`loader_state`); without one it starts the epoch.
        """
        self.train.set_epoch(epoch)
        if isinstance(self.train, StreamSet):
            self.loader = stream_loader(
                self.train, self.collate, batch_size=self.batch_size, seed=seed,
                num_workers=num_workers, pin_memory=pin_memory,
            )  # fmt: skip
            if state is not None and start > 0:
                self.loader.load_state_dict(state)
            return self.loader
        assert self.sampler is not None  # indexed data always has one
        self.sampler.set_epoch(epoch)
        return make_loader(
            self.train, SkipBatches(self.sampler, start), self.collate, seed=seed,
            num_workers=num_workers, pin_memory=pin_memory,
        )  # fmt: skip

    def loader_state(self) -> dict[str, Any] | None:
        """The streamed loader's state after the batches consumed so far (None: indexed)."""
        if not self.streamed or self.loader is None:
            return None
        return dict(self.loader.state_dict())


class SkipBatches(Sampler[list[int]]):
    """The batches of ``sampler`` from position ``start`` on (resume mid-epoch).

    The skipped batches' indices are generated (cheap) but never loaded.
    """

    def __init__(self, sampler: Sampler[list[int]], start: int = 0) -> None:
        self.sampler, self.start = sampler, start

    def __iter__(self) -> Iterator[list[int]]:
        return islice(iter(self.sampler), self.start, None)

    def __len__(self) -> int:
        return max(0, len(self.sampler) - self.start)  # type: ignore[arg-type]


def seed_worker(worker_id: int) -> None:
    """Seed numpy and ``random`` in a DataLoader worker from its torch seed."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)  # noqa: NPY002 (code in workers may use the global one)
    random.seed(seed)


def make_loader(
    dataset: TrainSet,
    batches: Sampler[list[int]],
    collate: Collate,
    *,
    seed: int,
    num_workers: int = 0,
    pin_memory: bool = False,
) -> DataLoader[Any]:
    """A DataLoader over given batches whose worker seeds come from ``seed``.

    Workers are not persistent: data sets are copied into them when iteration starts,
    which is how they pick up ``set_epoch``.
    """
    generator = torch.Generator()
    generator.manual_seed(seed)
    return DataLoader(
        dataset,  # type: ignore[arg-type]  # a map-style data set, typed by its protocol
        batch_sampler=batches,
        collate_fn=collate,
        num_workers=num_workers,
        worker_init_fn=seed_worker if num_workers > 0 else None,
        generator=generator,
        pin_memory=pin_memory,
    )


def stream_loader(
    dataset: StreamSet,
    collate: Collate,
    *,
    batch_size: int,
    seed: int,
    num_workers: int = 0,
    pin_memory: bool = False,
) -> Any:
    """A resumable loader of a streamed set: torchdata's ``StatefulDataLoader``.

    Its ``state_dict()`` holds every worker's stream state (epoch, samples taken) and
    its own round-robin position, so ``load_state_dict`` on a fresh one continues with
    exactly the batches the first would have given. The last batch of each worker may
    be short: no sample of the epoch is dropped.
    """
    from torchdata.stateful_dataloader import StatefulDataLoader  # the corpora extra

    generator = torch.Generator()
    generator.manual_seed(seed)
    return StatefulDataLoader(
        dataset,
        batch_size=batch_size,
        collate_fn=collate,
        num_workers=num_workers,
        worker_init_fn=seed_worker if num_workers > 0 else None,
        generator=generator,
        pin_memory=pin_memory,
    )


# --- everything ---------------------------------------------------------------------


def _report_summary(report: SkipReport) -> dict[str, Any]:
    return {
        "checked": report.checked,
        "skipped": len(report.skipped),
        "skipped_by_reason": report.counts(),
        "repaired": len(report.notes),
    }


def skip_summary(train: TrainSet | StreamSet, val: TrainSet | None) -> dict[str, Any]:
    """Files checked and skipped (by reason) in each split and in total.

    Files found corrupt while training are included when they were read in this
    process (``data.num_workers = 0``); with workers they are only logged.
    """
    out: dict[str, Any] = {"train_files": _report_summary(train.report)}
    total = dict(out["train_files"]["skipped_by_reason"])
    if val is not None:
        out["val_files"] = _report_summary(val.report)
        for kind, n in out["val_files"]["skipped_by_reason"].items():
            total[kind] = total.get(kind, 0) + n
    out["skipped_by_reason"] = total
    out["skipped"] = sum(total.values())
    return out


def build_data(config: Config, model: CPCModel, rank: int = 0, world_size: int = 1) -> TrainData:
    """Build the training and validation data of a run through its modality's recipe.

    Args:
        config: The run config (``data``, ``model``, ``run.seed``).
        model: The model, for its shortest usable input.
        rank: This process.
        world_size: Number of processes; each gets its own batches.

    Raises:
        EmptyDatasetError: No usable training file (or none in an explicit ``data.val``).
        ConfigError: Data and model disagree, or too few items for one batch.

    """
    data, seed = config.data, config.run.seed
    splits = get_recipe(config.model.modality).datasets(config, model.min_input_length)
    train, val = splits.train, splits.val
    if isinstance(train, StreamSet):
        return _streamed_data(config, splits, rank, world_size)
    if data.group_by == "speaker":
        groups, per_batch = train.groups, data.groups_per_batch
    else:
        groups, per_batch = [0] * len(train), data.batch_size
    try:
        sampler = GroupedBatchSampler(
            groups,
            data.batch_size,
            per_batch,
            drop_last=True,
            seed=seed,
            num_replicas=world_size,
            rank=rank,
        )
    except ValueError as err:
        raise ConfigError(
            f"cannot form one training batch: {err}; lower data.batch_size or "
            "data.groups_per_batch, or add data"
        ) from err
    val_sampler = None
    if val is not None:
        try:
            val_sampler = GroupedBatchSampler(
                [0] * len(val),
                data.batch_size,
                data.batch_size,
                seed=seed + 1,
                num_replicas=world_size,
                rank=rank,
            )
        except ValueError:
            logger.warning(
                "validation set of %d items is too small for %d processes: off",
                len(val),
                world_size,
            )
            val = None
    summary: dict[str, Any] = {
        "train_items": len(train),
        "val_items": len(val) if val is not None else 0,
        "batches_per_epoch": len(sampler),
    }
    summary.update(skip_summary(train, val))
    return TrainData(
        train, val, sampler, val_sampler, splits.collate, splits.info, summary, data.batch_size
    )


def _streamed_data(config: Config, splits: DataSplits, rank: int, world_size: int) -> TrainData:
    """Training data streamed from shards: the stream orders and splits itself."""
    data = config.data
    if data.group_by == "speaker":
        raise ConfigError(
            "data.group_by=speaker needs indexed data: streamed shards (named by URL) "
            "are read in shard order; give local shard paths instead"
        )
    assert isinstance(splits.train, StreamSet)
    splits.train.shard_for(rank, world_size)
    val, val_sampler = splits.val, None
    if val is not None:
        val_sampler = GroupedBatchSampler(
            [0] * len(val), data.batch_size, data.batch_size, seed=config.run.seed + 1,
            num_replicas=world_size, rank=rank,
        )  # fmt: skip
    summary: dict[str, Any] = {
        "train_items": "streamed",
        "val_items": len(val) if val is not None else 0,
        "batches_per_epoch": "streamed",
    }
    summary.update(skip_summary(splits.train, val))
    return TrainData(
        splits.train, val, None, val_sampler, splits.collate, splits.info, summary,
        data.batch_size,
    )  # fmt: skip
