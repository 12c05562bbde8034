"""``run.precision=auto``: the rule, the per-machine cache, and a resume that keeps its choice."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from cpc.train import precision as prec
from cpc.train import steps, train
from tests.train.conftest import tiny_config, write_wavs

CPU = torch.device("cpu")


class Counting:
    """A stand-in for the product measurement: a fixed ratio, and how often it ran."""

    def __init__(self, ratio: float) -> None:
        self.ratio = ratio
        self.calls = 0

    def __call__(self, device: torch.device) -> float:
        self.calls += 1
        return self.ratio


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    """Every test gets its own cache directory (never the user's)."""
    monkeypatch.setenv("CPC_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def bf16_cpu(monkeypatch):
    """Pretend this CPU has native bf16 (the measurement is stubbed; autocast emulates)."""
    monkeypatch.setattr(prec, "cpu_supports_bf16", lambda: True)
    monkeypatch.setattr(steps, "cpu_supports_bf16", lambda: True)


@pytest.mark.parametrize(("ratio", "expected"), [(2.3, "bf16"), (1.5, "bf16"), (1.49, "fp32")])
def test_auto_picks_bf16_from_a_product_ratio_of_1_5(ratio, expected, bf16_cpu):
    assert prec.auto_precision(CPU, Counting(ratio)) == expected


def test_the_ratio_is_measured_once_per_machine_and_cached(tmp_path, bf16_cpu):
    measure = Counting(2.0)
    first = prec.product_ratio(CPU, measure)
    second = prec.product_ratio(CPU, measure)
    assert measure.calls == 1
    assert (first.source, first.ratio) == ("measured", 2.0)
    assert second.source.startswith("cache") and second.ratio == 2.0
    cached = json.loads((tmp_path / "cache" / prec.CACHE_NAME).read_text())
    assert cached[prec.device_key(CPU)]["ratio"] == 2.0
    # another thread count is another machine kind: measured again
    threads = torch.get_num_threads()
    torch.set_num_threads(threads + 1)
    try:
        prec.product_ratio(CPU, measure)
    finally:
        torch.set_num_threads(threads)
    assert measure.calls == 2


def test_without_native_bf16_nothing_is_measured(monkeypatch):
    monkeypatch.setattr(prec, "cpu_supports_bf16", lambda: False)
    measure = Counting(9.0)
    assert prec.auto_precision(CPU, measure) == "fp32"
    assert measure.calls == 0


def test_a_broken_cache_is_measured_again(tmp_path, bf16_cpu):
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / prec.CACHE_NAME).write_text("{not json")
    measure = Counting(2.0)
    assert prec.product_ratio(CPU, measure).ratio == 2.0 and measure.calls == 1


def test_the_measurement_itself_runs():
    ratio = prec.measure_ratio(CPU, size=128, repeats=1)
    assert 0 < ratio < 100


def test_explicit_precisions_are_kept_as_requested(tmp_path):
    assert prec.choose_precision("fp32", CPU, tmp_path, Counting(5.0)) == "fp32"
    config = tiny_config(tmp_path, tmp_path / "run")
    assert prec.record_precision(config, "bf16") is config  # fp32 requested: unchanged


def test_auto_run_saves_its_choice_and_resumes_with_it(tmp_path, bf16_cpu):
    """A run that chose bf16 resumes in bf16 even where auto would now choose fp32."""
    wavs = write_wavs(tmp_path / "wavs")
    key = prec.device_key(CPU)
    cache = tmp_path / "cache" / prec.CACHE_NAME
    cache.parent.mkdir()
    cache.write_text(json.dumps({key: {"ratio": 3.0}}))
    config = tiny_config(wavs, tmp_path / "run", "run.precision=auto", "optim.max_steps=2")
    first = train(config)
    assert first.summary["precision"] == "bf16"
    assert first.checkpoint is not None
    meta = json.loads((first.checkpoint / "meta.json").read_text())
    assert meta["config"]["run"]["precision"] == "bf16"
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["run"]["precision"] == "bf16"

    cache.write_text(json.dumps({key: {"ratio": 1.0}}))  # this machine now says fp32
    assert prec.auto_precision(CPU) == "fp32"
    more = tiny_config(wavs, tmp_path / "run", "run.precision=auto", "optim.max_steps=3")
    resumed = train(more)
    assert resumed.summary["resumed_from"] is not None
    assert resumed.summary["precision"] == "bf16"
    # a new run in a fresh folder decides again
    fresh = tiny_config(wavs, tmp_path / "other", "run.precision=auto", "optim.max_steps=1")
    assert train(fresh).summary["precision"] == "fp32"
