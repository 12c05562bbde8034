"""Argument parsing of the verbs that replaced ``python -m`` library mains (issue 18).

``cpc data espeak`` (was ``python -m cpc.data.corpora.espeak``), ``cpc units quality``
(was ``python -m cpc.eval.unit_quality``) and ``cpc signatures`` (was
``python -m cpc.experiments.signature_bench``): each flag reaches the library call. The
library functions are replaced by recorders, so nothing is synthesised or trained here.
"""

from dataclasses import replace
from pathlib import Path

import pytest
import torch

import cpc.cli.data
import cpc.cli.signatures
import cpc.cli.units
from cpc.cli import main
from cpc.experiments.signature_bench import QUICK, BenchSize


@pytest.fixture(autouse=True)
def _keep_threads():
    threads = torch.get_num_threads()  # the verbs set one thread, as their mains did
    yield
    torch.set_num_threads(threads)


def _record(monkeypatch, module, name, result):
    calls = []

    def recorder(*args, **kwargs):
        calls.append((args, kwargs))
        return result

    monkeypatch.setattr(module, name, recorder)
    return calls


class _Info:
    num_utterances, total_seconds, speakers, phones, build_seconds = 3, 60.0, ["a"], ["sil"], 1.0
    root = "corpus"


def test_data_espeak_passes_every_flag(monkeypatch, tmp_path):
    calls = _record(monkeypatch, cpc.cli.data, "build_espeak_corpus", _Info())
    flags = ["--minutes", "2", "--speakers", "3", "--seed", "4", "--sample-rate", "8000"]
    flags += ["--languages", "en", "fr", "--workers", "2", "--overwrite"]
    assert main(["data", "espeak", "--out", str(tmp_path), *flags]) == 0
    (args, kwargs) = calls[0]
    assert args == (tmp_path,)
    assert kwargs == {
        "minutes": 2.0,
        "num_speakers": 3,
        "seed": 4,
        "sample_rate": 8000,
        "languages": ("en", "fr"),
        "workers": 2,
        "overwrite": True,
    }


def test_data_espeak_defaults_are_the_library_defaults(monkeypatch, tmp_path):
    calls = _record(monkeypatch, cpc.cli.data, "build_espeak_corpus", _Info())
    assert main(["data", "espeak", "--out", str(tmp_path)]) == 0
    kwargs = calls[0][1]
    assert kwargs["sample_rate"] == 16000 and kwargs["workers"] is None
    assert kwargs["languages"] == ("en",)


def test_data_espeak_refuses_an_unknown_language(capsys, tmp_path):
    with pytest.raises(SystemExit) as stop:
        main(["data", "espeak", "--out", str(tmp_path), "--languages", "xx"])
    assert stop.value.code == 2 and "invalid choice: 'xx'" in capsys.readouterr().err


def test_units_quality_passes_every_flag(monkeypatch, tmp_path):
    rows = [{"features": "CPC"}]
    compared = _record(monkeypatch, cpc.cli.units, "compare_units", rows)
    written = _record(monkeypatch, cpc.cli.units, "write_unit_report", "| table |")
    argv = ["units", "quality", "--corpus", "c", "--cpc-features", "f", "--work", "w"]
    argv += ["--out", str(tmp_path), "--k", "8", "16", "--normalize", "l2", "none"]
    assert main([*argv, "--note", "run 3"]) == 0
    assert compared == [
        ((Path("c"), Path("f"), Path("w")), {"ks": [8, 16], "normalize": ["l2", "none"]})
    ]
    (args, kwargs) = written[0]
    assert args == (rows, tmp_path) and kwargs["note"] == "run 3"
    assert kwargs["command"].startswith("cpc ")


def test_units_quality_defaults_and_choices(monkeypatch, capsys):
    compared = _record(monkeypatch, cpc.cli.units, "compare_units", [])
    _record(monkeypatch, cpc.cli.units, "write_unit_report", "")
    argv = ["units", "quality", "--corpus", "c", "--cpc-features", "f", "--work", "w"]
    assert main([*argv, "--out", "o"]) == 0
    assert compared[0][1] == {"ks": [50, 100, 200], "normalize": ["standard"]}
    with pytest.raises(SystemExit):
        main([*argv, "--out", "o", "--normalize", "zscore"])
    assert "invalid choice: 'zscore'" in capsys.readouterr().err


def test_signatures_passes_every_flag(monkeypatch, tmp_path):
    calls = _record(monkeypatch, cpc.cli.signatures, "run_bench", "| table |")
    argv = ["signatures", "--out", str(tmp_path), "--work", "w", "--seeds", "4", "5"]
    argv += ["--quick", "--steps", "3", "--inputs", "raw"]
    argv += ["--override", "model.a=1", "--override", "data.b=2"]
    assert main(argv) == 0
    (args, kwargs) = calls[0]
    assert args == (tmp_path, [4, 5], replace(QUICK, steps=3))
    assert kwargs["work"] == Path("w").resolve() and kwargs["inputs"] == "raw"
    assert kwargs["overrides"] == ["model.a=1", "data.b=2"]
    assert kwargs["summarise_only"] is False and kwargs["command"].startswith("cpc ")


def test_signatures_defaults(monkeypatch, tmp_path):
    calls = _record(monkeypatch, cpc.cli.signatures, "run_bench", "")
    assert main(["signatures", "--out", str(tmp_path), "--summarise"]) == 0
    (args, kwargs) = calls[0]
    assert args == (tmp_path, [0, 1, 2], BenchSize())
    assert kwargs["work"] == Path("runs/signature_bench").resolve() and kwargs["inputs"] == "local"
    assert kwargs["overrides"] == [] and kwargs["summarise_only"] is True
