"""Data layer: one recipe per modality, one window data set, collate, grouped sampling.

:mod:`cpc.data.registry` maps a modality name to its recipe (:mod:`cpc.data.recipes`);
:mod:`cpc.data.windows` holds the window and whole-file data sets shared by audio and
signals over the :class:`~cpc.data.windows.Source` protocol. Every data set follows the
bad-input policy of :mod:`cpc.data.errors`: unusable files are reported and skipped
(or raise with ``strict=True``).
"""

from cpc.data.audio import (
    AudioFileDataset,
    AudioRecord,
    AudioWindowDataset,
    audio_records,
    read_audio,
)
from cpc.data.collate import pad_collate
from cpc.data.errors import SkipReport
from cpc.data.recipe import DataInfo
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
from cpc.data.sources import Record
from cpc.data.windows import FileDataset, Source, WindowDataset
from cpc.errors import DataError, EmptyDatasetError

__all__ = [
    "AudioFileDataset",
    "AudioRecord",
    "AudioWindowDataset",
    "ChannelStats",
    "DataError",
    "DataInfo",
    "EmptyDatasetError",
    "FileDataset",
    "GroupedBatchSampler",
    "Record",
    "Signal",
    "SignalFileDataset",
    "SignalRecord",
    "SignalWindowDataset",
    "SkipReport",
    "Source",
    "WindowDataset",
    "audio_records",
    "pad_collate",
    "read_audio",
    "read_signal",
    "signal_records",
    "svc2004_writer",
]
