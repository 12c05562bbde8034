"""Range checks of every config value, and whether the model the config describes can
train on the windows it will be given; run before any data is read or weight allocated.

The types and allowed words of each field are checked where the YAML is parsed
(:mod:`cpc.config`); this module checks what types cannot say: that sizes are positive
and bounded, rates finite, lists non-empty, and that the encoder's receptive field and
the prediction offsets fit in a training window. Values that are ``None`` mean "the
builder's default" and are not range-checked here (the builder's own default is known
to be sound; :func:`check_geometry` checks the model that results).

The upper bounds are sanity bounds far above any published CPC setting: they exist so
that a typo or a crafted ``meta.json`` (``channels: 1000000000``, ``10**400``) is
refused by a message instead of an attempt to allocate terabytes.
"""

from __future__ import annotations

import math
import reprlib
from dataclasses import dataclass, fields, is_dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cpc.config import Config, ModelConfig
    from cpc.models.cpc import CPCModel

_HUGE = 2**62  # counts of steps: any finite run
_WIDTH = 65_536  # channels, dimensions, kernel sizes
_LAYERS = 256


@dataclass(frozen=True)
class Range:
    """Allowed values of a number (or of every item of a list of numbers).

    Attributes:
        low: Smallest allowed value (excluded when ``open_low``).
        high: Largest allowed value.
        open_low: ``low`` itself is not allowed (``> 0`` rather than ``>= 0``).
        max_items: For lists: at most this many items (and at least one).
        items: For lists: exactly this many items (0: any number up to ``max_items``).

    """

    low: float
    high: float = _HUGE
    open_low: bool = False
    max_items: int = _LAYERS
    items: int = 0

    def describe(self) -> str:
        """The range in words: ``in (0, 1000]`` or ``>= 1``."""
        left = "(" if self.open_low else "["
        if self.high >= _HUGE:
            return f"{'>' if self.open_low else '>='} {_fmt(self.low)}"
        return f"in {left}{_fmt(self.low)}, {_fmt(self.high)}]"

    def problem(self, value: float) -> str | None:
        """What is wrong with one number (``"must be >= 1"``), or None if it is allowed."""
        if isinstance(value, float) and math.isnan(value):
            return "must be a number, not NaN"
        if value < self.low or (self.open_low and value == self.low):
            return f"must be {'>' if self.open_low else '>='} {_fmt(self.low)}"
        if value > self.high:
            return f"must be <= {_fmt(self.high)}"
        return None


def _fmt(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() and abs(bound) < 1e15 else f"{bound:g}"


# Every numeric field of every section. A rule whose field does not exist is a bug that
# tests/test_bad_input.py catches, so renaming a field cannot silently drop its check.
RULES: dict[str, Range] = {
    "model.sample_rate": Range(1, 1_000_000),
    "model.in_channels": Range(1, _WIDTH),
    "model.channels": Range(1, _WIDTH),
    "model.kernels": Range(1, _WIDTH),
    "model.strides": Range(1, _WIDTH),
    "model.padding": Range(0, _WIDTH),
    "model.context_dim": Range(1, _WIDTH),
    "model.context_layers": Range(1, _LAYERS),
    "model.k_min": Range(1, 4096),
    "model.num_offsets": Range(1, 4096),
    "model.num_negatives": Range(1, 1_000_000),
    "model.temperature": Range(0, 1e6, open_low=True),
    "model.patch_size": Range(1, _WIDTH),
    "model.patch_stride": Range(1, _WIDTH),
    "model.widths": Range(1, _WIDTH),
    "model.blocks": Range(0, _LAYERS),
    "model.dim": Range(1, _WIDTH),
    "data.val_fraction": Range(0, 1),  # 1 itself is refused by DataConfig
    "data.window": Range(1, 2**40),
    "data.batch_size": Range(1, 2**20),
    "data.groups_per_batch": Range(1, 2**20),
    "data.num_workers": Range(0, 1024),
    "data.rate": Range(0, 1e9, open_low=True),
    "data.image_size": Range(1, _WIDTH),
    "optim.lr": Range(0, 1e3),
    "optim.min_lr": Range(0, 1e3),
    "optim.weight_decay": Range(0, 1e3),
    "optim.betas": Range(0, 1, items=2),
    "optim.warmup_steps": Range(0, _HUGE),
    "optim.max_steps": Range(1, _HUGE),
    "optim.grad_clip": Range(0, 1e12),
    "optim.accumulate": Range(1, 2**20),
    "run.seed": Range(0, 2**63 - 1),
    "run.log_every": Range(1, _HUGE),
    "run.val_every": Range(1, _HUGE),
    "run.val_batches": Range(0, _HUGE),
    "run.ckpt_every": Range(1, _HUGE),
    "run.keep_last": Range(0, 1_000_000),
    "run.max_time": Range(0, 1e12),
}

_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxlist, _REPR.maxdict = 3, 6, 6
_REPR.maxstring = _REPR.maxlong = _REPR.maxother = 40


def short(value: Any) -> str:
    """A short ``repr`` for messages: a 400-digit number or a nested bomb stays one line."""
    try:
        return _REPR.repr(value)
    except (ValueError, RecursionError):  # ints past Python's digit limit, deep nesting
        return f"<a {type(value).__name__} too large to show>"


def check_section(name: str, section: Any) -> None:
    """Range-check every numeric field of one config section (a dataclass).

    Raises:
        ConfigError: Naming ``section.key``, the value and the allowed range.

    """
    from cpc.config import ConfigError

    assert is_dataclass(section)
    for f in fields(section):
        rule = RULES.get(f"{name}.{f.name}")
        value = getattr(section, f.name)
        if rule is None or value is None:
            continue
        key = f"{name}.{f.name}"
        if isinstance(value, list | tuple):
            count = f"exactly {rule.items}" if rule.items else f"1 to {rule.max_items}"
            if (rule.items and len(value) != rule.items) or not 0 < len(value) <= rule.max_items:
                raise ConfigError(f"{key} needs {count} values, got {short(value)}")
            for i, item in enumerate(value):
                if (problem := rule.problem(item)) is not None:
                    raise ConfigError(f"{key}[{i}] {problem}, got {short(item)} in {short(value)}")
        elif (problem := rule.problem(value)) is not None:
            raise ConfigError(f"{key} {problem}, got {short(value)}")


def check_model(model: ModelConfig) -> CPCModel:
    """Build the described model on the meta device: its shapes, no memory allocated.

    Cheap and safe whatever the sizes (they are range-checked first); a combination the
    builder rejects becomes a :class:`ConfigError`.
    """
    import torch

    from cpc.config import ConfigError, build_model

    try:
        with torch.device("meta"):
            return build_model(model)
    except (ValueError, TypeError, ZeroDivisionError, IndexError, RuntimeError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ConfigError(f"model: these settings do not build a model: {first}") from None


def check_geometry(config: Config) -> None:
    """Check that the encoder's receptive field and every offset fit in a window.

    The model's encoder (a meta-device skeleton) says how many latent steps (or grid
    rows) a training window gives, and every prediction offset must have a target
    inside it, else that offset's accuracy would be reported as 0.0 forever. A training
    check only: a saved model stays usable for features whatever its window.

    Raises:
        ConfigError: The window is shorter than the encoder's receptive field, or the
            largest offset never fits.

    """
    import torch

    from cpc.config import ConfigError
    from cpc.data.registry import get_recipe  # not at import: the recipes use this module

    model = check_model(config.model)
    recipe = get_recipe(config.model.modality)
    key, unit = recipe.length_field, recipe.length_unit
    length = int(getattr(config.data, key))
    steps = int(model.encoder.output_lengths(torch.tensor([length]))[0])
    if steps < 1:
        raise ConfigError(
            f"data.{key}={length} {unit} is shorter than the encoder's receptive field "
            f"({model.receptive_field or 'one patch'}): no latent step would come out"
        )
    k_max = max(model.offsets)
    if steps <= k_max:
        raise ConfigError(
            f"data.{key}={length} {unit} gives {steps} latent step(s), but the offsets "
            f"{model.offsets[0]}..{k_max} (model.k_min, model.num_offsets) need at least "
            f"{k_max + 1}: make data.{key} larger or use fewer offsets"
        )


def check_runnable(config: Config) -> None:
    """What a training run needs beyond a valid config: offsets that fit in a window
    (:func:`check_geometry`), a data source and the device.

    Kept apart from the section checks because a saved config (a checkpoint's) must stay
    loadable on a machine without a GPU or without its training data.

    Raises:
        ConfigError: Offsets that cannot fit, ``data.train`` empty, or
            ``run.device=cuda`` without a GPU.

    """
    import torch

    from cpc.config import ConfigError

    check_geometry(config)
    if not config.data.train.strip():
        raise ConfigError(
            "data.train is empty: name a folder, a manifest or a built-in source "
            "(an empty value would mean the current directory)"
        )
    if config.run.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("run.device=cuda, but torch sees no CUDA device: use auto or cpu")
