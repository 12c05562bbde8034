import gzip
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cpc.data.images import (
    DEFAULT_IDX_ROOT,
    IDXImageDataset,
    cpc_image_transform,
    image_folder_dataset,
    read_idx,
    synthetic_textures,
    write_idx,
)
from cpc.errors import DataError


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16", "int32", "float32", "float64"])
def test_idx_round_trip(tmp_path: Path, compress: bool, dtype: str) -> None:
    array = (np.arange(2 * 3 * 5) - 7).reshape(2, 3, 5).astype(dtype)
    path = tmp_path / "x.idx"
    write_idx(path, array, compress=compress)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == compress
    back = read_idx(path)
    assert back.dtype == array.dtype and np.array_equal(back, array)


def test_idx_layout_matches_the_mnist_format(tmp_path: Path) -> None:
    raw = bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 8, 9])  # 1-d ubyte, three labels
    (tmp_path / "labels").write_bytes(raw)
    assert read_idx(tmp_path / "labels").tolist() == [7, 8, 9]


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"\x08\x03\x00\x00" + bytes(20), "bad magic"),
        (bytes([0, 0, 0x42, 1, 0, 0, 0, 1, 0]), "bad magic"),
        (bytes([0, 0, 8, 3, 0, 0]), "truncated"),
        (bytes([0, 0, 8, 1, 0, 0, 0, 5, 1, 2]), "truncated"),
        (bytes([0, 0, 8, 1, 0, 0, 0, 1, 1, 2]), "malformed"),
        (gzip.compress(bytes([0, 0, 8, 1, 0, 0, 0, 9]))[:-6], "gzip"),
    ],
)
def test_idx_errors_name_the_file(tmp_path: Path, content: bytes, match: str) -> None:
    path = tmp_path / "broken-idx1-ubyte"
    path.write_bytes(content)
    with pytest.raises(DataError, match=match) as info:
        read_idx(path)
    assert str(path) in str(info.value)


def _fake_mnist(root: Path, n: int, compress: bool) -> np.ndarray:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    images = rng.integers(0, 256, (n, 28, 28)).astype(np.uint8)
    suffix = ".gz" if compress else ""
    for split in ("train", "t10k"):
        write_idx(root / f"{split}-images-idx3-ubyte{suffix}", images, compress=compress)
        write_idx(root / f"{split}-labels-idx1-ubyte{suffix}", labels, compress=compress)
    return labels


@pytest.mark.parametrize("compress", [False, True])
def test_idx_dataset(tmp_path: Path, compress: bool) -> None:
    labels = _fake_mnist(tmp_path, 6, compress)
    raw = IDXImageDataset(tmp_path, train=False)
    assert len(raw) == 6
    image, label = raw[2]
    assert image.shape == (1, 28, 28) and image.dtype == torch.uint8 and label == labels[2]
    data = IDXImageDataset(tmp_path, transform=cpc_image_transform(24, train=True, channels=1))
    image, _ = data[0]
    assert image.shape == (1, 24, 24) and image.dtype == torch.float32
    assert image.min() >= -1 and image.max() <= 1


def test_idx_dataset_missing_files_say_how_to_get_them(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        IDXImageDataset(tmp_path)


def test_idx_dataset_rejects_mismatched_files(tmp_path: Path) -> None:
    _fake_mnist(tmp_path, 4, False)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(3, np.uint8))
    with pytest.raises(DataError, match="do not match"):
        IDXImageDataset(tmp_path)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("train", [True, False])
def test_transform_shapes_and_range(channels: int, train: bool) -> None:
    transform = cpc_image_transform(32, train=train, channels=channels)
    grey = torch.randint(0, 256, (1, 40, 50), dtype=torch.uint8)
    rgb = Image.fromarray(np.random.default_rng(0).integers(0, 256, (45, 60, 3), np.uint8))
    for image in (grey, rgb):
        out = transform(image)
        assert out.shape == (channels, 32, 32) and out.dtype == torch.float32
        assert -1 <= out.min() and out.max() <= 1
    if not train:  # evaluation is deterministic and maps 0 -> -1, 255 -> 1
        assert torch.equal(transform(grey), transform(grey))
        flat = transform(torch.full((1, 8, 8), 255, dtype=torch.uint8))
        assert torch.allclose(flat, torch.ones_like(flat))


def test_transform_rejects_bad_channels() -> None:
    with pytest.raises(ValueError, match="channels"):
        cpc_image_transform(32, train=True, channels=2)


def test_image_folder_dataset(tmp_path: Path) -> None:
    for cls in ("cats", "dogs"):
        (tmp_path / cls).mkdir()
        Image.new("RGB", (40, 30), (200, 10, 10)).save(tmp_path / cls / "a.png")
    data = image_folder_dataset(tmp_path, size=16, train=False, channels=3)
    assert len(data) == 2 and data.classes == ["cats", "dogs"]
    image, label = data[1]
    assert image.shape == (3, 16, 16) and label == 1


def test_synthetic_textures() -> None:
    images, labels = synthetic_textures(40, 32, 4, seed=0)
    again, labels2 = synthetic_textures(40, 32, 4, seed=0)
    other, _ = synthetic_textures(40, 32, 4, seed=1)
    assert images.shape == (40, 1, 32, 32) and images.dtype == torch.float32
    assert labels.shape == (40,) and set(labels.tolist()) <= {0, 1, 2, 3}
    assert torch.equal(images, again) and torch.equal(labels, labels2)
    assert not torch.equal(images, other)
    assert images.abs().max() <= 1
    rgb, _ = synthetic_textures(3, 16, 4, seed=0, channels=3)
    assert rgb.shape == (3, 3, 16, 16)
    # vertical structure: a row is predictable from the two above it (a sinusoid obeys
    # r[i] = 2 cos(w) r[i-1] - r[i-2]), far better than predicting zero
    clean, _ = synthetic_textures(20, 32, 4, seed=0, noise=0.0)
    rows = clean[:, 0]  # (n, h, w)
    x = torch.stack([rows[:, 1:-1], rows[:, :-2]], dim=-1).reshape(20, -1, 2).double()
    y = rows[:, 2:].reshape(20, -1, 1).double()
    coef = torch.linalg.lstsq(x, y).solution  # per image
    residual = (x @ coef - y).pow(2).mean()
    assert residual < 0.05 * y.pow(2).mean()


@pytest.mark.skipif(
    not (DEFAULT_IDX_ROOT / "t10k-images-idx3-ubyte.gz").exists()
    and not (DEFAULT_IDX_ROOT / "t10k-images-idx3-ubyte").exists(),
    reason="Debian package dataset-fashion-mnist not installed",
)
def test_real_fashion_mnist_test_split() -> None:
    data = IDXImageDataset(train=False)
    assert len(data) == 10000 and data.images.shape == (10000, 28, 28)
    assert sorted(set(data.labels.tolist())) == list(range(10))
    assert torch.bincount(data.labels).tolist() == [1000] * 10
