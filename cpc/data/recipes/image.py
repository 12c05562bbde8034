"""The image-row recipe: seeded augmentations, stacked batches, grid features per image.

Sources (``data.train`` / ``data.val``, and ``cpc extract --input``): an image folder
(searched recursively; for training, torchvision's ``ImageFolder`` layout), ``idx:DIR``
(MNIST-style IDX files; the validation split, and ``idx-t10k:DIR`` for extraction, is
the ``t10k`` pair), or ``textures`` (synthetic gratings, no files).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import Dataset, Subset, TensorDataset

from cpc.config.ranges import DEPTH, WIDTH, ranged
from cpc.data import images as im
from cpc.data.errors import SkipReport, load_or_next
from cpc.data.recipe import DataInfo, DataSplits, Facts, FileItems, Recipe, split_indices
from cpc.data.records import list_files
from cpc.data.seeds import mix_seed
from cpc.errors import ConfigError, DataError, EmptyDatasetError
from cpc.models.builders import cpc_image

if TYPE_CHECKING:
    from cpc.config import Config

#: Synthetic texture images per split (``data.train: textures``).
TEXTURE_COUNTS = {"train": 2048, "val": 256}
TEXTURE_CLASSES = 8
#: Image files ``cpc extract`` reads from a folder.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


class SeededImages(Dataset[dict[str, Any]]):
    """Image items whose random augmentation is a function of ``(seed, epoch, index)``.

    Augmentations draw from torch's global generator; each item forks it, seeds it from
    ``(seed, epoch, index)`` and restores it, so neither DataLoader workers nor a resume
    change what an item looks like. Unreadable images are reported and replaced by the
    next one while training (:func:`cpc.data.errors.load_or_next`).

    Shape:
        item ``"x"``: ``(c, h, w)`` float32; ``"group"`` (the class), ``"index"``: ints.
    """

    def __init__(
        self,
        items: Dataset[Any],
        seed: int,
        paths: Sequence[str] | None = None,
        strict: bool = False,
    ) -> None:
        self.items, self.seed, self.epoch, self.strict = items, seed, 0, strict
        self._paths = paths
        self.report = SkipReport(checked=len(self))
        self._bad: set[int] = set()

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose augmentations are drawn."""
        self.epoch = epoch

    @property
    def groups(self) -> list[int]:
        """One group: image batches are not grouped."""
        return [0] * len(self)

    def __len__(self) -> int:
        return len(self.items)  # type: ignore[arg-type]

    def _path(self, index: int) -> str:
        return self._paths[index] if self._paths is not None else f"image {index}"

    def _load(self, index: int) -> dict[str, Any]:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(mix_seed(self.seed, self.epoch, index))
            try:
                image, label = self.items[index]
            except (OSError, ValueError) as err:
                raise DataError(self._path(index), f"unreadable: {err}") from err
        return {"x": image, "group": int(label), "index": index}

    def __getitem__(self, index: int) -> dict[str, Any]:
        return load_or_next(
            index, len(self), self._load, self._bad, self.report, self._path, self.strict
        )


def image_collate(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Stack images (all one size) and their groups; images carry no lengths.

    Shape:
        output ``"x"``: ``(b, c, h, w)``; ``"group"``, ``"index"``: ``(b,)``.
    """
    return {
        "x": torch.stack([torch.as_tensor(item["x"]) for item in items]),
        "group": torch.tensor([item["group"] for item in items], dtype=torch.long),
        "index": torch.tensor([item["index"] for item in items], dtype=torch.long),
    }


class ImageFiles(Dataset[dict[str, Any]]):
    """Whole images for extraction, with the evaluation transform; never substituted.

    Args:
        source: An image folder (recursive), ``idx:DIR`` (training IDX files) or
            ``idx-t10k:DIR`` (test IDX files).
        size: The crop size of training (resize and centre crop).
        channels: Channels the model takes.

    Shape:
        item ``"x"``: ``(channels, size, size)``; ``"path"``: the file (IDX:
        ``FILE#index``).

    """

    def __init__(self, source: str, size: int, channels: int) -> None:
        self.transform = im.cpc_image_transform(size, False, channels)
        self.report = SkipReport()
        self._idx: im.IDXImageDataset | None = None
        if source.startswith(("idx:", "idx-t10k:")):
            prefix, root = source.split(":", 1)
            self._idx = im.IDXImageDataset(root or None, train=prefix == "idx")
            self.paths = [f"{source}#{i}" for i in range(len(self._idx))]
        else:
            self.paths = [str(p) for p in list_files(source, IMAGE_EXTENSIONS)]
        self.report.checked = len(self.paths)
        if not self.paths:
            raise EmptyDatasetError(source, self.report)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict[str, Any]:
        path = self.paths[index]
        image: Any
        if self._idx is not None:
            image = self._idx.images[index].unsqueeze(0)  # (1, h, w) uint8
        else:
            from PIL import Image, UnidentifiedImageError

            try:
                with Image.open(path) as file:
                    image = file.convert("RGB")
            except (OSError, UnidentifiedImageError, ValueError) as err:
                raise DataError(path, f"unreadable: {err}") from err
        return {"x": self.transform(image), "path": path, "index": index}


@dataclass
class ImageModel:
    """``model.*`` keys of image rows (:func:`~cpc.models.builders.cpc_image`'s arguments)."""

    in_channels: int | None = ranged(WIDTH)
    """Input channels (3: RGB)."""
    patch_size: int | None = ranged(WIDTH)
    """Patch size in pixels (CPC v2: 64)."""
    patch_stride: int | None = ranged(WIDTH)
    """Patch stride in pixels (CPC v2: 32, half-overlapping patches)."""
    widths: list[int] | None = ranged(WIDTH)
    """Channels of each stage of the patch encoder."""
    blocks: int | None = ranged(DEPTH)
    """Residual blocks per stage."""
    dim: int | None = ranged(WIDTH)
    """Latent size of a patch."""


@dataclass
class ImageData:
    """``data.*`` keys of image rows."""

    image_size: int = ranged(WIDTH, 256)
    """Crop size (CPC v2: 256, giving a 7x7 grid of 64-pixel patches)."""
    augment: bool = True
    """CPC v2's random crops and colour augmentations of training images."""


@dataclass
class ImageFacts(Facts):
    """What extraction needs to read new images as the training images were read."""

    image_size: int | None = ranged(WIDTH)
    """The crop size (None, in older checkpoints: 256)."""
    in_channels: int | None = ranged(WIDTH)
    """Channels the model takes (None, in older checkpoints: 3)."""


class ImageRecipe(Recipe):
    """Images: patch grids of ``data.image_size`` crops (CPC v2's 256: a 7x7 grid)."""

    name = "image"
    builder = staticmethod(cpc_image)
    model_fields = ImageModel
    data_fields = ImageData
    facts = ImageFacts
    length_field = "image_size"
    length_unit = "pixel rows"
    layout = "grid"

    def check(self, config: Config) -> None:
        if config.data.group_by != "none":
            raise ConfigError("data.group_by=speaker needs audio or signal data")

    def datasets(self, config: Config, min_length: int) -> DataSplits:
        data, seed = config.data, config.run.seed
        channels = int(self.setting(config.model, "in_channels"))
        own = data.fields_as(ImageData)
        size, augment = own.image_size, own.augment

        def source(spec: str, train: bool, split: str) -> tuple[Dataset[Any], list[str] | None]:
            if spec == "textures":
                offset = 0 if split == "train" else 1
                x, y = im.synthetic_textures(
                    TEXTURE_COUNTS[split], size, TEXTURE_CLASSES, seed + offset, channels=channels
                )
                return TensorDataset(x, y), None
            if spec.startswith("idx:"):
                transform = im.cpc_image_transform(size, train and augment, channels)
                root = spec[4:] or None
                return im.IDXImageDataset(root, train=split == "train", transform=transform), None
            if not Path(spec).is_dir():
                raise ConfigError(f"data source {spec!r}: no such image folder (or use idx:DIR)")
            folder = im.image_folder_dataset(
                spec, size=size, train=train and augment, channels=channels
            )
            return folder, [path for path, _ in folder.samples]

        def wrap(items: Dataset[Any], paths: list[str] | None, idx: list[int] | None = None) -> Any:
            if idx is not None:
                items = Subset(items, idx)
                paths = None if paths is None else [paths[i] for i in idx]
            return SeededImages(items, seed, paths, data.strict)

        info = DataInfo(self.name, ImageFacts(image_size=size, in_channels=channels))
        train_set, train_paths = source(data.train, True, "train")
        if data.val:
            # An IDX directory's validation split is its t10k pair; textures get new draws.
            val_set, val_paths = source(data.val, False, "val")
            return DataSplits(
                wrap(train_set, train_paths), wrap(val_set, val_paths), image_collate, info
            )
        held, kept = split_indices(len(train_set), data.val_fraction, seed)  # type: ignore[arg-type]
        if not held:
            return DataSplits(wrap(train_set, train_paths), None, image_collate, info)
        plain, _ = source(data.train, False, "train")  # the same items, evaluation transform
        train, val = wrap(train_set, train_paths, kept), wrap(plain, train_paths, held)
        return DataSplits(train, val, image_collate, info)

    def file_dataset(self, source: str, info: DataInfo, min_length: int, strict: bool) -> FileItems:
        facts = info.facts_as(ImageFacts)
        return ImageFiles(source, facts.image_size or 256, facts.in_channels or 3)
