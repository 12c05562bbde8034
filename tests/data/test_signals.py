from pathlib import Path

import numpy as np
import pytest
import torch

from cpc.data.signal_io import fill_missing, read_signal, resample_uniform
from cpc.data.signals import (
    ChannelStats,
    SignalFileDataset,
    SignalWindowDataset,
    signal_records,
    svc2004_writer,
)
from cpc.errors import DataError, EmptyDatasetError


def svc_file(path: Path, points: int, columns: int = 7, step_ms: int = 10) -> Path:
    rows = []
    for i in range(points):
        full = [100 + i, 200 + 2 * i, 5000 + step_ms * i, i % 2, 1800 + i, 500 + i, 300 + 3 * i]
        rows.append(" ".join(str(v) for v in full[:columns]))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{points}\n" + "\n".join(rows) + "\n")
    return path


def test_svc2004_task2_columns_and_timestamps(tmp_path: Path) -> None:
    signal = read_signal(svc_file(tmp_path / "U1S1.TXT", 5))
    assert signal.channels == ["x", "y", "pressure", "button", "azimuth", "altitude"]
    np.testing.assert_array_equal(signal.values[1], [101, 202, 303, 1, 1801, 501])
    assert signal.timestamps is not None
    np.testing.assert_allclose(signal.timestamps, 5.0 + 0.01 * np.arange(5))


def test_svc2004_task1_has_four_columns(tmp_path: Path) -> None:
    signal = read_signal(svc_file(tmp_path / "U2S21.txt", 4, columns=4))
    assert signal.channels == ["x", "y", "button"]
    assert signal.values.shape == (4, 3)
    assert svc2004_writer(tmp_path / "U2S21.txt") == "2"


def test_svc2004_malformed_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "bad.txt").write_text("2\n1 2 3\n4 5 6\n")
    with pytest.raises(DataError, match="malformed"):
        read_signal(tmp_path / "bad.txt")


def test_fill_missing_interpolates_and_zeros_dead_channels() -> None:
    values = np.array(
        [[np.nan, 1.0, np.nan], [2.0, np.nan, np.nan], [np.nan, 3.0, np.nan], [4.0, np.inf, np.nan]]
    )
    filled, dead = fill_missing(values)
    np.testing.assert_array_equal(filled[:, 0], [2.0, 2.0, 3.0, 4.0])
    np.testing.assert_array_equal(filled[:, 1], [1.0, 2.0, 3.0, 3.0])
    np.testing.assert_array_equal(filled[:, 2], 0.0)
    assert dead == [2]


def test_resample_uniform_grid_and_discrete_channels() -> None:
    times = np.array([0.0, 0.01, 0.01, 0.035, 0.05])  # a repeat, an irregular gap
    values = np.array([[0.0, 0], [1.0, 0], [9.0, 0], [3.5, 1], [5.0, 1]])
    out = resample_uniform(values, times, 100.0, discrete=[False, True])
    np.testing.assert_allclose(out[:, 0], [0.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    np.testing.assert_array_equal(out[:, 1], [0, 0, 0, 1, 1, 1])
    with pytest.raises(ValueError, match="span"):  # a corrupt timestamp, not a huge grid
        resample_uniform(values[:2], np.array([0.0, 1e9]), 100.0)


def test_table_formats_npz_and_csv(tmp_path: Path) -> None:
    np.savez(tmp_path / "a.npz", first=np.ones((6, 2)), second=np.zeros((3, 4)))
    assert read_signal(tmp_path / "a.npz").values.shape == (6, 2)
    assert read_signal(tmp_path / "a.npz", key="second").values.shape == (3, 4)
    with pytest.raises(DataError, match="missing key"):
        read_signal(tmp_path / "a.npz", key="third")
    (tmp_path / "h.csv").write_text("time_ms,ax,name,ay\n0,1,a,2\n10,,b,4\n20,3,c,NaN\n")
    signal = read_signal(tmp_path / "h.csv")
    assert signal.channels == ["ax", "ay"]
    assert signal.timestamps is not None
    np.testing.assert_allclose(signal.timestamps, [0.0, 0.01, 0.02])
    assert np.isnan(signal.values[1, 0]) and np.isnan(signal.values[2, 1])
    assert signal.notes == ["dropped non-numeric columns ['name']"]
    (tmp_path / "n.csv").write_text("1,2\n3,4\n5,6\n")
    plain = read_signal(tmp_path / "n.csv")
    assert plain.channels == ["0", "1"] and plain.values.shape == (3, 2)


def npy(path: Path, values: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, values)
    return path


def test_bad_signals_skipped_and_repairs_noted(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    npy(tmp_path / "w1" / "ok.npy", rng.standard_normal((50, 3)))
    gaps = rng.standard_normal((40, 3))
    gaps[:, 2] = np.nan
    npy(tmp_path / "w1" / "dead.npy", gaps)
    npy(tmp_path / "w2" / "nan.npy", np.full((30, 3), np.nan))
    npy(tmp_path / "w2" / "empty.npy", np.zeros((0, 3)))
    (tmp_path / "w2" / "zero.npy").write_bytes(b"")
    (tmp_path / "w2" / "junk.npy").write_bytes(b"not an array" * 10)
    ds = SignalFileDataset(tmp_path)
    assert len(ds) == 2 and ds.group_names == ["w1"]
    assert ds.report.counts() == {"empty": 1, "non-finite": 1, "unreadable": 2}
    assert ds.report.notes and "all NaN" in ds.report.notes[0][1]
    item = ds[0]
    assert torch.all(item["x"][:, 2] == 0)
    with pytest.raises(DataError, match=r"empty\.npy: empty"):
        SignalFileDataset(tmp_path, strict=True)
    with pytest.raises(EmptyDatasetError, match=str(tmp_path / "w2")):
        SignalFileDataset(tmp_path / "w2")


def test_normalisation_modes(tmp_path: Path) -> None:
    a = np.column_stack([np.arange(10.0), 5 + 2 * np.arange(10.0)])
    b = np.column_stack([100 + np.arange(20.0), np.ones(20)])
    npy(tmp_path / "k" / "a.npy", a)
    npy(tmp_path / "k" / "b.npy", b)
    per_file = SignalFileDataset(tmp_path)[0]["x"].double()
    torch.testing.assert_close(per_file.mean(0), torch.zeros(2, dtype=torch.float64))
    torch.testing.assert_close(per_file.std(0, unbiased=False), torch.ones(2, dtype=torch.float64))
    assert torch.all(SignalFileDataset(tmp_path, normalize="file")[1]["x"][:, 1] == 0)
    raw = SignalFileDataset(tmp_path, normalize="none")[1]["x"]
    torch.testing.assert_close(raw, torch.from_numpy(b).float())
    ds = SignalFileDataset(tmp_path, normalize="dataset")
    both = np.concatenate([a, b])
    assert ds.stats is not None
    np.testing.assert_allclose(ds.stats.mean, both.mean(0))
    np.testing.assert_allclose(ds.stats.std, both.std(0))
    restored = ChannelStats.from_dict(ds.stats.to_dict())
    assert restored == ds.stats
    again = SignalFileDataset(tmp_path, normalize=restored)
    torch.testing.assert_close(again[0]["x"], ds[0]["x"])
    expected = (a - both.mean(0)) / both.std(0)
    torch.testing.assert_close(ds[0]["x"], torch.from_numpy(expected).float())


def test_channels_by_name_and_missing_channel_skipped(tmp_path: Path) -> None:
    svc_file(tmp_path / "task2" / "U1S1.TXT", 12)
    svc_file(tmp_path / "task1" / "U1S2.TXT", 12, columns=4)
    ds = SignalFileDataset(tmp_path, channels=["x", "pressure"], normalize="none")
    assert ds.channels == ["x", "pressure"] and len(ds) == 1
    assert ds.report.counts() == {"missing channel": 1}
    default = SignalFileDataset(tmp_path / "task2", normalize="none")
    assert default.channels == ["x", "y", "pressure", "button", "azimuth", "altitude"]


def test_resampling_in_dataset(tmp_path: Path) -> None:
    svc_file(tmp_path / "U3S1.TXT", 11, step_ms=20)  # 200 ms at 50 Hz
    ds = SignalFileDataset(tmp_path, normalize="none", rate=100.0)
    x = ds[0]["x"]
    assert x.shape == (21, 6)
    torch.testing.assert_close(x[:3, 0], torch.tensor([100.0, 100.5, 101.0]))
    assert set(x[:, 3].tolist()) <= {0.0, 1.0}


def test_window_dataset_pad_skip_and_reproducibility(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    npy(tmp_path / "alice" / "long.npy", rng.standard_normal((300, 2)))
    npy(tmp_path / "bob" / "short.npy", rng.standard_normal((20, 2)))
    ds = SignalWindowDataset(tmp_path, window=50, seed=7)
    long_item, short_item = ds[0], ds[1]
    assert long_item["x"].shape == (50, 2) and long_item["length"] == 50
    assert short_item["x"].shape == (50, 2) and short_item["length"] == 20
    assert torch.all(short_item["x"][20:] == 0)
    assert (long_item["group"], short_item["group"]) == (0, 1)
    torch.testing.assert_close(SignalWindowDataset(tmp_path, 50, seed=7)[0]["x"], long_item["x"])
    ds.set_epoch(1)
    assert not torch.equal(ds[0]["x"], long_item["x"])
    skipping = SignalWindowDataset(tmp_path, 50, short_clips="skip", cover=True)
    assert len(skipping) == 6 and skipping.report.counts() == {"short clip": 1}
    assert skipping.groups == [0] * 6


def test_manifest_labels(tmp_path: Path) -> None:
    npy(tmp_path / "data" / "a.npy", np.ones((5, 1)))
    npy(tmp_path / "data" / "b.npy", np.ones((5, 1)))
    (tmp_path / "m.csv").write_text("path,writer\ndata/a.npy,7\ndata/b.npy,3\n")
    records = signal_records(tmp_path / "m.csv")
    assert [r.group for r in records] == ["7", "3"]
    ds = SignalFileDataset(tmp_path / "m.csv")
    assert ds.group_names == ["3", "7"] and ds[0]["group"] == 1
