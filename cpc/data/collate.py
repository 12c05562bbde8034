"""Batching variable-length items: right zero-padding plus valid lengths, never truncation.

Audio items carry ``"x"`` of shape ``(t,)`` and signal items ``(t, c)``; both are padded
along time to the longest item of the batch, and the true lengths travel with them as
``"lengths"`` so the encoder can convert them to valid steps and no loss term scores
padding.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch


def pad_collate(items: Sequence[Mapping[str, Any]], pad_multiple: int = 1) -> dict[str, Any]:
    """Collate data set items into one padded batch.

    ``"x"`` is padded at the end along time with zeros to the longest item (rounded up
    to a multiple of ``pad_multiple``, e.g. an encoder's downsampling factor).
    ``"length"`` becomes the long tensor ``"lengths"`` (an item without one counts its
    whole ``x``). Other fields: ints become a long tensor, floats a float tensor,
    tensors of one shape are stacked, anything else (paths) stays a list.
    Use ``functools.partial(pad_collate, pad_multiple=160)`` for a DataLoader.

    Args:
        items: Dicts with at least ``"x"``, all with the same keys.
        pad_multiple: The padded length is a multiple of this.

    Returns:
        The batch, with ``"x"`` and ``"lengths"`` plus every other field.

    Shape:
        item ``"x"``: ``(t_i,)`` or ``(t_i, c)``.
        output ``"x"``: ``(b, t)`` or ``(b, t, c)`` with ``t >= max_i t_i``;
        ``"lengths"``: ``(b,)``.

    """
    if not items:
        raise ValueError("pad_collate needs at least one item")
    if pad_multiple < 1:
        raise ValueError(f"pad_multiple must be positive, got {pad_multiple}")
    xs = [torch.as_tensor(item["x"]) for item in items]
    trailing = {tuple(x.shape[1:]) for x in xs}
    if len(trailing) != 1:
        raise ValueError(f"items disagree on the shape after time: {sorted(trailing)}")
    longest = max(int(x.shape[0]) for x in xs)
    longest = -(-longest // pad_multiple) * pad_multiple
    x = xs[0].new_zeros((len(xs), longest, *xs[0].shape[1:]))  # (b, t) or (b, t, c)
    for i, xi in enumerate(xs):
        x[i, : xi.shape[0]] = xi
    lengths = [int(item.get("length", xi.shape[0])) for item, xi in zip(items, xs, strict=True)]
    if any(n > xi.shape[0] for n, xi in zip(lengths, xs, strict=True)):
        raise ValueError(f"an item's length exceeds its x: lengths {lengths}")
    batch: dict[str, Any] = {"x": x, "lengths": torch.tensor(lengths, dtype=torch.long)}
    for key in items[0]:
        if key in ("x", "length"):
            continue
        batch[key] = _stack([item[key] for item in items])
    return batch


def _stack(values: list[Any]) -> Any:
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return torch.tensor(values, dtype=torch.long)
    if all(isinstance(v, float) for v in values):
        return torch.tensor(values, dtype=torch.float32)
    if all(isinstance(v, torch.Tensor) for v in values):
        if len({tuple(v.shape) for v in values}) == 1:
            return torch.stack(values)
    return list(values)
