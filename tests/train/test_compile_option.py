"""run.compile falls back to eager, with one warning, where inductor cannot build."""

import logging

import torch

from cpc.train import trainer


def test_no_cxx_compiler_runs_eagerly_with_one_warning(monkeypatch, caplog):
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(trainer.shutil, "which", lambda name: None)
    net = torch.nn.Linear(2, 2)
    with caplog.at_level(logging.WARNING, logger="cpc.train.trainer"):
        got = trainer.compile_or_eager(net, torch.device("cpu"))
    assert got is net
    assert [r.getMessage() for r in caplog.records] == [
        "run.compile: no C++ compiler found (CXX, c++, g++): running eagerly"
    ]


def test_a_cxx_compiler_compiles(monkeypatch):
    monkeypatch.setenv("CXX", "my-c++")
    monkeypatch.setattr(trainer.shutil, "which", lambda name: f"/usr/bin/{name}")
    compiled = []
    monkeypatch.setattr(trainer.torch, "compile", lambda net: compiled.append(net) or "compiled")
    net = torch.nn.Linear(2, 2)
    assert trainer.compile_or_eager(net, torch.device("cpu")) == "compiled"
    assert compiled == [net]
