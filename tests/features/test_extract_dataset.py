"""``extract_dataset``: one row per file whose features were written, none substituted,
for files read whole and files streamed block by block, and what ``extract.json`` says."""

import csv
import json

import numpy as np
import pytest
import soundfile as sf
import torch

import cpc
from cpc.data.audio import AudioFileDataset
from cpc.data.errors import SkipReport
from cpc.errors import DataError
from cpc.features.extract import _GridArray, extract_dataset, write_grid_features

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(padding=None) -> cpc.CPCModel:
    torch.manual_seed(0)
    model = cpc.cpc_audio(
        channels=8, kernels=(10, 8, 4), strides=(5, 4, 2), padding=padding, context="gru",
        context_dim=6, num_offsets=2,
    )  # fmt: skip
    return model.eval()


class Items:
    """Whole items in memory (not streamable): one of them fails to load."""

    def __init__(self, waves: dict[str, np.ndarray | None]) -> None:
        self.waves = list(waves.items())
        self.report = SkipReport()

    def __len__(self) -> int:
        return len(self.waves)

    def __getitem__(self, n: int) -> dict:
        path, wave = self.waves[n]
        if wave is None:
            raise DataError(path, "unreadable: not audio")
        return {"x": torch.from_numpy(wave), "path": path}


def whole(model, wave) -> np.ndarray:
    with torch.no_grad():
        return model.features(torch.from_numpy(wave)[None])[0][0, :, 0].numpy()


def rows(out):
    return list(csv.reader((out / "index.csv").open()))


@pytest.mark.parametrize("stream_samples", [None, 333])
def test_whole_items_one_row_each_and_a_failing_one_is_reported_not_replaced(
    tmp_path, stream_samples
):
    rng = np.random.default_rng(0)
    waves = {
        "in/a.wav": (0.1 * rng.standard_normal(3000)).astype(np.float32),
        "in/b.wav": None,
        "in/c.wav": (0.1 * rng.standard_normal(4100)).astype(np.float32),
    }
    items, model = Items(waves), tiny()
    out = tmp_path / "new" / "feats"  # parents made
    for _ in range(2):  # again into the same folder
        index = extract_dataset(
            model, items, out, chunk_steps=4, step_seconds=0.01, stream_samples=stream_samples
        )
    got = rows(out)
    assert index == out / "index.csv"
    assert got[0] == ["path", "features", "steps", "dim"]
    assert [r[:2] for r in got[1:]] == [["in/a.wav", "000000_a.npy"], ["in/c.wav", "000002_c.npy"]]
    for path, name, steps, dim in got[1:]:
        feats = np.load(out / name)
        want = whole(model, waves[path])
        assert feats.shape == (int(steps), int(dim)) == want.shape
        np.testing.assert_allclose(feats, want, rtol=1e-5, atol=1e-6)
    assert items.report.skipped[0] == ("in/b.wav", "unreadable: not audio")
    meta = json.loads((out / "extract.json").read_text())
    assert {k: v for k, v in meta.items() if k != "frame_rule"} == {
        "layer": "context",
        "downsampling": 40,
        "receptive_field": model.receptive_field,
        "left_padding": 0,
        "step_seconds": 0.01,
        "files": 2,
    }
    assert "left_padding" in meta["frame_rule"]


@pytest.mark.parametrize("stream_samples", [None, 333])
def test_streamed_files_a_file_failing_half_way_is_reported_and_the_next_one_written(
    tmp_path, stream_samples
):
    rng = np.random.default_rng(1)
    bad = (0.1 * rng.standard_normal(9000)).astype(np.float32)
    bad[6000] = np.inf  # found while streaming, after the file was opened
    good = (0.1 * rng.standard_normal(5000)).astype(np.float32)
    sf.write(tmp_path / "a.wav", bad, 16000, subtype="FLOAT")
    sf.write(tmp_path / "b.wav", good, 16000, subtype="FLOAT")
    model = tiny(padding=(3, 2, 1))
    dataset = AudioFileDataset(tmp_path)
    out = tmp_path / "feats"
    extract_dataset(model, dataset, out, "encoder", chunk_steps=3, stream_samples=stream_samples)
    got = rows(out)[1:]
    assert [r[:2] for r in got] == [[str(tmp_path / "b.wav"), "000001_b.npy"]]
    assert not (out / "000000_a.npy").exists()
    (path, reason), *rest = dataset.report.skipped
    assert path == str(tmp_path / "a.wav") and "non-finite" in reason and not rest
    with torch.no_grad():
        want = model.encoder(torch.from_numpy(good)[None])[0][0, :, 0].numpy()
    np.testing.assert_allclose(np.load(out / "000001_b.npy"), want, rtol=1e-5, atol=1e-6)
    meta = json.loads((out / "extract.json").read_text())
    left = 3 + 2 * 5 + 1 * 5 * 4  # each layer's padding, in input samples
    assert (meta["layer"], meta["left_padding"], meta["files"]) == ("encoder", left, 1)


def tiny_image() -> cpc.CPCModel:
    torch.manual_seed(0)
    model = cpc.cpc_image(
        1, patch_size=8, patch_stride=4, widths=(8,), dim=8, context_dim=8, context_layers=1,
        num_offsets=1,
    )  # fmt: skip
    return model.eval()


class Images(Items):
    def __getitem__(self, n: int) -> dict:
        path, image = self.waves[n]
        if image is None:
            raise DataError(path, "unreadable: not an image")
        return {"x": torch.from_numpy(image), "path": path}


@pytest.mark.parametrize("broken", [False, True])
def test_one_grids_array_equals_the_per_image_files(tmp_path, broken):
    rng = np.random.default_rng(2)
    images = {f"img{i}.png": rng.standard_normal((1, 20, 20)).astype(np.float32) for i in range(3)}
    if broken:
        images["img1.png"] = None
    model = tiny_image()
    write_grid_features(model, Images(images), tmp_path / "each")
    one = tmp_path / "new" / "one"  # parents made
    write_grid_features(model, Images(images), one, single_array=True)
    grids = np.load(one / "grids.npy")
    each = [row[1] for row in rows(tmp_path / "each")[1:]]
    assert len(grids) == len(each) == 3 - broken
    for k, name in enumerate(each):
        single = np.load(tmp_path / "each" / name)
        assert grids[k].dtype == single.dtype == np.float32
        np.testing.assert_array_equal(grids[k], single)
    assert sorted(p.name for p in one.iterdir()) == [
        "extract.json", "grids.npy", "index.csv", "pooled.npy"
    ]  # fmt: skip


def test_no_image_readable_gives_empty_arrays_and_an_index_with_no_rows(tmp_path):
    write_grid_features(tiny_image(), Images({"a.png": None}), tmp_path, single_array=True)
    grids, pooled = np.load(tmp_path / "grids.npy"), np.load(tmp_path / "pooled.npy")
    assert (grids.shape, grids.dtype) == ((0,), np.float32)
    assert (pooled.shape, pooled.dtype) == ((0, 0), np.float32)
    assert rows(tmp_path) == [["path", "features", "rows", "cols", "dim"]]
    assert json.loads((tmp_path / "extract.json").read_text())["files"] == 0


@pytest.mark.parametrize(("count", "capacity"), [(600, 600), (600, 601)])
def test_grids_beyond_one_copy_block_keep_every_row(tmp_path, count, capacity):
    # More grids than one block of the cut-to-size copy (used when some images failed).
    grids = _GridArray(tmp_path, capacity)
    names = [grids.add(np.full((1, 2, 1), k, np.float32)) for k in range(count)]
    grids.close()
    got = np.load(tmp_path / "grids.npy")
    assert names[-1] == f"grids.npy#{count - 1}"
    assert got.shape == (count, 1, 2, 1) and got.dtype == np.float32
    np.testing.assert_array_equal(got[:, 0, 0, 0], np.arange(count))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grids.npy"]


def test_images_of_one_file_get_plain_names_and_the_layer_asked_for(tmp_path):
    # An IDX set holds many images in one file: their paths are "file#k".
    rng = np.random.default_rng(3)
    images = {f"t10k-images-idx3-ubyte#{k}": rng.standard_normal((1, 20, 20)) for k in range(2)}
    images = {path: image.astype(np.float32) for path, image in images.items()}
    model = tiny_image()
    write_grid_features(model, Images(images), tmp_path, layer="encoder")
    got = rows(tmp_path)[1:]
    names = [row[1] for row in got]
    assert names == ["000000_t10k-images-idx3-ubyte.npy", "000001_t10k-images-idx3-ubyte.npy"]
    for (path, name, *_), (key, image) in zip(got, images.items(), strict=True):
        assert path == key
        with torch.no_grad():
            want = model.features(torch.from_numpy(image)[None], layer="encoder")[0][0]
        np.testing.assert_allclose(np.load(tmp_path / name), want.numpy(), rtol=1e-5, atol=1e-6)
    meta = json.loads((tmp_path / "extract.json").read_text())
    assert (meta["layer"], meta["files"]) == ("encoder", 2) and "pooled" in meta
