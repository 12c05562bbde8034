"""The speech recipe: audio files at the model's rate, random windows, whole files."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cpc.data.audio import AudioFileDataset, AudioWindowDataset, audio_records
from cpc.data.augment import WaveAugment
from cpc.data.collate import pad_collate
from cpc.data.formats.stream import ShardStream, is_streamed
from cpc.data.recipe import DataInfo, DataSplits, FileItems, sequence_splits
from cpc.data.recipes.sequence import SequenceRecipe
from cpc.data.records import Record
from cpc.models.builders import cpc_audio

#: The rate of checkpoints that did not record one (the builder's default).
DEFAULT_SAMPLE_RATE = 16000

if TYPE_CHECKING:
    from cpc.config import Config


class AudioRecipe(SequenceRecipe):
    """Speech: ``data.train`` / ``data.val`` are folders or manifests of audio files.

    Random windows of ``data.window`` samples at ``model.sample_rate``, long files
    contributing one window per ``window`` samples; every file shorter than the
    model's shortest input is skipped and reported. Training windows (never
    validation ones) go through ``data.wave_augment`` (:mod:`cpc.data.augment`).
    """

    name = "audio"
    builder = staticmethod(cpc_audio)

    def datasets(self, config: Config, min_length: int) -> DataSplits:
        data = config.data
        rate = int(self.setting(config.model, "sample_rate"))
        augment = WaveAugment.of(data.wave_augment, rate)

        def build(records: list[Record], train: Any) -> AudioWindowDataset:
            # ``train`` is None while the training set itself is built
            return AudioWindowDataset(
                records,
                rate,
                data.window,
                min_length=min_length,
                short_clips=data.short_clips,
                cover=True,
                strict=data.strict,
                seed=config.run.seed,
                augment=augment if train is None else None,
            )

        def records(spec: str) -> list[Record]:
            return audio_records(spec, group_from=data.group_from, fmt=data.format)

        if is_streamed(data.train):  # shards by URL: streamed, validation only from data.val
            stream = ShardStream(
                data.train, rate, data.window, min_length=min_length, seed=config.run.seed,
                augment=augment,
            )  # fmt: skip
            val = build(records(data.val), stream) if data.val else None
            return DataSplits(stream, val, pad_collate, DataInfo(self.name, sample_rate=rate))
        train, val = sequence_splits(data, config.run.seed, records, build)
        info = DataInfo(self.name, sample_rate=rate, groups=list(train.group_names))
        return DataSplits(train, val, pad_collate, info)

    def file_dataset(self, source: str, info: DataInfo, min_length: int, strict: bool) -> FileItems:
        rate = info.sample_rate or DEFAULT_SAMPLE_RATE
        return AudioFileDataset(source, rate, min_length=min_length, strict=strict)
