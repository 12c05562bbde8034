"""Check an untrusted checkpoint's sizes before anything is allocated.

A checkpoint's ``meta.json`` decides what model is built, so a crafted one
(``channels: 1000000000``, ``num_offsets: 1e8``) could make a loader allocate hundreds
of gigabytes. The defence has three layers, all before the real model is built:

1. ``meta.json`` is read with a size limit and its config is validated like any
   user's (:mod:`cpc.config.ranges`: every size bounded, the offsets fit);
2. the model that config describes is built on the meta device, which allocates
   nothing and gives every tensor's expected name and shape;
3. the weight file's header (safetensors: an 8-byte length and a JSON table of names,
   dtypes, shapes and byte offsets) is read without reading the tensors, checked to be
   consistent with the file's size, and compared with those shapes.

Only when every name and shape agrees is the model built, and then its size is bounded
by the weight file the user already has on disk.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from cpc.config import ModelConfig
from cpc.data.registry import check_model
from cpc.errors import UnsafeCheckpointError
from cpc.models.cpc import CPCModel

MAX_HEADER_BYTES = 100 << 20  # safetensors' own limit
_DTYPE_BYTES = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
    "I16": 2,
    "U16": 2,
    "F16": 2,
    "BF16": 2,
    "I32": 4,
    "U32": 4,
    "F32": 4,
    "I64": 8,
    "U64": 8,
    "F64": 8,
}


@dataclass(frozen=True)
class TensorEntry:
    """One tensor of a safetensors header: its dtype and shape (nothing is read)."""

    dtype: str
    shape: tuple[int, ...]

    @property
    def numel(self) -> int:
        """Number of elements."""
        return math.prod(self.shape)


def read_header(path: str | Path) -> dict[str, TensorEntry]:
    """The tensor table of a safetensors file, checked against the file's size.

    Raises:
        UnsafeCheckpointError: Not a safetensors file, an oversized or malformed header,
            or byte ranges that the file does not hold.

    """
    path = Path(path)
    size = path.stat().st_size
    with path.open("rb") as f:
        prefix = f.read(8)
        if len(prefix) < 8:
            raise UnsafeCheckpointError(f"{path}: too short to be a safetensors file")
        length = int.from_bytes(prefix, "little")
        if length > min(MAX_HEADER_BYTES, size - 8):
            raise UnsafeCheckpointError(
                f"{path}: header of {length} bytes claimed in a {size}-byte file"
            )
        raw = f.read(length)
    try:
        table = json.loads(raw)
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError too
        raise UnsafeCheckpointError(f"{path}: unreadable safetensors header") from None
    if not isinstance(table, dict):
        raise UnsafeCheckpointError(f"{path}: unreadable safetensors header")
    table.pop("__metadata__", None)
    data_bytes = size - 8 - length
    entries = {}
    for name, entry in table.items():
        entries[name] = _entry(path, name, entry, data_bytes)
    return entries


def _entry(path: Path, name: str, entry: object, data_bytes: int) -> TensorEntry:
    bad = UnsafeCheckpointError(f"{path}: malformed header entry for tensor {name!r}")
    if not isinstance(entry, dict):
        raise bad
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if (
        dtype not in _DTYPE_BYTES
        or not isinstance(shape, list)
        or not all(isinstance(n, int) and 0 <= n for n in shape)
        or not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(isinstance(n, int) for n in offsets)
    ):
        raise bad
    begin, end = offsets
    if not 0 <= begin <= end <= data_bytes or end - begin != math.prod(shape) * _DTYPE_BYTES[dtype]:
        raise UnsafeCheckpointError(
            f"{path}: tensor {name!r} claims bytes {begin}..{end} for shape {shape}, "
            f"but the file holds {data_bytes} bytes of data"
        )
    return TensorEntry(dtype, tuple(shape))


def skeleton(model: ModelConfig) -> CPCModel:
    """The model a (validated) config describes, on the meta device: shapes, no memory.

    Raises:
        ConfigError: The builder rejects the settings.

    """
    return check_model(model)


def weight_mismatch(
    found: dict[str, tuple[int, ...]], expected: dict[str, tuple[int, ...]], limit: int = 5
) -> str | None:
    """What differs between a weight file's table and a model's, or None if nothing does.

    Names are compared first (unknown and missing keys), then shapes; at most ``limit``
    of each are named.
    """

    def head(keys: list[str]) -> str:
        return f"{keys[:limit]}{'...' if len(keys) > limit else ''}"

    unknown = sorted(set(found) - set(expected))
    missing = sorted(set(expected) - set(found))
    if unknown or missing:
        return (
            "weights do not match the model its config describes: "
            f"unknown keys {head(unknown)}, missing keys {head(missing)}"
        )
    bad = [
        f"{k}: file {found[k]} vs model {shape}"
        for k, shape in expected.items()
        if found[k] != shape
    ]
    if bad:
        return f"weight shapes differ from the config's model: {'; '.join(bad[:limit])}"
    return None


def check_weights(path: str | Path, model: ModelConfig) -> dict[str, TensorEntry]:
    """Compare a weight file's header with the model ``model`` describes; nothing loaded.

    Returns:
        The header's tensor table.

    Raises:
        UnsafeCheckpointError: Malformed header, or names or shapes that differ.

    """
    header = read_header(path)
    expected = {k: tuple(v.shape) for k, v in skeleton(model).state_dict().items()}
    problem = weight_mismatch({k: entry.shape for k, entry in header.items()}, expected)
    if problem:
        raise UnsafeCheckpointError(f"{path}: {problem}")
    return header
