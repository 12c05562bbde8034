"""The window logic over an in-memory source: which stretch of a file each item reads."""

import numpy as np
import pytest
import torch

from cpc.data.records import Record
from cpc.data.windows import FileDataset, FileSource, WindowDataset, short_clip_limit
from cpc.errors import DataError, EmptyDatasetError


class ArraySource(FileSource):
    """Files held in memory: file ``i`` is the ramp ``1000 * i + arange(n)``."""

    def __init__(
        self, sizes, *, broken=(), min_length=1, skip_below=None, strict=False,
        name="memory", channels=None, **kwargs,
    ):  # fmt: skip
        self.sizes = {f"f{i}": n for i, n in enumerate(sizes)}
        self.broken, self.channels, self.accepted = set(broken), channels, []
        records = [Record(f"f{i}", f"g{i % 2}") for i in range(len(sizes))]
        super().__init__(records, min_length, strict, skip_below=skip_below, name=name, **kwargs)

    def probe(self, path):
        if self.sizes[path] == 0:
            raise DataError(path, "empty")
        return self.sizes[path], f"payload of {path}"

    def accept(self, record, payload, first):
        self.accepted.append((record.path, payload, first))

    def read(self, index, offset=0, frames=None):
        path = self.paths[index]
        if path in self.broken:
            raise DataError(path, "decode failed")
        n = self.lengths[index]
        stop = n if frames is None else min(n, offset + frames)
        x = torch.arange(offset, stop, dtype=torch.float32) + 1000 * int(path[1:])
        return x if self.channels is None else x[:, None].repeat(1, self.channels)


def test_offsets_cover_every_start_uniformly_and_follow_seed_and_epoch():
    # A file of 13 steps and windows of 10: starts 0..3, each about a quarter of epochs.
    data = WindowDataset(ArraySource([13]), 10, seed=7)
    starts = []
    for epoch in range(400):
        data.set_epoch(epoch)
        item = data[0]
        start = int(item["x"][0])
        assert torch.equal(item["x"], torch.arange(start, start + 10, dtype=torch.float32))
        assert item["length"] == 10
        starts.append(start)
    counts = np.bincount(starts, minlength=5)
    assert counts[4] == 0 and (counts[:4] > 70).all(), counts  # 100 expected each
    again = WindowDataset(ArraySource([13]), 10, seed=7)
    again.set_epoch(5)
    assert int(again[0]["x"][0]) == starts[5]  # a function of (seed, epoch, index)
    other = WindowDataset(ArraySource([13]), 10, seed=8)
    seen = []
    for epoch in range(20):
        other.set_epoch(epoch)
        seen.append(int(other[0]["x"][0]))
    assert seen != starts[:20]


def test_a_file_of_exactly_one_window_is_read_whole():
    item = WindowDataset(ArraySource([10]), 10)[0]
    assert torch.equal(item["x"], torch.arange(10, dtype=torch.float32))


def test_short_files_are_padded_and_report_their_true_length():
    item = WindowDataset(ArraySource([4, 20]), 10)[0]
    assert item["length"] == 4 and item["x"].shape == (10,)
    assert torch.equal(item["x"][:4], torch.arange(4, dtype=torch.float32))
    assert (item["x"][4:] == 0).all()


def test_cover_gives_long_files_items_in_proportion():
    source = ArraySource([5, 25, 30, 9])
    assert len(WindowDataset(source, 10)) == 4
    covered = WindowDataset(source, 10, cover=True)
    assert len(covered) == 1 + 2 + 3 + 1
    assert covered.groups == [0, 1, 1, 0, 0, 0, 1]
    # Items of one file draw their own offsets.
    firsts = {int(covered[i]["x"][0]) for i in range(3, 6)}
    assert len(firsts) > 1 and all(2000 <= f <= 2020 for f in firsts)


def test_items_carry_group_and_index_and_out_of_range_is_an_index_error():
    data = WindowDataset(ArraySource([12, 12, 12]), 10)
    item = data[2]
    assert item["group"] == 0 and item["index"] == 2
    assert data.group_names == ["g0", "g1"]
    with pytest.raises(IndexError):
        data[3]
    with pytest.raises(IndexError):
        data[-1]


def test_a_file_failing_to_decode_is_replaced_by_the_next_and_reported():
    data = WindowDataset(ArraySource([12, 12, 12], broken={"f1"}), 10)
    item = data[1]
    assert item["index"] == 2
    assert data.report.counts()
    with pytest.raises(DataError, match="f1"):
        WindowDataset(ArraySource([12, 12], broken={"f1"}), 10, strict=True)[1]


def test_sources_skip_short_files_and_name_what_is_left():
    source = ArraySource([3, 12, 0, 7], min_length=4, skip_below=8)
    assert source.paths == ["f1"] and source.lengths == [12]
    assert source.report.checked == 4
    with pytest.raises(EmptyDatasetError, match="memory"):
        ArraySource([3, 2], min_length=4)
    with pytest.raises(ValueError, match="min_length"):
        ArraySource([3], min_length=0)


def test_whole_files_are_never_substituted():
    files = FileDataset(ArraySource([5, 7, 6], broken={"f1"}))
    item = files[2]
    assert item["length"] == 6 and item["path"] == "f2" and item["index"] == 2
    assert torch.equal(item["x"], torch.arange(6, dtype=torch.float32) + 2000)
    with pytest.raises(DataError, match="f1"):
        files[1]
    with pytest.raises(IndexError):
        files[3]
    assert files.paths == ["f0", "f1", "f2"] and files.groups == [0, 1, 0]


@pytest.mark.parametrize(("short", "expected"), [("pad", None), ("skip", 10)])
def test_short_clip_limit(short, expected):
    assert short_clip_limit(10, short) == expected


def test_bad_window_settings_are_named():
    with pytest.raises(ValueError, match="short_clips"):
        short_clip_limit(10, "drop")
    with pytest.raises(ValueError, match="window"):
        short_clip_limit(0, "pad")
    with pytest.raises(ValueError, match="window"):
        WindowDataset(ArraySource([5]), 0)


def test_probing_keeps_boundaries_reports_reasons_and_accepts_in_order():
    source = ArraySource([4, 12, 0, 7, 8, 9], min_length=4, skip_below=8, unit="samples")
    assert source.paths == ["f1", "f4", "f5"]  # 4 >= min_length but < 8; 8 kept
    assert source.report.skipped == [
        ("f0", "short clip: 4 samples < 8"),
        ("f2", "empty"),
        ("f3", "short clip: 7 samples < 8"),
    ]
    assert source.accepted == [
        ("f1", "payload of f1", True),
        ("f4", "payload of f4", False),
        ("f5", "payload of f5", False),
    ]
    short = ArraySource([3, 4], min_length=4)
    assert short.report.skipped == [("f0", "too short: 3 steps < min_length 4")]
    assert short.lengths == [4]


@pytest.mark.parametrize(("sizes", "message"), [([0, 5], "f0: empty"), ([2, 5], "f0: too short")])
def test_strict_sources_stop_at_the_first_unusable_file(sizes, message):
    with pytest.raises(DataError, match=message):
        ArraySource(sizes, min_length=3, strict=True)


def test_an_unnamed_empty_source_names_its_records():
    with pytest.raises(EmptyDatasetError, match=r"2 records \(first: f0\)"):
        ArraySource([1, 2], min_length=4, name=None)


def test_defaults_seed_zero_epoch_zero_and_a_window_of_one_step():
    source = ArraySource([50, 60])
    plain, seeded = WindowDataset(source, 10), WindowDataset(source, 10, seed=0)
    seeded.set_epoch(0)
    assert [int(plain[i]["x"][0]) for i in (0, 1)] == [int(seeded[i]["x"][0]) for i in (0, 1)]
    assert WindowDataset(source, 1)[0]["x"].shape == (1,)
    assert short_clip_limit(1, "skip") == 1


def test_multichannel_windows_are_padded_along_time_only():
    item = WindowDataset(ArraySource([4], channels=3), 10)[0]
    assert item["x"].shape == (10, 3) and item["length"] == 4
    assert torch.equal(item["x"][:4, 2], torch.arange(4, dtype=torch.float32))
    assert (item["x"][4:] == 0).all()


def test_when_every_file_fails_the_error_names_the_requested_one():
    data = WindowDataset(ArraySource([12, 12], broken={"f0", "f1"}), 10)
    with pytest.raises(DataError, match="f1: unreadable"):
        data[1]


def test_whole_files_first_and_one_step_and_out_of_range_message():
    files = FileDataset(ArraySource([1, 7]))
    item = files[0]
    assert item["length"] == 1 and item["group"] == 0 and item["path"] == "f0"
    assert files[1]["group"] == 1
    with pytest.raises(IndexError, match="index 2 out of range for 2 items"):
        files[2]


def test_no_records_at_all_is_named_as_such():
    with pytest.raises(EmptyDatasetError, match="an empty list of records"):
        ArraySource([], name=None)
