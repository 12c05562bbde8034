"""A fourth modality, defined entirely in this file: a toy 3-axis accelerometer stream.

The proof that a modality is one module. Everything modality-specific lives here: its
own ``model.*`` and ``data.*`` keys (two dataclasses, ranges included), its part of the
data facts saved in checkpoints, its file reading (``.npy`` arrays of shape (t, 3)),
and a builder made from the package's parts. Registered, it pretrains through
``cpc pretrain`` and extracts features through ``cpc extract``, in-process, with its
keys written flat in the YAML like any shipped modality's.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
import torch

from cpc.checkpoints.loading import load_model, read_meta
from cpc.cli import main
from cpc.config import ConfigError, load_config
from cpc.config.ranges import WIDTH, Range, ranged
from cpc.data.collate import pad_collate
from cpc.data.recipe import DataInfo, DataSplits, Facts, FileItems, sequence_splits
from cpc.data.recipes.sequence import SequenceRecipe
from cpc.data.records import Record, group_rule, list_records
from cpc.data.registry import register, unregister
from cpc.data.windows import FileDataset, FileSource, WindowDataset
from cpc.errors import DataError
from cpc.models.builders import HeadSettings, assemble, head_settings
from cpc.models.cpc import CPCModel
from cpc.models.encoders import ConvEncoder

if TYPE_CHECKING:
    from cpc.config import Config

pytestmark = pytest.mark.usefixtures("one_thread")

AXES = 3
#: The accelerometer's head: a small GRU, 4 offsets, negatives from the same stream.
ACCEL_HEAD = HeadSettings(context_dim=32, num_offsets=4, num_negatives=16, negatives="sequence")


@dataclass
class AccelModel:
    """``model.*`` keys of the accelerometer (``cpc_accel``'s arguments)."""

    channels: int | None = ranged(WIDTH)
    """Width of the encoder (16)."""
    stride: int | None = ranged(Range(1, 64))
    """Stride of the first convolution (2)."""


@dataclass
class AccelData:
    """``data.*`` keys of the accelerometer."""

    hz: float = ranged(Range(0, 1e6, open_low=True), 50.0)
    """Sampling rate of the files."""
    gravity: bool = True
    """Keep gravity (each axis's mean); false: subtract each file's mean per axis."""


@dataclass
class AccelFacts(Facts):
    """What extraction needs to read new streams as the training streams were read."""

    hz: float | None = ranged(Range(0, 1e6, open_low=True))
    gravity: bool | None = None

    @property
    def seconds_per_sample(self) -> float | None:
        return 1.0 / self.hz if self.hz else None


def cpc_accel(
    *, channels: int = 16, stride: int = 2, head: HeadSettings | None = None, **overrides: Any
) -> CPCModel:
    """CPC on (t, 3) accelerometer streams: two convolutions, then the shared head."""
    settings = head_settings(ACCEL_HEAD, head, **overrides)
    encoder = ConvEncoder(AXES, channels, (4, 3), (stride, 1), "layer", None)
    return assemble(encoder, settings, settings.k_min or 1)


class AccelSource(FileSource):
    """``.npy`` files of shape (t, 3), finite; optionally without gravity."""

    def __init__(self, records: list[Record], min_length: int, strict: bool, gravity: bool):
        self.gravity = gravity
        super().__init__(records, min_length, strict, unit="samples")

    def _load(self, path: str) -> np.ndarray:
        try:
            x = np.load(path, allow_pickle=False).astype(np.float32)
        except (OSError, ValueError) as err:
            raise DataError(path, f"unreadable: {err}") from err
        if x.ndim != 2 or x.shape[1] != AXES or not np.isfinite(x).all():
            raise DataError(path, f"need finite (t, {AXES}) samples, got {x.shape}")
        return x if self.gravity else x - x.mean(axis=0)

    def probe(self, path: str) -> tuple[int, Any]:
        return self._load(path).shape[0], None

    def read(self, index: int, offset: int = 0, frames: int | None = None) -> torch.Tensor:
        x = self._load(self.paths[index])
        end = None if frames is None else offset + frames
        return torch.from_numpy(x[offset:end].copy())


def _records(spec: str, group_from: str = "auto") -> list[Record]:
    return list_records(spec, (".npy",), group_rule(group_from))


class AccelRecipe(SequenceRecipe):
    """Accelerometer streams: random windows for training, whole files for extraction."""

    name = "accel"
    builder = staticmethod(cpc_accel)
    model_fields = AccelModel
    data_fields = AccelData
    facts = AccelFacts

    def datasets(self, config: Config, min_length: int) -> DataSplits:
        data, own = config.data, config.data.fields_as(AccelData)

        def build(records: list[Record], train: Any) -> WindowDataset:
            source = AccelSource(records, min_length, data.strict, own.gravity)
            return WindowDataset(
                source, data.window, cover=True, seed=config.run.seed, strict=data.strict
            )

        def records(spec: str) -> list[Record]:
            return _records(spec, data.group_from)

        train, val = sequence_splits(data, config.run.seed, records, build)
        info = DataInfo(self.name, AccelFacts(own.hz, own.gravity), list(train.group_names))
        return DataSplits(train, val, pad_collate, info)

    def file_dataset(self, source: str, info: DataInfo, min_length: int, strict: bool) -> FileItems:
        facts = info.facts_as(AccelFacts)
        gravity = True if facts.gravity is None else facts.gravity
        return FileDataset(AccelSource(_records(source), min_length, strict, gravity))


@pytest.fixture
def accel() -> Iterator[AccelRecipe]:
    recipe = register(AccelRecipe())
    yield recipe
    unregister(recipe.name)


def _walks(folder: Path, lengths: list[int]) -> Path:
    """Gravity on z plus a slow sway: one (t, 3) array per file, two wearers."""
    rng = np.random.default_rng(0)
    for i, n in enumerate(lengths):
        t = np.arange(n)[:, None] / 50.0
        sway = np.sin(2 * np.pi * (1.5 + 0.2 * i) * t + rng.random(AXES))
        x = sway + np.array([0.0, 0.0, 9.81]) + 0.05 * rng.standard_normal((n, AXES))
        (folder / f"wearer{i % 2}").mkdir(parents=True, exist_ok=True)
        np.save(folder / f"wearer{i % 2}" / f"walk{i}.npy", x.astype(np.float32))
    return folder


CONFIG = """\
model:
  modality: accel
  channels: 8
  stride: 2
  context_dim: 8
  num_offsets: 2
  num_negatives: 4
data:
  train: {train}
  window: 64
  batch_size: 2
  hz: 100
  gravity: false
optim:
  max_steps: 2
  warmup_steps: 1
run:
  out_dir: {run}
  device: cpu
  progress: false
  ckpt_every: 1
  val_every: 1000
"""


def test_a_fourth_modality_pretrains_and_extracts_through_the_cli(accel, tmp_path):
    train = _walks(tmp_path / "walks", [200, 150, 180, 220])
    run = tmp_path / "run"
    (tmp_path / "accel.yaml").write_text(CONFIG.format(train=train, run=run))
    assert main(["pretrain", str(tmp_path / "accel.yaml")]) == 0
    meta = read_meta(run)
    assert meta["step"] == 2
    assert meta["config"]["model"]["stride"] == 2 and meta["config"]["data"]["hz"] == 100.0
    assert meta["data"]["hz"] == 100.0 and meta["data"]["gravity"] is False
    assert meta["data"]["groups"] == ["wearer0", "wearer1"]

    new = _walks(tmp_path / "new", [120, 90])
    out = tmp_path / "feats"
    argv = ["extract", "--checkpoint", str(run), "--input", str(new), "--output", str(out)]
    assert main(argv) == 0
    model = load_model(run)
    rows = list(csv.DictReader((out / "index.csv").open()))
    assert len(rows) == 2
    for row in rows:
        length = np.load(row["path"]).shape[0]
        steps = int(model.encoder.output_lengths(torch.tensor([length]))[0])
        features = np.load(out / row["features"])
        assert features.shape == (steps, 8)  # (s, context_dim)
        assert np.isfinite(features).all()


def test_its_keys_are_checked_and_only_its_own(accel, tmp_path):
    base = [f"data.train={tmp_path}", "model.modality=accel"]
    with pytest.raises(ConfigError, match=r"model.stride must be >= 1, got 0"):
        load_config(None, [*base, "model.stride=0"])
    with pytest.raises(ConfigError, match=r"data.gravity must be true or false"):
        load_config(None, [*base, "data.gravity=maybe"])
    # another modality's key: unknown for this one, naming the keys it allows
    with pytest.raises(ConfigError, match=r"'model.patch_size' for modality 'accel'.*'stride'"):
        load_config(None, [*base, "model.patch_size=8"])
    with pytest.raises(ConfigError, match=r"'data.image_size' for modality 'accel'.*'gravity'"):
        load_config(None, [*base, "data.image_size=32"])
    config = load_config(None, [*base, "model.stride=3", "data.hz=25"])
    assert config.model.fields_as(AccelModel).stride == 3
    assert config.data.fields_as(AccelData).hz == 25.0
    assert config.model.to_dict()["stride"] == 3 and config.data.to_dict()["hz"] == 25.0
