"""Data sets and loaders for training, built from a :class:`~cpc.config.DataConfig`.

What a run sees is a pure function of ``(seed, epoch, position)``: the batch order comes
from :class:`~cpc.data.samplers.GroupedBatchSampler` (seeded by ``(seed, epoch)``),
every window offset and image augmentation from ``(seed, epoch, index)``, and the
DataLoader's worker seeds from a generator seeded by ``(seed, epoch, rank)``. A resumed
run therefore rebuilds the epoch's batch list and skips the batches already consumed
(indices only, nothing is read), and sees exactly what the interrupted run would have.

Sources (``data.train`` / ``data.val``):

- audio: a folder or manifest (:func:`cpc.data.audio.audio_records`); random windows of
  ``data.window`` samples, long files contributing one window per ``window`` samples;
- signals: a folder or manifest (:func:`cpc.data.signals.signal_records`);
- images: an image folder, ``idx:DIR`` (MNIST-style IDX files; the validation split is
  the ``t10k`` pair), or ``textures`` (synthetic gratings, no files).

Without ``data.val``, ``data.val_fraction`` of the training files is held out (split by
file, seeded). Every file shorter than the encoder's receptive field plus ``k_min``
steps (the least that gives one loss term) is skipped and reported.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from cpc.config import Config, ConfigError
from cpc.data.audio import AudioWindowDataset, audio_records
from cpc.data.collate import pad_collate
from cpc.data.errors import DataError, EmptyDatasetError, SkipReport, load_or_next
from cpc.data.samplers import GroupedBatchSampler
from cpc.data.signals import SignalWindowDataset, signal_records
from cpc.models.cpc import CPCModel

logger = logging.getLogger(__name__)

#: Synthetic texture images per split (``data.train: textures``).
TEXTURE_COUNTS = {"train": 2048, "val": 256}
TEXTURE_CLASSES = 8


def mix_seed(*parts: int) -> int:
    """A 63-bit seed mixing integers (numpy's ``SeedSequence``), for torch generators."""
    state = np.random.SeedSequence([int(p) for p in parts]).generate_state(2, np.uint32)
    return int(state[0]) << 31 | int(state[1]) >> 1


@dataclass
class TrainData:
    """The data of a run.

    Attributes:
        train: The training data set (has ``set_epoch``).
        val: The validation data set, or None.
        sampler: This process's training batches (has ``set_epoch``).
        val_sampler: This process's validation batches, or None.
        collate: Builds a batch dict with ``"x"`` and, for sequences, ``"lengths"``.
        seconds_per_sample: Input seconds per sample (audio: ``1 / sample_rate``;
            signals with ``data.rate``), None when unknown (images).
        summary: Counts for the run summary (items, files skipped by reason).
        info: JSON-safe facts saved in checkpoints (signal channels, statistics).

    """

    train: Any
    val: Any | None
    sampler: GroupedBatchSampler
    val_sampler: GroupedBatchSampler | None
    collate: Callable[[Sequence[Any]], dict[str, Any]]
    seconds_per_sample: float | None
    summary: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)


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
    dataset: Dataset[Any],
    batches: Sampler[list[int]],
    collate: Callable[[Sequence[Any]], dict[str, Any]],
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
        dataset,
        batch_sampler=batches,
        collate_fn=collate,
        num_workers=num_workers,
        worker_init_fn=seed_worker if num_workers > 0 else None,
        generator=generator,
        pin_memory=pin_memory,
    )


# --- images -------------------------------------------------------------------------


class SeededImages(Dataset[dict[str, Any]]):
    """Image items whose random augmentation is a function of ``(seed, epoch, index)``.

    Augmentations draw from torch's global generator; each item forks it, seeds it from
    ``(seed, epoch, index)`` and restores it, so neither DataLoader workers nor a resume
    change what an item looks like. Unreadable images are reported and replaced by the
    next one (:func:`cpc.data.errors.load_or_next`).

    Shape:
        item ``"x"``: ``(c, h, w)`` float32; ``"label"``, ``"index"``: ints.
    """

    def __init__(
        self,
        items: Dataset[Any],
        seed: int,
        paths: Sequence[str] | None = None,
        strict: bool = False,
    ) -> None:
        self.items, self.seed, self.epoch, self.strict = items, seed, 0, strict
        self._paths = paths
        self.report = SkipReport(checked=len(self))
        self._bad: set[int] = set()

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose augmentations are drawn."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.items)  # type: ignore[arg-type]

    def _path(self, index: int) -> str:
        return self._paths[index] if self._paths is not None else f"image {index}"

    def _load(self, index: int) -> dict[str, Any]:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(mix_seed(self.seed, self.epoch, index))
            try:
                image, label = self.items[index]
            except (OSError, ValueError) as err:
                raise DataError(self._path(index), f"unreadable: {err}") from err
        return {"x": image, "label": int(label), "index": index}

    def __getitem__(self, index: int) -> dict[str, Any]:
        return load_or_next(
            index, len(self), self._load, self._bad, self.report, self._path, self.strict
        )


def image_collate(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Stack images (all one size) and their labels; images carry no lengths.

    Shape:
        output ``"x"``: ``(b, c, h, w)``; ``"label"``, ``"index"``: ``(b,)``.
    """
    return {
        "x": torch.stack([torch.as_tensor(item["x"]) for item in items]),
        "label": torch.tensor([item["label"] for item in items], dtype=torch.long),
        "index": torch.tensor([item["index"] for item in items], dtype=torch.long),
    }


def _image_sets(config: Config) -> tuple[SeededImages, SeededImages | None]:
    from cpc.data import images as im

    data, seed, channels = config.data, config.run.seed, config.model.in_channels
    size, augment = data.image_size, data.augment

    def source(spec: str, train: bool, split: str) -> tuple[Dataset[Any], list[str] | None]:
        if spec == "textures":
            offset = 0 if split == "train" else 1
            x, y = im.synthetic_textures(
                TEXTURE_COUNTS[split], size, TEXTURE_CLASSES, seed + offset, channels=channels
            )
            return torch.utils.data.TensorDataset(x, y), None
        if spec.startswith("idx:"):
            transform = im.cpc_image_transform(size, train and augment, channels)
            root = spec[4:] or None
            return im.IDXImageDataset(root, train=split == "train", transform=transform), None
        if not Path(spec).is_dir():
            raise ConfigError(f"data source {spec!r}: no such image folder (or use idx:DIR)")
        folder = im.image_folder_dataset(
            spec, size=size, train=train and augment, channels=channels
        )
        return folder, [path for path, _ in folder.samples]

    def wrap(items: Dataset[Any], paths: list[str] | None, idx: list[int] | None = None) -> Any:
        if idx is not None:
            items = torch.utils.data.Subset(items, idx)
            paths = None if paths is None else [paths[i] for i in idx]
        return SeededImages(items, seed, paths, data.strict)

    train_set, train_paths = source(data.train, True, "train")
    if data.val:
        # An IDX directory's validation split is its t10k pair; textures get new draws.
        val_set, val_paths = source(data.val, False, "val")
        return wrap(train_set, train_paths), wrap(val_set, val_paths)
    held, kept = _split(len(train_set), data.val_fraction, seed)  # type: ignore[arg-type]
    if not held:
        return wrap(train_set, train_paths), None
    plain, _ = source(data.train, False, "train")  # the same items, evaluation transform
    return wrap(train_set, train_paths, kept), wrap(plain, train_paths, held)


# --- sequences ----------------------------------------------------------------------


def _split(n: int, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(held-out, kept) indices: ``round(fraction * n)`` (at least 1) files held out."""
    if fraction <= 0 or n < 2:
        if fraction > 0:
            logger.warning("only %d training file(s): no validation split", n)
        return [], list(range(n))
    order = np.random.default_rng([seed, 7919]).permutation(n)
    count = min(max(1, round(fraction * n)), n - 1)
    return sorted(order[:count].tolist()), sorted(order[count:].tolist())


def min_input_length(model: CPCModel) -> int:
    """Shortest input giving one loss term: receptive field plus ``k_min`` steps."""
    field_ = int(getattr(model.encoder, "receptive_field", 1))
    return field_ + model.loss.k_min * model.downsampling


def _sequence_sets(config: Config, model: CPCModel) -> tuple[Any, Any | None]:
    data, seed = config.data, config.run.seed
    shortest = min_input_length(model)
    if data.kind == "audio":
        records: list[Any] = audio_records(data.train)
        val_records: list[Any] | None = audio_records(data.val) if data.val else None
    else:
        records = signal_records(data.train)
        val_records = signal_records(data.val) if data.val else None
    if val_records is None and data.val_fraction > 0:
        held, kept = _split(len(records), data.val_fraction, seed)
        val_records = [records[i] for i in held] or None
        records = [records[i] for i in kept]

    def build(items: list[Any], stats: Any = None, channels: Any = None) -> Any:
        if data.kind == "audio":
            return AudioWindowDataset(
                items,
                config.model.sample_rate,
                data.window,
                min_samples=shortest,
                short_clips=data.short_clips,
                cover=True,
                strict=data.strict,
                seed=seed,
            )
        return SignalWindowDataset(
            items,
            data.window,
            channels if channels is not None else data.channels,
            stats if stats is not None else data.normalize,
            short_clips=data.short_clips,
            rate=data.rate,
            min_length=shortest,
            cover=True,
            strict=data.strict,
            seed=seed,
        )

    if not records:
        raise EmptyDatasetError(data.train, SkipReport())
    train = build(records)
    if data.kind == "signal" and len(train.channels) != config.model.in_channels:
        raise ConfigError(
            f"model.in_channels={config.model.in_channels} but the data has "
            f"{len(train.channels)} channels {train.channels}; set model.in_channels or "
            "data.channels"
        )
    val = None
    if val_records:
        try:
            val = build(
                val_records,
                stats=getattr(train, "stats", None),
                channels=getattr(train, "channels", None),
            )
        except EmptyDatasetError:
            if data.val:
                raise
            logger.warning("no usable file in the validation split: validation is off")
    return train, val


# --- everything ---------------------------------------------------------------------


def _report_summary(report: SkipReport) -> dict[str, Any]:
    return {
        "checked": report.checked,
        "skipped": len(report.skipped),
        "skipped_by_reason": report.counts(),
        "repaired": len(report.notes),
    }


def skip_summary(train: Any, val: Any | None) -> dict[str, Any]:
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
    """Build the training and validation data of a run.

    Args:
        config: The run config (``data``, ``model`` for rates and channels, ``run.seed``).
        model: The model, for its receptive field and downsampling.
        rank: This process.
        world_size: Number of processes; each gets its own batches.

    Raises:
        EmptyDatasetError: No usable training file (or none in an explicit ``data.val``).
        ConfigError: Data and model disagree, or too few items for one batch.

    """
    data, seed = config.data, config.run.seed
    if data.kind != config.model.modality:
        raise ConfigError(
            f"data.kind={data.kind!r} does not match model.modality={config.model.modality!r}"
        )
    train: Any
    val: Any
    if data.kind == "image":
        if data.group_by != "none":
            raise ConfigError("data.group_by=speaker needs audio or signal data")
        train, val = _image_sets(config)
        collate: Callable[[Sequence[Any]], dict[str, Any]] = image_collate
        seconds = None
    else:
        train, val = _sequence_sets(config, model)
        collate = pad_collate
        rate = config.model.sample_rate if data.kind == "audio" else data.rate
        seconds = 1.0 / rate if rate else None

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
    info: dict[str, Any] = {"kind": data.kind}
    if data.kind == "audio":
        info["sample_rate"] = config.model.sample_rate
    if data.kind == "signal":
        info["channels"] = list(train.channels)
        info["normalize"] = data.normalize
        info["rate"] = data.rate
        if train.stats is not None:
            info["stats"] = train.stats.to_dict()
    return TrainData(train, val, sampler, val_sampler, collate, seconds, summary, info)
