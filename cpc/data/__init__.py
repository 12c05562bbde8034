"""Data layer: one recipe per modality, one window data set, collate, grouped sampling.

:mod:`cpc.data.registry` maps a modality name to its recipe (:mod:`cpc.data.recipes`,
the interface in :mod:`cpc.data.recipe`: a :class:`Recipe` owns its modality's config
keys and its :class:`Facts`); :mod:`cpc.data.windows` holds the window and
whole-file data sets shared by audio and signals over the
:class:`~cpc.data.windows.Source` protocol. Every data set follows the bad-input policy
of :mod:`cpc.data.errors`: unusable files are reported and skipped (or raise with
``strict=True``).

- listing files: :mod:`cpc.data.records` (folders and manifests, groups),
  :mod:`cpc.data.scan` (the folder walk), :mod:`cpc.data.formats` (corpora as toolkits
  prepare them: fairseq, Kaldi, Lhotse, HF, WebDataset shards, LibriSpeech);
- speech: :mod:`cpc.data.audio`, :mod:`cpc.data.resample`, :mod:`cpc.data.blocks`
  (long files in bounded memory), :mod:`cpc.data.augment`;
- pen and sensor streams: :mod:`cpc.data.signal_io` (file formats),
  :mod:`cpc.data.signals` (data sets), :mod:`cpc.data.ucr` (UCR/UEA archives);
- images: :mod:`cpc.data.images`;
- batching: :mod:`cpc.data.collate`, :mod:`cpc.data.samplers`, :mod:`cpc.data.seeds`;
- :mod:`cpc.data.validate`: whether a config can train on its windows;
- :mod:`cpc.data.corpora`: built-in corpora generated locally (``cpc data ...``).
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
from cpc.data.recipe import DataInfo, Facts, Recipe
from cpc.data.records import Record
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
    "Facts",
    "FileDataset",
    "GroupedBatchSampler",
    "Recipe",
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
