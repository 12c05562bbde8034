"""UCR/UEA .ts files through aeon (skipped without the optional extra)."""

import numpy as np
import pytest

pytest.importorskip("aeon")

from cpc.data.signals import SignalFileDataset
from cpc.data.ucr import bundled_ts, export_ts, load_ts


def test_basic_motions_loads_as_time_by_channels():
    series, labels = load_ts(bundled_ts("BasicMotions", "train"))
    assert len(series) == len(labels) == 40
    assert series[0].shape == (100, 6) and series[0].dtype == np.float32
    assert set(labels) == {"standing", "running", "walking", "badminton"}


def test_export_is_readable_by_the_signal_reader(tmp_path):
    manifest = export_ts(bundled_ts("BasicMotions", "test"), tmp_path)
    ds = SignalFileDataset(manifest)
    assert len(ds) == 40 and ds[0]["x"].shape == (100, 6)


def test_unknown_set_names_the_bundled_ones():
    with pytest.raises(FileNotFoundError, match="BasicMotions"):
        bundled_ts("NoSuchSet")
