"""The pen/sensor recipe: signal streams with channels, normalisation and resampling."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cpc.data.collate import pad_collate
from cpc.data.recipe import DataInfo, DataSplits, FileItems, sequence_splits
from cpc.data.recipes.sequence import SequenceRecipe
from cpc.data.records import Record
from cpc.data.signals import SignalFileDataset, SignalWindowDataset, signal_records
from cpc.models.builders import cpc_signal

if TYPE_CHECKING:
    from cpc.config import Config


class SignalRecipe(SequenceRecipe):
    """Signals: ``data.train`` / ``data.val`` are folders or manifests of streams.

    The validation set reuses the training set's channels and (with
    ``data.normalize=dataset``) statistics; both are saved in the checkpoint's
    :class:`~cpc.data.recipe.DataInfo` and reused by extraction.
    """

    name = "signal"
    builder = staticmethod(cpc_signal)

    def check(self, config: Config) -> None:
        from cpc.config import ConfigError

        if config.data.wave_augment:
            raise ConfigError(f"data.wave_augment is for audio, not data.kind={self.name!r}")
        channels, in_channels = config.data.channels, config.model.in_channels
        if channels and in_channels is not None and len(channels) != in_channels:
            raise ConfigError(
                f"model.in_channels={in_channels} but data.channels lists "
                f"{len(channels)}: {channels}"
            )

    def datasets(self, config: Config, min_length: int) -> DataSplits:
        from cpc.config import ConfigError

        data = config.data

        def build(records: list[Record], train: Any) -> SignalWindowDataset:
            return SignalWindowDataset(
                records,
                data.window,
                train.channels if train is not None else data.channels,
                train.stats if train is not None and train.stats else data.normalize,
                short_clips=data.short_clips,
                rate=data.rate,
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
        info = DataInfo(
            self.name,
            rate=data.rate,
            channels=list(train.channels),
            normalize=data.normalize,
            stats=train.stats,
            groups=list(train.group_names),
        )
        return DataSplits(train, val, pad_collate, info)

    def file_dataset(self, source: str, info: DataInfo, min_length: int, strict: bool) -> FileItems:
        normalize: Any = info.normalize or "file"
        if normalize == "dataset" and info.stats is not None:
            normalize = info.stats
        return SignalFileDataset(
            source,
            channels=info.channels,
            normalize=normalize,
            rate=info.rate,
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
