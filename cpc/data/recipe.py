"""What a modality's recipe provides, and the typed data facts saved in checkpoints.

A recipe (one module per modality in :mod:`cpc.data.recipes`, found through
:mod:`cpc.data.registry`) turns a config into everything the rest of the package needs
and knows nothing modality-free code should know:

- :meth:`Recipe.build_model`: the model, through the modality's builder;
- :meth:`Recipe.datasets`: training and validation sets, their collate and a
  :class:`DataInfo`;
- :meth:`Recipe.file_dataset`: whole files for ``cpc extract``, read as the training
  data was (from the :class:`DataInfo` of the checkpoint); :attr:`Recipe.layout` says
  how :mod:`cpc.features.extract` writes their features.

The trainer, the CLI and the config layer see only this interface.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import numpy as np

from cpc.config.ranges import Range, short
from cpc.data.errors import SkipReport
from cpc.data.records import Record
from cpc.data.signals import ChannelStats
from cpc.errors import ConfigError, EmptyDatasetError
from cpc.models.builders import HEAD_FIELDS

if TYPE_CHECKING:
    from cpc.config import Config, DataConfig, ModelConfig
    from cpc.data.blocks import Blocks
    from cpc.models.cpc import CPCModel

logger = logging.getLogger(__name__)

Collate = Callable[[Sequence[Any]], dict[str, Any]]


@dataclass
class DataInfo:
    """Facts about a run's data that using its model needs; saved in every checkpoint.

    Attributes:
        modality: The recipe's name.
        sample_rate: Audio: the rate every file was resampled to.
        rate: Signals: the resampling rate in Hz, or None (recorded points).
        channels: Signals: channel names kept, in order.
        normalize: Signals: ``file``, ``none`` or ``dataset``.
        stats: Signals: per-channel statistics of ``normalize="dataset"``.
        image_size: Images: the crop size.
        in_channels: Images: channels the model takes.
        groups: Speaker/writer names of the training set (a batch's ``group`` indexes it).

    """

    modality: str
    sample_rate: int | None = None
    rate: float | None = None
    channels: list[str] | None = None
    normalize: str | None = None
    stats: ChannelStats | None = None
    image_size: int | None = None
    in_channels: int | None = None
    groups: list[str] = field(default_factory=list)

    @property
    def seconds_per_sample(self) -> float | None:
        """Input seconds per sample, when the input has a known rate."""
        rate = self.sample_rate or self.rate
        return 1.0 / rate if rate else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (``kind`` repeats ``modality`` for older readers)."""
        return {"kind": self.modality, **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any], modality: str) -> DataInfo:
        """Read :meth:`to_dict` output, or the untyped dict of older checkpoints.

        The dict comes from a checkpoint (untrusted): every value is checked, and
        normalisation statistics must be finite with positive deviations, so a damaged
        or crafted file is refused instead of scaling features by garbage.

        Raises:
            ConfigError: A value of the wrong type or range, named ``data.key``.

        """
        if not isinstance(data, dict):
            _refuse("data", data, "a mapping of data facts")
        known = {f for f in cls.__dataclass_fields__ if f != "modality"}
        values = {k: v for k, v in (data or {}).items() if k in known}
        _check_facts(values)
        if values.get("stats") is not None:
            values["stats"] = ChannelStats.from_dict(values["stats"])
        return cls(modality=str(data.get("modality", data.get("kind", modality))), **values)


def _refuse(key: str, value: Any, want: str) -> None:
    raise ConfigError(f"{key}={short(value)} in the checkpoint's data facts: need {want}")


def _numbers(key: str, value: Any, rule: Range) -> None:
    if not isinstance(value, list) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) and rule.problem(v) is None
        for v in value
    ):
        _refuse(key, value, f"a list of numbers {rule.describe()}")


def _check_facts(values: dict[str, Any]) -> None:
    """Types and ranges of :class:`DataInfo` fields read from a checkpoint."""
    scalars = {
        "sample_rate": Range(1, 1_000_000),
        "rate": Range(0, 1e9, open_low=True),
        "image_size": Range(1, 65_536),
        "in_channels": Range(1, 65_536),
    }
    for key, rule in scalars.items():
        value = values.get(key)
        if value is not None:
            _numbers(f"data.{key}", [value], rule)
    for key in ("channels", "groups"):
        value = values.get(key)
        if value is not None and not (
            isinstance(value, list) and all(isinstance(v, str) for v in value)
        ):
            _refuse(f"data.{key}", value, "a list of names")
    if values.get("normalize") not in (None, "file", "none", "dataset"):
        _refuse("data.normalize", values["normalize"], "file, none or dataset")
    stats = values.get("stats")
    if stats is None:
        return
    if not isinstance(stats, dict) or not isinstance(stats.get("channels"), list):
        _refuse("data.stats", stats, "channels, mean and std")
    count = len(stats["channels"])
    _numbers("data.stats.mean", stats.get("mean"), Range(-1e30, 1e30))
    _numbers("data.stats.std", stats.get("std"), Range(0, 1e30, open_low=True))
    if not len(stats["mean"]) == len(stats["std"]) == count:
        _refuse("data.stats", stats, f"{count} means and deviations, one per channel")


class TrainSet(Protocol):
    """A training or validation set: seeded per epoch, grouped, reporting skipped files."""

    @property
    def report(self) -> SkipReport:
        """Files skipped or found bad."""
        ...

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> dict[str, Any]: ...

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose random draws items use."""
        ...

    @property
    def groups(self) -> list[int]:
        """Group of every item."""
        ...


class FileItems(Protocol):
    """Whole files (or images) for extraction: items with ``x`` and ``path``."""

    @property
    def report(self) -> SkipReport:
        """Files skipped; extraction adds the ones that fail when read."""
        ...

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> dict[str, Any]: ...


@runtime_checkable
class StreamedItems(FileItems, Protocol):
    """Whole files that can also be read as blocks, for extraction in bounded memory."""

    @property
    def paths(self) -> list[str]:
        """The file of every item, in item order."""
        ...

    def stream(self, index: int) -> Blocks:
        """Item ``index`` as blocks of samples whose lengths add up to ``.length``."""
        ...


@runtime_checkable
class StreamSet(Protocol):
    """A training set streamed in an order of its own (shards named by URL): no length,
    no indexing; resumable from :meth:`state_dict` (:mod:`cpc.data.formats.stream`).
    """

    @property
    def report(self) -> SkipReport:
        """Samples skipped."""
        ...

    def set_epoch(self, epoch: int) -> None: ...

    def shard_for(self, rank: int, world_size: int) -> None:
        """Read only this process's share of every epoch."""
        ...

    def state_dict(self) -> dict[str, int]: ...

    def load_state_dict(self, state: dict[str, int]) -> None: ...


@dataclass
class DataSplits:
    """What :meth:`Recipe.datasets` builds."""

    train: TrainSet | StreamSet
    val: TrainSet | None
    collate: Collate
    info: DataInfo


class Recipe:
    """Base of the modality recipes; subclasses set :attr:`name` and :attr:`builder`."""

    name: str
    builder: Callable[..., CPCModel]
    length_field: str = "window"
    """The ``data`` field that is a training item's length along the prediction axis."""
    length_unit: str = "samples"
    """What that field counts, for messages."""
    layout: Literal["sequence", "grid"] = "sequence"
    """How ``cpc extract`` writes an item's features (:func:`cpc.features.extract.extract_items`):
    one ``(steps, dim)`` array per file, or a grid of rows and columns per image."""

    def build_model(self, model: ModelConfig) -> CPCModel:
        """The builder called with the config's set fields it takes (others ignored)."""
        return self.builder(**self._accepted(model.given()))

    def _accepted(self, given: dict[str, Any]) -> dict[str, Any]:
        params = inspect.signature(self.builder).parameters
        names = {n for n, p in params.items() if p.kind is not p.VAR_KEYWORD} | set(HEAD_FIELDS)
        return {k: v for k, v in given.items() if k in names}

    def setting(self, model: ModelConfig, name: str) -> Any:
        """A model setting as built: the config's value, else the builder's default."""
        value = getattr(model, name)
        if value is not None:
            return value
        return inspect.signature(self.builder).parameters[name].default

    def check(self, config: Config) -> None:
        """Cross-check the config before any data is read; raise ConfigError."""

    def datasets(self, config: Config, min_length: int) -> DataSplits:
        """Training and validation sets of a run (``min_length``: the model's shortest input)."""
        raise NotImplementedError

    def file_dataset(self, source: str, info: DataInfo, min_length: int, strict: bool) -> FileItems:
        """Whole files of ``source`` read as the training data was."""
        raise NotImplementedError


def split_indices(n: int, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(held-out, kept) indices: ``round(fraction * n)`` (at least 1) files held out."""
    if fraction <= 0 or n < 2:
        if fraction > 0:
            logger.warning("only %d training file(s): no validation split", n)
        return [], list(range(n))
    order = np.random.default_rng([seed, 7919]).permutation(n)
    count = min(max(1, round(fraction * n)), n - 1)
    return sorted(order[:count].tolist()), sorted(order[count:].tolist())


def sequence_splits(
    data: DataConfig,
    seed: int,
    records: Callable[[str], list[Record]],
    build: Callable[[list[Record], Any], Any],
) -> tuple[Any, Any | None]:
    """Training and validation window sets of a file-based modality.

    Without ``data.val``, ``data.val_fraction`` of the training files is held out (split
    by file, seeded). ``build(records, train)`` makes a set (``train`` is None for the
    training set itself, and the training set when building validation, so it can
    reuse the training set's channels and statistics).

    Raises:
        EmptyDatasetError: No usable training file, or none in an explicit ``data.val``.

    """
    train_records = records(data.train)
    val_records = records(data.val) if data.val else None
    if val_records is None and data.val_fraction > 0:
        held, kept = split_indices(len(train_records), data.val_fraction, seed)
        val_records = [train_records[i] for i in held] or None
        train_records = [train_records[i] for i in kept]
    if not train_records:
        raise EmptyDatasetError(data.train, SkipReport())
    train = build(train_records, None)
    val = None
    if val_records:
        try:
            val = build(val_records, train)
        except EmptyDatasetError:
            if data.val:
                raise
            logger.warning("no usable file in the validation split: validation is off")
    return train, val
