"""Data layer: audio and signal data sets, padding collate, grouped batch sampling.

Every data set follows the bad-input policy of :mod:`cpc.data.errors`: unusable files
are reported and skipped (or raise with ``strict=True``).
"""

from cpc.data.audio import (
    AudioFileDataset,
    AudioRecord,
    AudioWindowDataset,
    audio_records,
    read_audio,
)
from cpc.data.collate import pad_collate
from cpc.data.errors import DataError, EmptyDatasetError, SkipReport
from cpc.data.samplers import GroupedBatchSampler
from cpc.data.signal_io import Signal, read_signal
from cpc.data.signals import (
    ChannelStats,
    SignalFileDataset,
    SignalRecord,
    SignalWindowDataset,
    signal_records,
    svc2004_writer,
)

__all__ = [
    "AudioFileDataset",
    "AudioRecord",
    "AudioWindowDataset",
    "ChannelStats",
    "DataError",
    "EmptyDatasetError",
    "GroupedBatchSampler",
    "Signal",
    "SignalFileDataset",
    "SignalRecord",
    "SignalWindowDataset",
    "SkipReport",
    "audio_records",
    "pad_collate",
    "read_audio",
    "read_signal",
    "signal_records",
    "svc2004_writer",
]
