"""Range checks of every config value, run before any data is read or weight allocated.

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
import re
import reprlib
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any

from cpc.errors import ConfigError

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


#: Sanity bounds for a modality's own fields (:func:`ranged`): widths and depths.
WIDTH = Range(1, _WIDTH)
DEPTH = Range(0, _LAYERS)

# Every numeric field of the sections' common parts. A rule whose field does not exist is a
# bug that tests/test_bad_input.py catches, so renaming a field cannot silently drop its
# check. A modality's own fields carry their rule with them (:func:`ranged`).
RULES: dict[str, Range] = {
    "model.context_dim": Range(1, _WIDTH),
    "model.context_layers": Range(1, _LAYERS),
    "model.k_min": Range(1, 4096),
    "model.num_offsets": Range(1, 4096),
    "model.num_negatives": Range(1, 1_000_000),
    "model.temperature": Range(0, 1e6, open_low=True),
    "model.sequence_fraction": Range(0, 1),
    "data.val_fraction": Range(0, 1),  # 1 itself is refused by DataConfig
    "data.window": Range(1, 2**40),
    "data.batch_size": Range(1, 2**20),
    "data.groups_per_batch": Range(1, 2**20),
    "data.num_workers": Range(0, 1024),
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

#: The metadata key of a field's rule (:func:`ranged`).
RANGE = "cpc.range"


def ranged(rule: Range, default: Any = None) -> Any:
    """A dataclass field whose values :func:`check_section` checks against ``rule``.

    For a modality's own fields (``sample_rate: int | None = ranged(Range(1, 10**6))``):
    the rule travels with the field, so the recipe that declares it owns its range too.
    """
    return field(default=default, metadata={RANGE: rule})


def rule_of(section: str, f: Any) -> Range | None:
    """The range of field ``f`` of ``section``: its own (:func:`ranged`), else :data:`RULES`."""
    own = f.metadata.get(RANGE)
    return own if own is not None else RULES.get(f"{section}.{f.name}")


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

    ``section`` is a section's common part or a modality's own part: each field's rule
    is its own (:func:`ranged`) or the one :data:`RULES` holds for ``name.field``.

    Raises:
        ConfigError: Naming ``section.key``, the value and the allowed range.

    """
    assert is_dataclass(section)
    for f in fields(section):
        rule = rule_of(name, f)
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


def check_group_from(spec: str) -> None:
    """Check a ``data.group_from`` spec's syntax (:func:`cpc.data.records.group_rule` uses it).

    Raises:
        ConfigError: An unknown spec or a pattern that does not compile (names it).

    """
    if spec in ("auto", "parent", "grandparent"):
        return
    if spec.startswith("regex:"):
        try:
            re.compile(spec[len("regex:") :])
        except re.error as err:
            raise ConfigError(f"data.group_from={spec!r}: bad regular expression ({err})") from None
        return
    if spec.startswith("column:") and spec[len("column:") :].strip():
        return
    raise ConfigError(
        f"data.group_from={short(spec)}: use auto, parent, grandparent, regex:PATTERN "
        "or column:NAME"
    )
