"""Typed run configuration: one small dataclass per concern, loaded from YAML.

``load_config(path, overrides)`` reads a YAML file with the sections ``model``, ``data``,
``optim`` and ``run`` and applies ``section.key=value`` overrides from the command line.
An unknown key or a value of the wrong type or outside its allowed set is an error that
names the key and what is allowed. The whole config is saved inside every checkpoint.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

from cpc.config.modalities import Modality, add_modality, modality
from cpc.config.presets import preset_names, preset_text
from cpc.config.ranges import check_group_from, check_section, short
from cpc.errors import ConfigError

_MAX_CONFIG_BYTES = 1 << 20


T = TypeVar("T")


@dataclass
class ModelConfig:
    """The model: which builder, its head settings and the modality's own arguments.

    The common part is the modality's name and the head settings every builder shares
    (:class:`~cpc.models.builders.HeadSettings`: context, predictor, loss); the rest
    (``model.sample_rate``, ``model.patch_size``...) belongs to the modality's recipe,
    which declares it as a small dataclass (:attr:`modality_fields`). In YAML and in
    :meth:`to_dict` every key is flat. Every field but ``modality`` defaults to None,
    meaning "the builder's default", so a config naming only ``modality: image`` builds
    exactly ``cpc_image()``.
    """

    modality: str = "audio"
    """Which recipe and builder: ``audio`` (``cpc_audio``), ``signal`` (``cpc_signal``),
    ``image`` (``cpc_image``), or any modality registered with
    :func:`cpc.data.registry.register`."""
    context: Literal["gru", "lstm", "transformer", "conv", "masked_conv"] | None = None
    """Context network (causal along the prediction axis)."""
    context_dim: int | None = None
    """Width of the context network."""
    context_layers: int | None = None
    """Depth of the context network."""
    k_min: int | None = None
    """First prediction offset; None: 1 for sequences, 2 for overlapping patches."""
    num_offsets: int | None = None
    """Offsets scored: ``k_min .. k_min + num_offsets - 1``."""
    num_negatives: int | None = None
    """Candidates drawn per anchor (sampled negative modes)."""
    negatives: Literal["batch", "sequence", "mixed", "all"] | None = None
    """Where negatives come from: the whole batch, the anchor's own sequence, both
    (``mixed``), or every target of the batch (a full softmax)."""
    sequence_fraction: float | None = None
    """``negatives=mixed``: the share of negatives drawn from the anchor's own sequence
    (the rest from the whole batch); the builder's default is 0.5."""
    temperature: float | None = None
    """Score temperature."""
    predictor: Literal["linear", "mlp", "transformer"] | None = None
    """Prediction head: the paper's linear ``W_k``, an MLP per offset, or one causal
    Transformer layer before the linear maps (CPC_audio's ``rnnMode=transformer``)."""
    gather_distributed: bool | None = None
    """Draw negatives from every process's batch under torchrun."""
    modality_fields: Any = None
    """The modality's own ``model.*`` settings: an instance of the dataclass its recipe
    registered (:attr:`cpc.config.Modality.model_fields`); None: its defaults. Read it
    typed with :meth:`fields_as`."""

    def __post_init__(self) -> None:
        check_section("model", self)
        if not isinstance(self.modality, str):
            raise ConfigError(f"model.modality must be a string, got {short(self.modality)}")
        own = modality(self.modality).model_fields
        self.modality_fields = _own_part("model", self.modality, own, self.modality_fields)
        if self.k_min is not None and self.k_min < 1:
            raise ConfigError(f"model.k_min must be >= 1, got {self.k_min}")

    def fields_as(self, kind: type[T]) -> T:
        """The modality's own settings as ``kind`` (its recipe's dataclass).

        Raises:
            ConfigError: They are not a ``kind`` (a config of another modality).

        """
        return _typed_part("model", self.modality_fields, kind)

    def to_dict(self) -> dict[str, Any]:
        """Flat dict of every key, common and the modality's own (JSON/YAML-safe)."""
        return _flat(self)

    def given(self) -> dict[str, Any]:
        """The keys set (not None) other than ``modality``: the builder's arguments."""
        return {k: v for k, v in self.to_dict().items() if k != "modality" and v is not None}


@dataclass
class DataConfig:
    """Where the training data comes from and how batches are cut.

    Keys that only one modality reads (``data.image_size``, ``data.normalize``...)
    belong to its recipe (:attr:`modality_fields`); in YAML they sit flat beside these.
    """

    kind: str | None = None
    """The modality again, as older configs wrote it; None: ``model.modality``. Saved
    configs keep writing it for older readers; when given it must agree with
    ``model.modality``, which is where a config names its modality."""
    train: str = ""
    """Audio/signals: a folder (searched recursively) or a CSV/TSV manifest with a
    ``path`` column. Images: an image folder, or ``idx:DIR`` for MNIST-style IDX files
    (``idx:/usr/share/datasets/fashion-mnist``), or ``textures`` for synthetic ones."""
    val: str = ""
    """Same forms as ``train``; empty: hold out ``val_fraction`` of the training files."""
    format: Literal[
        "auto", "folder", "manifest", "fairseq", "kaldi", "lhotse", "hf", "webdataset"
    ] = "auto"
    """How ``train`` and ``val`` are read: ``auto`` (found from the path), ``folder``,
    ``manifest`` (CSV/TSV with a ``path`` column), ``fairseq`` (wav2vec ``.tsv``: root
    line, then ``path<TAB>num_samples``), ``kaldi`` (a data folder with ``wav.scp``,
    ``segments``, ``utt2spk``), ``lhotse`` (a ``.jsonl.gz`` of cuts or recordings and
    supervisions), ``hf`` (a Hugging Face data set saved with ``save_to_disk``) or
    ``webdataset`` (tar shards, ``shards-{000000..000127}.tar``). Signals take
    ``folder``, ``manifest`` and ``fairseq``. See :mod:`cpc.data.formats`."""
    val_fraction: float = 0.0
    """Share of the training files held out for validation when ``val`` is empty."""
    window: int = 20480
    """Training window in input samples (CPC paper: 20480 = 1.28 s at 16 kHz)."""
    short_clips: Literal["pad", "skip"] = "pad"
    """Clips shorter than the window: zero-padded and masked, or skipped (reported)."""
    batch_size: int = 8
    """Items per batch (per process under torchrun)."""
    group_by: Literal["none", "speaker"] = "none"
    """``speaker``: batches from few speakers/writers (same-group negatives)."""
    group_from: str = "auto"
    """Where a file's speaker/writer comes from: ``auto`` (the manifest's ``speaker``
    column for audio, ``label``/``writer`` for signals, else the parent folder),
    ``parent``, ``grandparent`` (LibriSpeech/LibriLight: ``speaker/chapter/file``),
    ``regex:PATTERN`` (first capture group, searched in the path) or ``column:NAME``."""
    groups_per_batch: int = 1
    """With ``group_by: speaker``: groups that share a batch."""
    num_workers: int = 0
    """DataLoader worker processes."""
    strict: bool = False
    """Raise on the first bad file instead of reporting and skipping it."""
    modality_fields: Any = None
    """The modality's own ``data.*`` settings: an instance of the dataclass its recipe
    registered (:attr:`cpc.config.Modality.data_fields`), filled by
    :class:`Config` from ``model.modality``. Read it typed with :meth:`fields_as`."""

    def __post_init__(self) -> None:
        check_section("data", self)
        if not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError(f"data.val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.batch_size < 1:
            raise ConfigError(f"data.batch_size must be >= 1, got {self.batch_size}")
        check_group_from(self.group_from)
        if self.modality_fields is not None:
            check_section("data", self.modality_fields)

    def fields_as(self, kind: type[T]) -> T:
        """The modality's own settings as ``kind`` (its recipe's dataclass).

        Raises:
            ConfigError: They are not a ``kind`` (a config of another modality).

        """
        return _typed_part("data", self.modality_fields, kind)

    def to_dict(self) -> dict[str, Any]:
        """Flat dict of every key, common and the modality's own (JSON/YAML-safe)."""
        return _flat(self)


def _own_part(section: str, name: str, kind: type, value: Any) -> Any:
    """``value`` (None: ``kind()``) checked to be a ``kind`` and range-checked."""
    part = kind() if value is None else value
    if not isinstance(part, kind):
        raise ConfigError(
            f"{section} fields of modality {name!r} must be a {kind.__name__}, "
            f"got {type(part).__name__}"
        )
    check_section(section, part)
    return part


def _typed_part(section: str, part: Any, kind: type[T]) -> T:
    if not isinstance(part, kind):
        raise ConfigError(
            f"the {section} fields of this config are a {type(part).__name__}, "
            f"not a {kind.__name__}: a config of another modality?"
        )
    return part


def _flat(section: Any) -> dict[str, Any]:
    """A section as one flat dict: its common keys, then the modality's own."""
    out = dataclasses.asdict(section)
    own = out.pop("modality_fields")
    return {**out, **(own or {})}


def _common_keys(kind: type) -> set[str]:
    return {f.name for f in dataclasses.fields(kind)}


def register_modality(entry: Modality) -> None:
    """Make ``entry.name`` a valid ``model.modality``, with its own ``model``/``data`` keys.

    Raises:
        TypeError: Its fields are not dataclasses with defaults, or a key of theirs is a
            common key already.

    """
    add_modality(entry, {"model": _common_keys(ModelConfig), "data": _common_keys(DataConfig)})


#: Keys that the schema held for every modality before each recipe owned its own, and
#: their defaults then. Every config saved then holds them all; a modality that does not
#: own one reads it as absent when it has that default (a saved config: whatever its
#: value, as the code of the time ignored it). Historical: never add to it.
LEGACY_KEYS: dict[str, dict[str, Any]] = {
    "model": dict.fromkeys(
        (
            "frontend sample_rate in_channels channels kernels strides norm padding "
            "patch_size patch_stride widths blocks dim"
        ).split()
    ),
    "data": {
        "channels": None,
        "normalize": "file",
        "rate": None,
        "image_size": 256,
        "augment": True,
        "wave_augment": [],
    },
}


@dataclass
class OptimConfig:
    """AdamW with a linear warm-up and a cosine decay, as a function of the step."""

    lr: float = 2e-4
    """Peak learning rate (CPC paper: Adam at 2e-4)."""
    min_lr: float = 1e-5
    weight_decay: float = 0.01
    """Applied to matrices and convolution kernels only, never to biases or norms."""
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    warmup_steps: int = 1000
    max_steps: int = 100_000
    grad_clip: float = 1.0
    """Clip the global gradient norm to this (0: off)."""
    accumulate: int = 1
    """Micro-batches per optimiser step."""

    def __post_init__(self) -> None:
        check_section("optim", self)
        if self.max_steps < 1:
            raise ConfigError(f"optim.max_steps must be >= 1, got {self.max_steps}")
        if self.accumulate < 1:
            raise ConfigError(f"optim.accumulate must be >= 1, got {self.accumulate}")
        if self.warmup_steps < 0:
            raise ConfigError(f"optim.warmup_steps must be >= 0, got {self.warmup_steps}")


@dataclass
class RunConfig:
    """Where results go and how the run behaves."""

    out_dir: str = "runs/cpc"
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["fp32", "bf16", "fp16", "auto"] = "fp32"
    """Mixed precision: bf16 on CPUs that support it, bf16/fp16 on CUDA. ``auto``: bf16
    where the device's bf16 products run at least 1.5x its float32 products (measured
    once per machine and cached), else fp32; a resumed run keeps its first choice."""
    compile: bool = False
    """torch.compile the model. Off by default: on CPU it made the small preset's step
    slower (0.64x) after minutes of compiling (docs/performance.md). Without a C++
    compiler on a CPU the run warns once and trains eagerly."""
    log_every: int = 10
    val_every: int = 500
    val_batches: int = 20
    ckpt_every: int = 500
    keep_last: int = 3
    max_time: float = 0.0
    """Time budget in seconds of training over every resume (0: none). It schedules:
    the learning rate follows progress ``max(step / optim.max_steps, elapsed /
    max_time)``, reaching ``optim.min_lr`` at the budget, where the run stops with a
    checkpoint."""
    tensorboard: bool = False
    progress: bool = True
    resume: bool = True
    """Resume automatically from the newest checkpoint in ``out_dir``."""

    def __post_init__(self) -> None:
        check_section("run", self)


@dataclass
class Config:
    """A whole run: model, data, optimisation and run settings."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def __post_init__(self) -> None:
        if self.data.kind is None:
            self.data.kind = self.model.modality
        if self.model.modality != self.data.kind:
            raise ConfigError(
                f"model.modality={self.model.modality!r} does not match "
                f"data.kind={self.data.kind!r}"
            )
        entry = modality(self.model.modality)
        self.data.modality_fields = _own_part(
            "data", entry.name, entry.data_fields, self.data.modality_fields
        )
        entry.check(self)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict of flat sections (JSON/YAML-safe): what YAML files hold."""
        return {
            "model": self.model.to_dict(),
            "data": self.data.to_dict(),
            "optim": dataclasses.asdict(self.optim),
            "run": dataclasses.asdict(self.run),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], saved: bool = False) -> Config:
        """Build and validate from a nested dict; unknown keys are errors.

        The keys of ``model`` and ``data`` are those common to every modality and those
        of the modality ``model.modality`` names. ``saved``: the dict comes from a
        checkpoint, whose older configs may hold other modalities' keys of the time
        (:data:`LEGACY_KEYS`), ignored then and dropped here.
        """
        if not isinstance(data, dict):
            raise ConfigError(f"a config must be a mapping of sections, got {type(data).__name__}")
        sections = {f.name: f for f in dataclasses.fields(cls)}
        unknown = set(data) - set(sections)
        if unknown:
            raise ConfigError(
                f"unknown config section(s) {sorted(map(short, unknown))}; "
                f"allowed: {sorted(sections)}"
            )
        values = {name: {} if data.get(name) is None else data[name] for name in sections}
        for name, section in values.items():
            if not isinstance(section, dict):
                raise ConfigError(f"section '{name}' must be a mapping, got {short(section)}")
        name = check_value("model.modality", str, values["model"].get("modality", "audio"))
        entry = modality(name)
        hints = typing.get_type_hints(cls)
        built = {
            "model": _build_section("model", ModelConfig, values["model"], entry, saved),
            "data": _build_section("data", DataConfig, values["data"], entry, saved),
        }
        for other in ("optim", "run"):
            built[other] = _build_section(other, hints[other], values[other])
        return cls(**built)


def _build_section(
    name: str,
    kind: type,
    values: dict[str, Any],
    entry: Modality | None = None,
    saved: bool = False,
) -> Any:
    """One section from its flat keys: the common ones, and the modality's own into its
    dataclass (``entry``'s ``model_fields`` or ``data_fields``).
    """
    own_kind = getattr(entry, f"{name}_fields") if entry is not None else None
    places = {f.name: kind for f in dataclasses.fields(kind) if f.name != "modality_fields"}
    if own_kind is not None:
        places.update({f.name: own_kind for f in dataclasses.fields(own_kind)})
    parts: dict[type, dict[str, Any]] = {kind: {}, own_kind or kind: {}}
    for key, value in values.items():
        place = places.get(key) if isinstance(key, str) else None
        if place is not None:
            hint = typing.get_type_hints(place)[key]
            parts[place][key] = check_value(f"{name}.{key}", hint, value)
        elif not _legacy(name, key, value, saved):
            whose = f" for modality {entry.name!r}" if entry is not None else ""
            raise ConfigError(
                f"unknown key '{name}.{key if isinstance(key, str) else short(key)}'{whose}; "
                f"allowed keys: {sorted(places)}"
            )
    try:
        if own_kind is None:
            return kind(**parts[kind])
        return kind(**parts[kind], modality_fields=own_kind(**parts[own_kind]))
    except ConfigError:
        raise
    except (TypeError, ValueError) as err:
        raise ConfigError(f"section '{name}': {err}") from err


def _legacy(section: str, key: Any, value: Any, saved: bool) -> bool:
    """Whether ``key`` is another modality's key of the older shared schema, to drop."""
    defaults = LEGACY_KEYS.get(section, {})
    if not isinstance(key, str) or key not in defaults:
        return False
    return saved or value == defaults[key]


def check_value(key: str, hint: Any, value: Any) -> Any:
    """Check (and gently coerce) ``value`` against the type ``hint``; errors name ``key``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return check_value(key, arg, value)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError("; ".join(errors))
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{key}={short(value)} is not allowed; allowed values: {list(args)}")
        return value
    if origin is list:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key} must be a list, got {short(value)}")
        return [check_value(f"{key}[{i}]", args[0], v) for i, v in enumerate(value)]
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, got {short(value)}")
        return value
    if hint is int:
        number = _number(value)  # "1e5": YAML 1.1 reads it as a string; the user means 100000
        if isinstance(value, bool) or not (
            isinstance(value, int) or (number is not None and number.is_integer())
        ):
            raise ConfigError(f"{key} must be an integer, got {short(value)}")
        return value if isinstance(value, int) else int(number)  # type: ignore[arg-type]
    if hint is float:
        if isinstance(value, str):
            value = _number(value)  # "1e-3" (YAML 1.1 floats need a dot)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key} must be a number, got {short(value)}")
        try:
            return float(value)
        except OverflowError:
            raise ConfigError(f"{key}={short(value)} is too large") from None
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key} must be a string, got {short(value)}")
        return value
    return value


def _number(value: Any) -> float | None:
    """A number written as text (``"1e-3"``, ``"2e4"``), or None if it is not one."""
    if not isinstance(value, str):
        return None
    try:
        return float(value.strip())
    except ValueError:
        return None


def parse_yaml(text: str, where: str) -> Any:
    """``yaml.safe_load`` whose every failure is one :class:`ConfigError` line.

    Besides YAML's own errors this covers integers longer than Python converts
    (``ValueError``) and nesting deeper than the parser's recursion (``RecursionError``).
    """
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ConfigError(f"{where}: not valid YAML: {err.problem or err.context}{at}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{where}: not valid YAML: {' '.join(str(err).split())}") from None
    except RecursionError:
        raise ConfigError(f"{where}: nested too deeply to be a config") from None
    except ValueError as err:
        raise ConfigError(f"{where}: {' '.join(str(err).split())}") from None


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``section.key=value`` strings; values are parsed as YAML (``[1, 2]``, ``true``)."""
    for item in overrides:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise ConfigError(f"override {short(item)} must look like section.key=value")
        path, raw = item.split("=", 1)
        section, key = path.split(".", 1)
        if data.get(section) is None:
            data[section] = {}
        if not isinstance(data[section], dict):
            raise ConfigError(f"override {short(item)}: '{section}' is not a section")
        data[section][key] = parse_yaml(raw, f"override {short(item)}") if raw != "" else ""
    return data


def _read_text(path: Path) -> str:
    """A config file's text; a binary, oversized or unreadable file is a ConfigError."""
    if path.stat().st_size > _MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: {path.stat().st_size} bytes is too large for a config")
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text (UTF-8) file: is it a config?") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read ({err.strerror})") from None


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Read a YAML config (a file, or a shipped preset's name such as
    ``speech_small_cpu``; None: the defaults) and apply overrides.
    """
    data: dict[str, Any] = {}
    if path is not None:
        text = None if Path(path).is_file() else preset_text(str(path))
        if text is None:
            path = Path(path)
            if not path.is_file():
                raise ConfigError(
                    f"config file not found: {path} (shipped presets: {preset_names()})"
                )
            text = _read_text(path)
        loaded = parse_yaml(text, str(path))
        data = {} if loaded is None else loaded
        if not isinstance(data, dict):
            raise ConfigError(
                f"{path}: a config is a mapping of sections (model, data, optim, run), "
                f"not a {type(data).__name__}"
            )
    return Config.from_dict(apply_overrides(data, list(overrides or [])))


def save_config(config: Config, path: str | Path) -> None:
    """Write the config as YAML."""
    Path(path).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
