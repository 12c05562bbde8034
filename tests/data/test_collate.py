from functools import partial
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from torch.utils.data import DataLoader

from cpc.data.audio import AudioWindowDataset
from cpc.data.collate import pad_collate
from cpc.data.samplers import GroupedBatchSampler


def test_audio_items_pad_right_with_lengths() -> None:
    items = [
        {"x": torch.ones(3), "length": 3, "speaker": 0, "index": 4, "path": "a.wav"},
        {"x": torch.full((5,), 2.0), "length": 5, "speaker": 2, "index": 1, "path": "b.wav"},
    ]
    batch = pad_collate(items)
    assert batch["x"].shape == (2, 5)
    torch.testing.assert_close(batch["x"][0], torch.tensor([1.0, 1, 1, 0, 0]))
    assert batch["lengths"].tolist() == [3, 5] and batch["lengths"].dtype == torch.long
    assert batch["speaker"].tolist() == [0, 2] and batch["index"].tolist() == [4, 1]
    assert batch["path"] == ["a.wav", "b.wav"]
    assert "length" not in batch


def test_signal_items_keep_channels_and_padded_windows_keep_true_length() -> None:
    items = [
        {"x": torch.ones(4, 3), "length": 2, "label": 1},  # a window padded by the data set
        {"x": torch.ones(6, 3), "length": 6, "label": 0},
    ]
    batch = pad_collate(items, pad_multiple=4)
    assert batch["x"].shape == (2, 8, 3)
    assert batch["lengths"].tolist() == [2, 6]
    assert torch.all(batch["x"][0, 4:] == 0) and torch.all(batch["x"][1, :6] == 1)


def test_never_truncates_and_checks_shapes() -> None:
    long = {"x": torch.arange(10.0)}
    batch = pad_collate([long, {"x": torch.zeros(2)}])
    torch.testing.assert_close(batch["x"][0], long["x"])
    assert batch["lengths"].tolist() == [10, 2]
    with pytest.raises(ValueError, match="shape after time"):
        pad_collate([{"x": torch.zeros(3, 2)}, {"x": torch.zeros(3, 1)}])
    with pytest.raises(ValueError, match="exceeds"):
        pad_collate([{"x": torch.zeros(3), "length": 4}])


def test_loader_with_grouped_sampler(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for speaker in ("s0", "s1"):
        for i, seconds in enumerate((0.2, 0.05, 0.3)):
            folder = tmp_path / speaker
            folder.mkdir(exist_ok=True)
            sf.write(folder / f"{i}.wav", 0.1 * rng.standard_normal(int(seconds * 8000)), 8000)
    ds = AudioWindowDataset(tmp_path, 8000, 2000, min_length=100)
    sampler = GroupedBatchSampler(ds.groups, batch_size=3, seed=1)
    loader = DataLoader(ds, batch_sampler=sampler, collate_fn=partial(pad_collate))
    batches = list(loader)
    assert len(batches) == 2
    for batch in batches:
        assert batch["x"].shape == (3, 2000)
        assert len(set(batch["group"].tolist())) == 1
        assert sorted(batch["lengths"].tolist()) == [400, 1600, 2000]
