"""Image data for patch-grid CPC: IDX files, image folders, augmentations, textures.

- :func:`read_idx` / :func:`write_idx` and :class:`IDXImageDataset` read MNIST-style
  IDX files (Fashion-MNIST, MNIST), gzipped or not. The default root is where Debian's
  ``dataset-fashion-mnist`` package installs Fashion-MNIST.
- :func:`cpc_image_transform` builds the augmentations used for patch-grid CPC and
  :func:`image_folder_dataset` applies them to a torchvision ``ImageFolder``.
- :func:`synthetic_textures` draws oriented gratings whose lower rows follow from the
  upper rows, for tests and demos that need no files at all.

Every transform returns a float tensor ``(c, h, w)`` normalised to [-1, 1]: pixels are
scaled to [0, 1], then mapped by ``(x - 0.5) / 0.5``, the same for every channel and
every data set (so no data set statistics are needed).
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision.datasets import ImageFolder
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from cpc.errors import DataError

__all__ = [
    "DEFAULT_IDX_ROOT",
    "IDXImageDataset",
    "cpc_image_transform",
    "image_folder_dataset",
    "read_idx",
    "synthetic_textures",
    "write_idx",
]

DEFAULT_IDX_ROOT = Path("/usr/share/datasets/fashion-mnist")
"""Where Debian's ``dataset-fashion-mnist`` package puts the Fashion-MNIST IDX files."""

# IDX type codes (third byte of the magic number) and their big-endian dtypes
_IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_IDX_CODES: dict[np.dtype, int] = {dt.newbyteorder("="): code for code, dt in _IDX_DTYPES.items()}


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (the MNIST format), gzipped or raw.

    The file starts with a magic number ``0x00 0x00 <type code> <ndim>``, then ``ndim``
    big-endian uint32 sizes, then the data in C order. Gzip is recognised by its own
    magic bytes, not by the file name.

    Args:
        path: The file.

    Returns:
        The array in native byte order (uint8 for MNIST images and labels).

    Raises:
        DataError: Naming the file, for a bad magic number, an unknown type code,
            truncated data or trailing bytes.
        FileNotFoundError: If the file does not exist.

    """
    name = str(path)
    data = Path(path).read_bytes()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as err:
            raise DataError(name, f"corrupt: bad gzip stream ({err})") from err
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] not in _IDX_DTYPES:
        raise DataError(name, f"not an IDX file: bad magic number {data[:4].hex() or '(empty)'}")
    dtype, ndim = _IDX_DTYPES[data[2]], data[3]
    offset = 4 + 4 * ndim
    if len(data) < offset:
        raise DataError(name, f"truncated: header announces {ndim} dims, file ends first")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    expected = math.prod(shape) * dtype.itemsize
    if len(data) - offset != expected:
        kind = "truncated" if len(data) - offset < expected else "malformed"
        raise DataError(
            name, f"{kind}: shape {shape} needs {expected} data bytes, found {len(data) - offset}"
        )
    array = np.frombuffer(data, dtype=dtype, offset=offset).reshape(shape)
    return array.astype(dtype.newbyteorder("="))


def write_idx(path: str | os.PathLike[str], array: np.ndarray, *, compress: bool = False) -> None:
    """Write an array as an IDX file, gzipped when ``compress`` is true.

    Args:
        path: The file to write.
        array: uint8, int8, int16, int32, float32 or float64 data, at most 255 dims.
        compress: Gzip the file (as the MNIST distribution files are).

    Raises:
        ValueError: If the dtype has no IDX type code.

    """
    native = array.dtype.newbyteorder("=")
    if native not in _IDX_CODES or array.ndim > 255:
        raise ValueError(f"no IDX type code for dtype {array.dtype} with {array.ndim} dims")
    code = _IDX_CODES[native]
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    payload = header + np.ascontiguousarray(array, dtype=_IDX_DTYPES[code]).tobytes()
    Path(path).write_bytes(gzip.compress(payload, mtime=0) if compress else payload)


def _find_idx(root: Path, stem: str) -> Path:
    for candidate in (root / stem, root / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"no {stem} or {stem}.gz in {root}. Fashion-MNIST: `apt-get install "
        f"dataset-fashion-mnist` (Debian/Ubuntu, installs to {DEFAULT_IDX_ROOT}), or, when "
        "online, `torchvision.datasets.FashionMNIST(root, download=True)` and pass "
        "root/FashionMNIST/raw; MNIST works the same way."
    )


class IDXImageDataset(Dataset[tuple[torch.Tensor, int]]):
    """MNIST-style images and labels read from IDX files.

    Reads ``train-images-idx3-ubyte`` and ``train-labels-idx1-ubyte`` (``train=True``)
    or the ``t10k-*`` pair, each raw or ``.gz``, into memory.

    Args:
        root: Directory holding the files; defaults to :data:`DEFAULT_IDX_ROOT`.
        train: Read the training split instead of the test split.
        transform: Applied to each image, e.g. :func:`cpc_image_transform`. Without
            one, items are the raw uint8 images.

    Raises:
        FileNotFoundError: If a file is missing; the message says how to get them.
        DataError: If the files are corrupt or disagree in length.

    Shape:
        Items: image ``(1, h, w)`` uint8 (or whatever ``transform`` returns) and an
        int label.

    """

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        train: bool = True,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        self.root = Path(root) if root is not None else DEFAULT_IDX_ROOT
        split = "train" if train else "t10k"
        image_path = _find_idx(self.root, f"{split}-images-idx3-ubyte")
        label_path = _find_idx(self.root, f"{split}-labels-idx1-ubyte")
        images, labels = read_idx(image_path), read_idx(label_path)
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise DataError(
                str(image_path),
                f"malformed: images {images.shape} do not match labels {labels.shape}",
            )
        self.images = torch.from_numpy(images)  # (n, h, w)
        self.labels = torch.from_numpy(labels.astype(np.int64))  # (n,)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = self.images[index].unsqueeze(0)  # (1, h, w)
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.labels[index])


class _ToChannels(torch.nn.Module):
    """Convert a ``(c, h, w)`` image to ``channels`` (grey to RGB by copying, RGB to grey)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        have = image.shape[-3]
        if have == self.channels:
            return image
        if have == 1 and self.channels == 3:
            return image.expand(*image.shape[:-3], 3, *image.shape[-2:]).clone()
        if have == 3 and self.channels == 1:
            return TF.rgb_to_grayscale(image, num_output_channels=1)
        raise ValueError(f"cannot convert an image with {have} channels to {self.channels}")


def cpc_image_transform(size: int, train: bool, channels: int = 3) -> v2.Compose:
    """Build the per-image transform for patch-grid CPC.

    Training follows CPC v2's augmentations (Hénaff et al., 2019), applied per image
    rather than per patch: a random resized crop keeping 35-100% of the area (gentler
    than ImageNet's 8%, so small images keep enough rows for the grid), a horizontal
    flip, colour jitter (brightness, contrast, saturation 0.4, hue 0.1) with probability
    0.8 and, for RGB, random grey-scale with probability 0.2. Evaluation resizes the
    shorter side to ``size`` and takes the central crop.

    Args:
        size: Output height and width in pixels.
        train: Random augmentations (True) or deterministic resize and crop (False).
        channels: Output channels, 1 (grey) or 3 (RGB); inputs are converted.

    Returns:
        A callable taking a PIL image or a uint8/float tensor ``(c, h, w)``.

    Raises:
        ValueError: On a non-positive size or a channel count other than 1 or 3.

    Shape:
        Output ``(channels, size, size)`` float32 in [-1, 1].

    """
    if size <= 0 or channels not in (1, 3):
        raise ValueError(f"need size > 0 and channels in (1, 3), got {size}, {channels}")
    steps: list[Callable] = [v2.ToImage(), _ToChannels(channels)]
    if train:
        jitter = v2.ColorJitter(0.4, 0.4, 0.4, 0.1) if channels == 3 else v2.ColorJitter(0.4, 0.4)
        steps += [
            v2.RandomResizedCrop(size, scale=(0.35, 1.0), antialias=True),
            v2.RandomHorizontalFlip(),
            v2.RandomApply([jitter], p=0.8),
        ]
        if channels == 3:
            steps.append(v2.RandomGrayscale(p=0.2))
    else:
        steps += [v2.Resize(size, antialias=True), v2.CenterCrop(size)]
    steps += [
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize([0.5] * channels, [0.5] * channels),
    ]
    return v2.Compose(steps)


def image_folder_dataset(
    root: str | os.PathLike[str], *, size: int = 64, train: bool = True, channels: int = 3
) -> ImageFolder:
    """Read ``root/<class>/<image>`` with torchvision's ``ImageFolder`` and CPC transforms.

    Args:
        root: Directory with one sub-directory per class.
        size: Output height and width.
        train: Training augmentations or evaluation resize-and-crop.
        channels: 1 or 3 output channels.

    Returns:
        The data set; items are ``(image, class index)``.

    Shape:
        Images ``(channels, size, size)`` float32 in [-1, 1].

    """
    return ImageFolder(str(root), transform=cpc_image_transform(size, train, channels))


def synthetic_textures(
    n: int,
    size: int,
    num_classes: int,
    seed: int,
    *,
    channels: int = 1,
    noise: float = 0.1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw oriented sinusoidal gratings, one orientation and frequency per class.

    Class ``k`` has orientation ``pi * k / num_classes`` and a period of 6 to 14 pixels
    (fixed per class, independent of the seed, so different seeds give new samples of
    the same classes). Each image draws a random phase, a frequency jitter of +-5% and
    Gaussian pixel noise of std ``noise``, so its lower rows follow from its upper rows
    up to the noise. RGB images tint each class with its own colour.

    Args:
        n: Number of images.
        size: Height and width in pixels.
        num_classes: Number of texture classes; labels are drawn uniformly.
        seed: Seed of the labels, phases, jitter and noise.
        channels: 1 or 3.
        noise: Standard deviation of the additive pixel noise.

    Returns:
        Images in [-1, 1] and their int64 labels.

    Raises:
        ValueError: On non-positive sizes or a channel count other than 1 or 3.

    Shape:
        images ``(n, channels, size, size)`` float32, labels ``(n,)``.

    """
    if n < 0 or size <= 0 or num_classes <= 0 or channels not in (1, 3):
        raise ValueError(
            f"need n >= 0, size > 0, num_classes > 0, channels in (1, 3); got {n}, {size}, "
            f"{num_classes}, {channels}"
        )
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(num_classes, (n,), generator=gen)
    classes = torch.arange(num_classes, dtype=torch.float64)
    angle = math.pi * classes / num_classes  # (k,)
    period = 6.0 + 8.0 * ((classes * 0.618034) % 1.0)  # (k,) spread over [6, 14)
    tint = 0.6 + 0.4 * torch.stack(
        [torch.cos(2 * math.pi * (classes / num_classes + j / 3)) for j in range(3)], dim=1
    )  # (k, 3)
    phase = 2 * math.pi * torch.rand(n, generator=gen, dtype=torch.float64)  # (n,)
    freq = (1 + 0.05 * (2 * torch.rand(n, generator=gen, dtype=torch.float64) - 1)) / period[
        labels
    ]  # (n,) cycles per pixel
    ys, xs = torch.meshgrid(
        torch.arange(size, dtype=torch.float64), torch.arange(size, dtype=torch.float64),
        indexing="ij",
    )  # fmt: skip
    theta = angle[labels][:, None, None]  # (n, 1, 1)
    along = xs * torch.cos(theta) + ys * torch.sin(theta)  # (n, h, w)
    wave = torch.sin(2 * math.pi * freq[:, None, None] * along + phase[:, None, None])
    images = wave[:, None] * 0.8  # (n, 1, h, w)
    if channels == 3:
        images = images * tint[labels][:, :, None, None]  # (n, 3, h, w)
    images = images + noise * torch.randn(images.shape, generator=gen, dtype=torch.float64)
    return images.clamp(-1.0, 1.0).float(), labels
