"""What a modality's recipe provides, and the typed data facts saved in checkpoints.

A recipe (one module per modality in :mod:`cpc.data.recipes`, found through
:mod:`cpc.data.registry`) turns a config into everything the rest of the package needs
and knows nothing modality-free code should know:

- its own config keys (:attr:`Recipe.model_fields`, :attr:`Recipe.data_fields`) and
  data facts (:attr:`Recipe.facts`, the modality's part of :class:`DataInfo`);
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
import typing
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any, Literal, Protocol, Self, TypeVar, runtime_checkable

import numpy as np

from cpc.config import NoFields
from cpc.config.ranges import check_section, short
from cpc.config.schema import check_value
from cpc.data.errors import SkipReport
from cpc.data.records import Record
from cpc.errors import ConfigError, EmptyDatasetError

if TYPE_CHECKING:
    from cpc.config import Config, DataConfig, ModelConfig
    from cpc.data.blocks import Blocks
    from cpc.models.cpc import CPCModel

logger = logging.getLogger(__name__)

Collate = Callable[[Sequence[Any]], dict[str, Any]]


@dataclass
class Facts:
    """A recipe's own facts about its data (this base: none); saved in every checkpoint.

    A recipe subclasses it as a dataclass of JSON values, each with a default (what an
    older checkpoint that lacks it means) and, for numbers, an allowed range
    (:func:`cpc.config.ranges.ranged`); :meth:`from_dict` checks what a checkpoint says
    against the field types and ranges, so a damaged or crafted ``meta.json`` is refused.
    """

    @property
    def seconds_per_sample(self) -> float | None:
        """Input seconds per sample, when the input has a known rate (this base: None)."""
        return None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict, flat beside the shared facts in ``meta.json``'s ``data``."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Read this recipe's keys of a checkpoint's ``data`` dict (others are ignored).

        Raises:
            ConfigError: A value of the wrong type or range, named ``data.key``.

        """
        hints = typing.get_type_hints(cls)
        values = {
            f.name: check_value(f"data.{f.name}", hints[f.name], data[f.name])
            for f in fields(cls)
            if data.get(f.name) is not None
        }
        facts = cls(**values)
        check_section("data", facts)
        return facts


F = TypeVar("F", bound=Facts)

#: Keys of ``meta.json``'s ``data`` that :class:`DataInfo` itself holds.
SHARED_FACTS = ("kind", "modality", "groups")


@dataclass
class DataInfo:
    """Facts about a run's data that using its model needs; saved in every checkpoint.

    The shared part is here; what one modality alone knows (audio's sample rate, a
    signal's channels and statistics, an image's size) is its recipe's :class:`Facts`.

    Attributes:
        modality: The recipe's name.
        facts: The recipe's own facts (an instance of :attr:`Recipe.facts`).
        groups: Speaker/writer names of the training set (a batch's ``group`` indexes it).

    """

    modality: str
    facts: Facts = field(default_factory=Facts)
    groups: list[str] = field(default_factory=list)

    @property
    def seconds_per_sample(self) -> float | None:
        """Input seconds per sample, when the input has a known rate."""
        return self.facts.seconds_per_sample

    def facts_as(self, kind: type[F]) -> F:
        """The recipe's facts as ``kind``.

        Raises:
            ConfigError: They are not a ``kind`` (facts of another modality).

        """
        if not isinstance(self.facts, kind):
            raise ConfigError(
                f"data facts of {self.modality!r} are a {type(self.facts).__name__}, "
                f"not a {kind.__name__}"
            )
        return self.facts

    def to_dict(self) -> dict[str, Any]:
        """Flat JSON-safe dict (``kind`` repeats ``modality`` for older readers)."""
        shared = {"kind": self.modality, "modality": self.modality}
        return {**shared, **self.facts.to_dict(), "groups": list(self.groups)}

    @classmethod
    def from_dict(cls, data: dict[str, Any], modality: str) -> DataInfo:
        """Read :meth:`to_dict` output, or the flat dict of older checkpoints.

        The dict comes from a checkpoint (untrusted): the facts of ``modality``'s recipe
        are checked by type and range (:meth:`Facts.from_dict`), and a fact of another
        registered modality that this one does not use must still be a value that one
        would accept, so a damaged or crafted file is refused instead of scaling
        features by garbage.

        Raises:
            ConfigError: A value of the wrong type or range, named ``data.key``.

        """
        if not isinstance(data, dict):
            _refuse("data", data, "a mapping of data facts")
        groups = data.get("groups")
        if groups is not None and not (
            isinstance(groups, list) and all(isinstance(g, str) for g in groups)
        ):
            _refuse("data.groups", groups, "a list of names")
        own = RECIPES[modality].facts if modality in RECIPES else Facts
        try:
            facts = own.from_dict(data)
            _check_foreign(data, own)
        except ConfigError as err:
            raise ConfigError(f"{err} (in the checkpoint's data facts)") from None
        name = str(data.get("modality", data.get("kind", modality)))
        return cls(name, facts, list(groups or []))


def _check_foreign(data: dict[str, Any], own: type[Facts]) -> None:
    """Refuse a fact that ``own`` does not read when no recipe that has it accepts it."""
    mine = {f.name for f in fields(own)} | set(SHARED_FACTS)
    for key, value in data.items():
        if key in mine or value is None:
            continue
        owners = [r.facts for r in RECIPES.values() if key in {f.name for f in fields(r.facts)}]
        errors = []
        for owner in owners:
            try:
                owner.from_dict({key: value})
            except ConfigError as err:
                errors.append(err)
        if owners and len(errors) == len(owners):
            raise errors[0]


def _refuse(key: str, value: Any, want: str) -> None:
    raise ConfigError(f"{key}={short(value)} in the checkpoint's data facts: need {want}")


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
    """Base of the modality recipes: a modality is one subclass, passed to
    :func:`cpc.data.registry.register`.

    A subclass sets :attr:`name` and :attr:`builder`, declares what the modality owns
    (its ``model.*`` and ``data.*`` keys, its :class:`Facts`) and implements
    :meth:`datasets` and :meth:`file_dataset`.
    """

    name: str
    builder: Callable[..., CPCModel]
    model_fields: type = NoFields
    """Dataclass of the modality's own ``model.*`` keys: the builder's arguments other
    than the head settings (see :class:`cpc.config.Modality`)."""
    data_fields: type = NoFields
    """Dataclass of the modality's own ``data.*`` keys."""
    facts: type[Facts] = Facts
    """The modality's part of the :class:`DataInfo` saved in checkpoints."""
    length_field: str = "window"
    """The ``data`` key that is a training item's length along the prediction axis."""
    length_unit: str = "samples"
    """What that key counts, for messages."""
    layout: Literal["sequence", "grid"] = "sequence"
    """How ``cpc extract`` writes an item's features (:func:`cpc.features.extract.extract_items`):
    one ``(steps, dim)`` array per file, or a grid of rows and columns per image."""

    def build_model(self, model: ModelConfig) -> CPCModel:
        """The builder called with every key the config sets (the rest: its defaults)."""
        return self.builder(**model.given())

    def setting(self, model: ModelConfig, name: str) -> Any:
        """A model setting as built: the config's value, else the builder's default."""
        value = model.to_dict()[name]
        if value is not None:
            return value
        return inspect.signature(self.builder).parameters[name].default

    def check(self, config: Config) -> None:
        """Cross-check the config before any data is read; raise ConfigError."""

    def shortest_item(self, config: Config) -> tuple[int, str] | None:
        """The shortest training item (length along the prediction axis, path) when the
        recipe fits its model to the data (:meth:`fitted`); None: it does not.
        """
        return None

    def fitted(self, config: Config, length: int) -> list[str]:
        """Config overrides that fit the model to items of ``length`` (see
        :func:`cpc.data.validate.fit_to_data`).
        """
        raise NotImplementedError

    def datasets(self, config: Config, min_length: int) -> DataSplits:
        """Training and validation sets of a run (``min_length``: the model's shortest input)."""
        raise NotImplementedError

    def file_dataset(self, source: str, info: DataInfo, min_length: int, strict: bool) -> FileItems:
        """Whole files of ``source`` read as the training data was."""
        raise NotImplementedError


#: Every registered recipe, by modality name (:func:`cpc.data.registry.register` fills it).
RECIPES: dict[str, Recipe] = {}


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
