"""``cpc extract`` for image-grid models: grid features and pooled rows per image."""

import csv

import numpy as np
import torch
from PIL import Image

from cpc.checkpoints.loading import load_model
from cpc.cli import main
from cpc.data.images import cpc_image_transform, write_idx

TINY_IMAGE = [
    "model.modality=image",
    "model.in_channels=1",
    "model.patch_size=8",
    "model.patch_stride=4",
    "model.widths=[8]",
    "model.dim=8",
    "model.context_dim=8",
    "model.context_layers=1",
    "model.num_offsets=1",
    "data.train=textures",
    "data.image_size=20",
    "data.batch_size=4",
    "optim.max_steps=1",
    "optim.warmup_steps=0",
    "run.progress=false",
    "run.val_batches=0",
]


def _pretrain(tmp_path):
    run = tmp_path / "run"
    config = tmp_path / "c.yaml"
    config.write_text("")
    assert main(["pretrain", str(config), *TINY_IMAGE, f"run.out_dir={run}"]) == 0
    return run


def test_extract_images_from_a_folder_and_from_idx(tmp_path, capsys):
    torch.set_num_threads(1)
    run = _pretrain(tmp_path)
    folder = tmp_path / "images"
    (folder / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    pixels = [rng.integers(0, 255, (24, 30, 3), dtype=np.uint8) for _ in range(3)]
    for i, p in enumerate(pixels):
        Image.fromarray(p).save(folder / ("sub" if i else ".") / f"img{i}.png")
    (folder / "broken.png").write_bytes(b"not a png")
    out = tmp_path / "feats"
    capsys.readouterr()
    args = ["extract", "--checkpoint", str(run), "--input", str(folder), "--output", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "features of 3 files written" in printed and "unreadable: 1" in printed
    rows = list(csv.DictReader((out / "index.csv").open()))
    assert [r["path"].rsplit("/", 1)[1] for r in rows] == ["img0.png", "img1.png", "img2.png"]
    assert all(r["path"] != str(folder / "broken.png") for r in rows)  # no substitute
    pooled = np.load(out / "pooled.npy")
    model = load_model(run)
    transform = cpc_image_transform(20, False, 1)
    for n, row in enumerate(rows):
        grid = np.load(out / row["features"])
        assert grid.shape == (int(row["rows"]), int(row["cols"]), int(row["dim"])) == (4, 4, 8)
        x = transform(Image.open(row["path"]).convert("RGB"))[None]
        with torch.no_grad():
            expected = model.features(x)[0][0].numpy()
        np.testing.assert_allclose(grid, expected, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(pooled[n], expected.mean(axis=(0, 1)), rtol=1e-5, atol=1e-6)

    idx = tmp_path / "idx"
    idx.mkdir()
    write_idx(idx / "t10k-images-idx3-ubyte", rng.integers(0, 255, (5, 20, 20), dtype=np.uint8))
    write_idx(idx / "t10k-labels-idx1-ubyte", np.zeros(5, np.uint8))
    out2 = tmp_path / "feats_idx"
    args = [
        "extract",
        "--checkpoint",
        str(run),
        "--input",
        f"idx-t10k:{idx}",
        "--output",
        str(out2),
    ]
    assert main(args) == 0
    assert np.load(out2 / "pooled.npy").shape == (5, 8)
    assert len((out2 / "index.csv").read_text().splitlines()) == 6

    # One array for large sets: the same grids, a broken image leaves no row behind.
    out3 = tmp_path / "feats_one"
    args = ["extract", "--checkpoint", str(run), "--input", str(folder), "--output", str(out3)]
    assert main([*args, "--single-array"]) == 0
    grids = np.load(out3 / "grids.npy")
    assert grids.shape == (3, 4, 4, 8) and not (out3 / ".grids.partial.npy").exists()
    for k, row in enumerate(csv.DictReader((out3 / "index.csv").open())):
        assert row["features"] == f"grids.npy#{k}"
        np.testing.assert_array_equal(grids[k], np.load(out / rows[k]["features"]))
