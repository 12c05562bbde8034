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
from typing import Any, Literal

import yaml

from cpc.config.modalities import modality
from cpc.config.presets import preset_names, preset_text
from cpc.config.ranges import check_group_from, check_section, short
from cpc.errors import ConfigError

_MAX_CONFIG_BYTES = 1 << 20


@dataclass
class ModelConfig:
    """The model: which builder and its flat arguments (see :mod:`cpc.models.builders`).

    Every field but ``modality`` defaults to None, meaning "the builder's default" (and
    the builder's default head, :class:`~cpc.models.builders.HeadSettings`), so a config
    naming only ``modality: image`` builds exactly ``cpc_image()``. A field the
    modality's builder does not take is ignored.
    """

    modality: str = "audio"
    """Which recipe and builder: ``audio`` (``cpc_audio``), ``signal`` (``cpc_signal``),
    ``image`` (``cpc_image``), or any modality registered with
    :func:`cpc.data.registry.register`."""
    frontend: Literal["waveform", "logmel", "mfcc"] | None = None
    """Audio only: raw waveform convolutions (default) or a spectral front-end."""
    sample_rate: int | None = None
    """Audio only: the model's rate (16000); data at other rates is resampled to it."""
    in_channels: int | None = None
    """Signals and images: input channels."""
    channels: int | None = None
    """Width of the 1-D encoder (CPC paper: 512)."""
    kernels: list[int] | None = None
    strides: list[int] | None = None
    norm: Literal["layer", "layer_unbiased", "batch", "none"] | None = None
    """Per-step norm of the 1-D encoder; ``layer_unbiased`` is CPC_audio's (imports)."""
    padding: list[int] | None = None
    """Waveform/signal encoder: zeros on both sides of each layer's input (CPC_audio:
    [3, 2, 1, 1, 1]); None: unpadded (this package's default)."""
    context: Literal["gru", "lstm", "transformer", "conv", "masked_conv"] | None = None
    context_dim: int | None = None
    context_layers: int | None = None
    k_min: int | None = None
    """First prediction offset; None: 1 for sequences, 2 for overlapping patches."""
    num_offsets: int | None = None
    num_negatives: int | None = None
    negatives: Literal["batch", "sequence", "mixed", "all"] | None = None
    sequence_fraction: float | None = None
    """``negatives=mixed``: the share of negatives drawn from the anchor's own sequence
    (the rest from the whole batch); the builder's default is 0.5."""
    temperature: float | None = None
    predictor: Literal["linear", "mlp", "transformer"] | None = None
    """Prediction head: the paper's linear ``W_k``, an MLP per offset, or one causal
    Transformer layer before the linear maps (CPC_audio's ``rnnMode=transformer``)."""
    gather_distributed: bool | None = None
    """Draw negatives from every process's batch under torchrun."""
    patch_size: int | None = None
    """Images only: patch size and stride in pixels (CPC v2: 64 on a stride of 32)."""
    patch_stride: int | None = None
    widths: list[int] | None = None
    blocks: int | None = None
    dim: int | None = None
    """Images only: latent size of a patch."""

    def __post_init__(self) -> None:
        check_section("model", self)
        if (
            self.kernels is not None
            and self.strides is not None
            and len(self.kernels) != len(self.strides)
        ):
            raise ConfigError(
                f"model.kernels {self.kernels} and model.strides {self.strides} "
                "need one entry per layer"
            )
        if self.k_min is not None and self.k_min < 1:
            raise ConfigError(f"model.k_min must be >= 1, got {self.k_min}")

    def given(self) -> dict[str, Any]:
        """The fields set (not None) other than ``modality``: the builder's arguments."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name != "modality" and getattr(self, f.name) is not None
        }


@dataclass
class DataConfig:
    """Where the training data comes from and how batches are cut."""

    kind: str | None = None
    """Older configs' name of the modality; None: ``model.modality`` (they must agree).
    The config names the modality once, in ``model.modality``."""
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
    window: int = 20480
    """Training window in input samples (CPC paper: 20480 = 1.28 s at 16 kHz)."""
    short_clips: Literal["pad", "skip"] = "pad"
    """Clips shorter than the window: zero-padded and masked, or skipped (reported)."""
    batch_size: int = 8
    group_by: Literal["none", "speaker"] = "none"
    """``speaker``: batches from few speakers/writers (same-group negatives)."""
    group_from: str = "auto"
    """Where a file's speaker/writer comes from: ``auto`` (the manifest's ``speaker``
    column for audio, ``label``/``writer`` for signals, else the parent folder),
    ``parent``, ``grandparent`` (LibriSpeech/LibriLight: ``speaker/chapter/file``),
    ``regex:PATTERN`` (first capture group, searched in the path) or ``column:NAME``."""
    groups_per_batch: int = 1
    num_workers: int = 0
    strict: bool = False
    """Raise on the first bad file instead of reporting and skipping it."""
    channels: list[str] | None = None
    """Signals: channel names to keep (None: those of the first file)."""
    normalize: Literal["file", "dataset", "none"] = "file"
    """Signals: per-channel z-score per file or over the training set."""
    rate: float | None = None
    """Signals: resample to this rate (Hz) using the file's time stamps."""
    image_size: int = 256
    """Images: crop size (CPC v2: 256, giving a 7x7 grid of 64-pixel patches)."""
    augment: bool = True
    """Images: CPC v2's random crops and colour augmentations of training images."""
    wave_augment: list[Literal["pitch", "bandreject", "noise", "reverb"]] = field(
        default_factory=list
    )
    """Audio only: time-domain augmentations of the training windows (Kharitonov et al.
    2021), e.g. ``[pitch, reverb, noise]``; none by default. See :mod:`cpc.data.augment`."""

    def __post_init__(self) -> None:
        check_section("data", self)
        if not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError(f"data.val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.batch_size < 1:
            raise ConfigError(f"data.batch_size must be >= 1, got {self.batch_size}")
        check_group_from(self.group_from)
        if len(set(self.wave_augment)) != len(self.wave_augment):
            raise ConfigError(f"data.wave_augment lists an op twice: {self.wave_augment}")


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
    """torch.compile the model (no gain measured on CPU for conv+GRU models)."""
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
        modality(self.model.modality).check(self)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (JSON/YAML-safe)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Config:
        """Build and validate from a nested dict; unknown keys are errors."""
        if not isinstance(data, dict):
            raise ConfigError(f"a config must be a mapping of sections, got {type(data).__name__}")
        sections = {f.name: f for f in dataclasses.fields(cls)}
        unknown = set(data) - set(sections)
        if unknown:
            raise ConfigError(
                f"unknown config section(s) {sorted(map(short, unknown))}; "
                f"allowed: {sorted(sections)}"
            )
        built = {}
        for name in sections:
            section_type = typing.get_type_hints(cls)[name]
            values = data.get(name)
            built[name] = _build_section(name, section_type, {} if values is None else values)
        return cls(**built)


def _build_section(name: str, kind: type, values: dict[str, Any]) -> Any:
    if not isinstance(values, dict):
        raise ConfigError(f"section '{name}' must be a mapping, got {short(values)}")
    hints = typing.get_type_hints(kind)
    fields = {f.name for f in dataclasses.fields(kind)}
    for key, value in values.items():
        if key not in fields:
            raise ConfigError(
                f"unknown key '{name}.{key if isinstance(key, str) else short(key)}'; "
                f"allowed keys: {sorted(fields)}"
            )
        values[key] = _check(f"{name}.{key}", hints[key], value)
    try:
        return kind(**values)
    except ConfigError:
        raise
    except (TypeError, ValueError) as err:
        raise ConfigError(f"section '{name}': {err}") from err


def _check(key: str, hint: Any, value: Any) -> Any:
    """Check (and gently coerce) ``value`` against the type ``hint``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _check(key, arg, value)
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
        return [_check(f"{key}[{i}]", args[0], v) for i, v in enumerate(value)]
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
