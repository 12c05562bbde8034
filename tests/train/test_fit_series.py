"""``data.fit (default true)``: the signal preset fits its encoder to short series by itself."""

import logging

import numpy as np
import pytest

from cpc.config import ConfigError, load_config
from cpc.data.validate import fit_to_data
from cpc.train import load_model, train


def _series(folder, lengths, channels=2):
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    for i, n in enumerate(lengths):
        np.save(folder / f"s{i:02d}.npy", rng.standard_normal((n, channels)).astype(np.float32))
    return folder


def _pen(data, out, *extra):
    return load_config(
        "signature_pen",
        [f"data.train={data}", f"run.out_dir={out}", "model.in_channels=2", "run.progress=false",
         "data.batch_size=4", "data.val_fraction=0", "model.channels=8", "model.context_dim=8",
         "model.num_negatives=4", "optim.max_steps=2", "optim.warmup_steps=1", *extra],
    )  # fmt: skip


def test_short_series_get_a_fitted_encoder_stated_in_the_log(tmp_path, caplog):
    data = _series(tmp_path / "d", [31, 24, 40, 60] * 3)  # 24 samples: 2 steps of the pen encoder
    out = tmp_path / "run"
    with caplog.at_level(logging.INFO, logger="cpc"):
        train(_pen(data, out))
    line = next(
        r.getMessage() for r in caplog.records if "data.fit: the shortest" in r.getMessage()
    )
    assert "s01.npy) has 24 samples" in line and "model.kernels=[4,3]" in line
    model = load_model(out)
    assert model.receptive_field <= 24 and len(model.offsets) >= 1
    saved = load_config(out / "config.yaml")  # the fitted geometry is what the run saved
    assert saved.model.to_dict()["kernels"] == [4, 3] and saved.data.window == 24


def test_series_that_fit_change_nothing_and_fit_false_keeps_the_config(tmp_path):
    long = _series(tmp_path / "long", [300, 400])
    config = _pen(long, tmp_path / "r")
    assert fit_to_data(config) == (config, None)
    short = _series(tmp_path / "short", [20, 30])
    config = _pen(short, tmp_path / "r", "data.fit=false")
    assert fit_to_data(config) == (config, None)
    fitted, line = fit_to_data(_pen(short, tmp_path / "r"))
    assert line and fitted.model.to_dict()["kernels"] == [3, 3] and fitted.data.window == 20


def test_a_bad_fit_value_names_the_key():
    with pytest.raises(ConfigError, match=r"data\.fit"):
        load_config("signature_pen", ["data.fit=maybe"])
