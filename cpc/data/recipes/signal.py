"""The pen/sensor recipe: signal streams with channels, normalisation and resampling."""

from __future__ import annotations

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
