"""The pen/sensor recipe: signal streams with channels, normalisation and resampling."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self

from cpc.config.ranges import WIDTH, Range, ranged, short
from cpc.data.collate import pad_collate
from cpc.data.recipe import DataInfo, DataSplits, Facts, FileItems, sequence_splits
from cpc.data.recipes.sequence import ConvEncoderFields, SequenceRecipe
from cpc.data.records import Record
from cpc.data.signals import (
    ChannelStats,
    Normalize,
    SignalFileDataset,
    SignalSource,
    SignalWindowDataset,
    signal_records,
)
from cpc.errors import ConfigError
from cpc.models.builders import cpc_signal

if TYPE_CHECKING:
    from cpc.config import Config

_RATE = Range(0, 1e9, open_low=True)


@dataclass
class SignalModel(ConvEncoderFields):
    """``model.*`` keys of signals (:func:`~cpc.models.builders.cpc_signal`'s arguments)."""

    in_channels: int | None = ranged(WIDTH)
    """Input channels (``data.channels`` kept, or every channel of the files)."""


@dataclass
class SignalData:
    """``data.*`` keys of signals."""

    channels: list[str] | None = None
    """Channel names to keep (None: those of the first file)."""
    normalize: Normalize = "file"
    """Per-channel z-score per file or over the training set."""
    rate: float | None = ranged(_RATE)
    """Resample to this rate (Hz) using the file's time stamps."""
    fit: bool = True
    """When the shortest training series gives the encoder too few steps for
    the largest offset, choose ``model.kernels``, ``model.strides``,
    ``model.num_offsets`` and ``data.window`` from its length (:func:`fit_series`) and
    log the choice; series that fit change nothing. False: use the config as given."""


@dataclass
class SignalFacts(Facts):
    """What extraction needs to read new streams as the training streams were read."""

    rate: float | None = ranged(_RATE)
    """The resampling rate in Hz, or None (recorded points)."""
    channels: list[str] | None = None
    """Channel names kept, in order."""
    normalize: Normalize | None = None
    """``file``, ``none`` or ``dataset`` (None, in older checkpoints: ``file``)."""
    stats: ChannelStats | None = None
    """Per-channel statistics of ``normalize="dataset"``."""

    @property
    def seconds_per_sample(self) -> float | None:
        """One over the resampling rate; None for recorded points."""
        return 1.0 / self.rate if self.rate else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: the statistics as plain lists."""
        return {
            "rate": self.rate,
            "channels": self.channels,
            "normalize": self.normalize,
            "stats": None if self.stats is None else self.stats.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """The statistics must be finite with positive deviations, one per channel."""
        stats = data.get("stats")
        facts = super().from_dict({k: v for k, v in data.items() if k != "stats"})
        if stats is not None:
            _check_stats(stats)
            facts.stats = ChannelStats.from_dict(stats)
        return facts


def _check_stats(stats: Any) -> None:
    def refuse(key: str, value: Any, want: str) -> None:
        raise ConfigError(f"{key}={short(value)}: need {want}")

    def numbers(key: str, value: Any, rule: Range) -> None:
        if not isinstance(value, list) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) and rule.problem(v) is None
            for v in value
        ):
            refuse(key, value, f"a list of numbers {rule.describe()}")

    if not isinstance(stats, dict) or not isinstance(stats.get("channels"), list):
        refuse("data.stats", stats, "channels, mean and std")
    count = len(stats["channels"])
    numbers("data.stats.mean", stats.get("mean"), Range(-1e30, 1e30))
    numbers("data.stats.std", stats.get("std"), Range(0, 1e30, open_low=True))
    if not len(stats["mean"]) == len(stats["std"]) == count:
        refuse("data.stats", stats, f"{count} means and deviations, one per channel")


class SignalRecipe(SequenceRecipe):
    """Signals: ``data.train`` / ``data.val`` are folders or manifests of streams.

    The validation set reuses the training set's channels and (with
    ``data.normalize=dataset``) statistics; both are saved in the checkpoint's
    :class:`SignalFacts` and reused by extraction.
    """

    name = "signal"
    builder = staticmethod(cpc_signal)
    model_fields = SignalModel
    data_fields = SignalData
    facts = SignalFacts

    def check(self, config: Config) -> None:
        channels = config.data.fields_as(SignalData).channels
        in_channels = config.model.fields_as(SignalModel).in_channels
        if channels and in_channels is not None and len(channels) != in_channels:
            raise ConfigError(
                f"model.in_channels={in_channels} but data.channels lists "
                f"{len(channels)}: {channels}"
            )

    def shortest_item(self, config: Config) -> tuple[int, str] | None:
        data, own = config.data, config.data.fields_as(SignalData)
        if not own.fit:
            return None
        records = signal_records(data.train, group_from=data.group_from, fmt=data.format)
        source = SignalSource(records, own.channels, "none", own.rate, strict=data.strict)
        if not source.lengths:
            return None  # no usable series: the training set reports why
        index = min(range(len(source.lengths)), key=source.lengths.__getitem__)
        return source.lengths[index], source.paths[index]

    def fitted(self, config: Config, length: int) -> list[str]:
        return fit_series(length).overrides()

    def datasets(self, config: Config, min_length: int) -> DataSplits:
        data, own = config.data, config.data.fields_as(SignalData)

        def build(records: list[Record], train: Any) -> SignalWindowDataset:
            return SignalWindowDataset(
                records,
                data.window,
                train.channels if train is not None else own.channels,
                train.stats if train is not None and train.stats else own.normalize,
                short_clips=data.short_clips,
                rate=own.rate,
                min_length=min_length,
                cover=True,
                strict=data.strict,
                seed=config.run.seed,
                expect_channels=self.setting(config.model, "in_channels"),
            )

        def records(spec: str) -> list[Record]:
            return signal_records(spec, group_from=data.group_from, fmt=data.format)

        train, val = sequence_splits(data, config.run.seed, records, build)
        in_channels = self.setting(config.model, "in_channels")
        if len(train.channels) != in_channels:
            raise ConfigError(
                f"model.in_channels={in_channels} but the data has {len(train.channels)} "
                f"channels {train.channels}; set model.in_channels or data.channels"
            )
        facts = SignalFacts(own.rate, list(train.channels), own.normalize, train.stats)
        info = DataInfo(self.name, facts, list(train.group_names))
        return DataSplits(train, val, pad_collate, info)

    def file_dataset(self, source: str, info: DataInfo, min_length: int, strict: bool) -> FileItems:
        facts = info.facts_as(SignalFacts)
        normalize: Any = facts.normalize or "file"
        if normalize == "dataset" and facts.stats is not None:
            normalize = facts.stats
        return SignalFileDataset(
            source,
            channels=facts.channels,
            normalize=normalize,
            rate=facts.rate,
            min_length=min_length,
            strict=strict,
        )


@dataclass(frozen=True)
class SeriesGeometry:
    """Encoder, window and offsets that fit series of a given shortest length.

    Attributes:
        min_length: The shortest series the geometry was fitted to.
        kernels, strides: The encoder's convolutions.
        window: Training window in samples (the shortest length, at most 256).
        num_offsets: Prediction offsets (a third of the window's steps, 1 to 8).

    """

    min_length: int
    kernels: tuple[int, ...]
    strides: tuple[int, ...]
    window: int
    num_offsets: int

    @property
    def receptive_field(self) -> int:
        """Samples one encoder step sees."""
        field, jump = 1, 1
        for k, s in zip(self.kernels, self.strides, strict=True):
            field, jump = field + (k - 1) * jump, jump * s
        return field

    @property
    def downsampling(self) -> int:
        """Samples per encoder step."""
        return math.prod(self.strides)

    @property
    def steps(self) -> int:
        """Encoder steps in one training window."""
        return (self.window - self.receptive_field) // self.downsampling + 1

    def overrides(self) -> list[str]:
        """The geometry as config overrides for ``cpc pretrain``."""
        return [
            f"model.kernels=[{','.join(map(str, self.kernels))}]",
            f"model.strides=[{','.join(map(str, self.strides))}]",
            f"model.num_offsets={self.num_offsets}",
            f"data.window={self.window}",
        ]

    def describe(self) -> str:
        """One line for the log: what was chosen, from which length."""
        return (
            f"shortest series {self.min_length} samples -> kernels {list(self.kernels)}, "
            f"strides {list(self.strides)} (receptive field {self.receptive_field}, "
            f"{self.downsampling}x downsampling), window {self.window} ({self.steps} steps), "
            f"{self.num_offsets} offsets"
        )


def fit_series(min_length: int, max_window: int = 256) -> SeriesGeometry:
    """Choose the signal encoder, window and offsets from the shortest series length.

    The pen default (kernels 4, 4, 3; strides 2, 2, 1: 18-sample receptive field, 4x
    downsampling) needs series of about 64 samples to leave room for 8 offsets. Shorter
    series get less downsampling so that a window still holds enough steps to predict:
    2x (kernels 4, 3) from 24 samples, none (two 3-tap layers) from 12, one 3-tap layer
    below. The window is the shortest length (no series needs padding), capped at
    ``max_window``; offsets are a third of the window's steps, between 1 and 8 (the
    pen default).

    Raises:
        ValueError: For series shorter than 4 samples (no step would have a target).

    """
    if min_length < 4:
        raise ValueError(f"series of {min_length} samples are too short for CPC (need >= 4)")
    kernels: tuple[int, ...]
    strides: tuple[int, ...]
    if min_length >= 64:
        kernels, strides = (4, 4, 3), (2, 2, 1)
    elif min_length >= 24:
        kernels, strides = (4, 3), (2, 1)
    elif min_length >= 12:
        kernels, strides = (3, 3), (1, 1)
    else:
        kernels, strides = (3,), (1,)
    window = min(min_length, max_window)
    geometry = SeriesGeometry(min_length, kernels, strides, window, 1)
    offsets = max(1, min(8, geometry.steps // 3))
    return SeriesGeometry(min_length, kernels, strides, window, offsets)
