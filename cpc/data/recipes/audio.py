"""The speech recipe: audio files at the model's rate, random windows, whole files."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from cpc.config.ranges import WIDTH, Range, ranged
from cpc.data.audio import AudioFileDataset, AudioWindowDataset, audio_records
from cpc.data.augment import WaveAugment
from cpc.data.collate import pad_collate
from cpc.data.formats.stream import ShardStream, is_streamed
from cpc.data.recipe import DataInfo, DataSplits, Facts, FileItems, sequence_splits
from cpc.data.recipes.sequence import ConvEncoderFields, SequenceRecipe
from cpc.data.records import Record
from cpc.errors import ConfigError
from cpc.models.builders import Frontend, cpc_audio

#: The rate of checkpoints that did not record one (the builder's default).
DEFAULT_SAMPLE_RATE = 16000

if TYPE_CHECKING:
    from cpc.config import Config

_RATE = Range(1, 1_000_000)


@dataclass
class AudioModel(ConvEncoderFields):
    """``model.*`` keys of speech (:func:`~cpc.models.builders.cpc_audio`'s arguments)."""

    frontend: Frontend | None = None
    """Raw waveform convolutions (default) or a spectral front-end."""
    sample_rate: int | None = ranged(_RATE)
    """The model's rate (16000); data at other rates is resampled to it."""
    n_mels: int | None = ranged(WIDTH)
    """Spectral front-ends: mel bands (40)."""


@dataclass
class AudioData:
    """``data.*`` keys of speech."""

    wave_augment: list[Literal["pitch", "bandreject", "noise", "reverb"]] = field(
        default_factory=list
    )
    """Time-domain augmentations of the training windows (Kharitonov et al. 2021), e.g.
    ``[pitch, reverb, noise]``; none by default. See :mod:`cpc.data.augment`."""

    def __post_init__(self) -> None:
        if len(set(self.wave_augment)) != len(self.wave_augment):
            raise ConfigError(f"data.wave_augment lists an op twice: {self.wave_augment}")


@dataclass
class AudioFacts(Facts):
    """What extraction needs to read new audio as the training audio was read."""

    sample_rate: int | None = ranged(_RATE)
    """The rate every file was resampled to (None, in older checkpoints: 16000)."""

    @property
    def seconds_per_sample(self) -> float | None:
        """One over the sample rate."""
        return 1.0 / self.sample_rate if self.sample_rate else None


class AudioRecipe(SequenceRecipe):
    """Speech: ``data.train`` / ``data.val`` are folders or manifests of audio files.

    Random windows of ``data.window`` samples at ``model.sample_rate``, long files
    contributing one window per ``window`` samples; every file shorter than the
    model's shortest input is skipped and reported. Training windows (never
    validation ones) go through ``data.wave_augment`` (:mod:`cpc.data.augment`).
    """

    name = "audio"
    builder = staticmethod(cpc_audio)
    model_fields = AudioModel
    data_fields = AudioData
    facts = AudioFacts

    def datasets(self, config: Config, min_length: int) -> DataSplits:
        data = config.data
        rate = int(self.setting(config.model, "sample_rate"))
        augment = WaveAugment.of(data.fields_as(AudioData).wave_augment, rate)

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
            info = DataInfo(self.name, AudioFacts(sample_rate=rate))
            return DataSplits(stream, val, pad_collate, info)
        train, val = sequence_splits(data, config.run.seed, records, build)
        info = DataInfo(self.name, AudioFacts(sample_rate=rate), list(train.group_names))
        return DataSplits(train, val, pad_collate, info)

    def file_dataset(self, source: str, info: DataInfo, min_length: int, strict: bool) -> FileItems:
        rate = info.facts_as(AudioFacts).sample_rate or DEFAULT_SAMPLE_RATE
        return AudioFileDataset(source, rate, min_length=min_length, strict=strict)
