"""ONNX export: onnxruntime gives PyTorch's features at several lengths (dynamic time)."""

from pathlib import Path

import numpy as np
import pytest
import torch

import cpc
from cpc.checkpoints.export import export_onnx
from cpc.cli import main

ort = pytest.importorskip("onnxruntime")
FIXTURES = Path(__file__).parents[1] / "fixtures" / "cpc_audio"
LENGTHS = (700, 4321, 16000)  # one export, three input lengths


def check(model, path, layer, shape_of):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for t in LENGTHS:
        x = torch.randn(shape_of(t), generator=torch.Generator().manual_seed(t))
        with torch.no_grad():
            ref = model.features(x, layer=layer)[0][:, :, 0].numpy()
        got = session.run(None, {"input": x.numpy()})[0]
        assert got.shape == ref.shape, (layer, t)
        np.testing.assert_allclose(got, ref, atol=1e-4, rtol=0)


@pytest.mark.parametrize(
    ("context", "layers", "layer"),
    [("gru", 1, "context"), ("lstm", 2, "context.1"), ("lstm", 2, "encoder")],
)
def test_onnxruntime_matches_pytorch(tmp_path, context, layers, layer):
    torch.manual_seed(0)
    model = cpc.cpc_audio(
        channels=32, context=context, context_dim=24, context_layers=layers, num_offsets=2
    ).eval()
    path = export_onnx(model, tmp_path / "m.onnx", layer)
    check(model, path, layer, lambda t: (2, t))


def test_signal_model_exports(tmp_path):
    torch.manual_seed(0)
    model = cpc.cpc_signal(3, channels=16, context_dim=8).eval()
    check(model, export_onnx(model, tmp_path / "s.onnx"), "context", lambda t: (1, t // 10, 3))


def test_cli_exports_a_converted_cpc_audio_model(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["convert", "cpc_audio", str(FIXTURES / "big_train"), "--out", str(run)]) == 0
    out = tmp_path / "cpc_audio.onnx"
    assert main(["export", str(run), str(out), "--layer", "context.2"]) == 0
    assert '"opset": 17' in capsys.readouterr().out
    check(cpc.load(str(run)), out, "context.2", lambda t: (1, t))
    assert main(["export", str(run), str(tmp_path / "bad.onnx"), "--layer", "context.9"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "context.9" in err
    assert not (tmp_path / "bad.onnx").exists()
