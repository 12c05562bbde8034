"""CPC_audio checkpoints: import, reproduce its z and c, refuse what cannot be imported.

The fixtures (``tests/fixtures/cpc_audio``) were written by CPC_audio itself from random
weights, with the z and c it computes in eval mode from ``input.npy``.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import cpc
from cpc.checkpoints.convert import from_cpc_audio
from cpc.cli import main

FIXTURES = Path(__file__).parents[1] / "fixtures" / "cpc_audio"
INDEX = json.loads((FIXTURES / "index.json").read_text())
SOURCES = {"default_hub": "default_hub/checkpoint.pt", "big_train": "big_train"}
SOURCES["paper_gru_bn"] = "paper_gru_bn"


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("name", sorted(INDEX))
def test_fixture_reproduces_z_and_c_through_convert_and_load(name, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["convert", "cpc_audio", str(FIXTURES / SOURCES[name]), "--out", str(run)]) == 0
    model = cpc.load(str(run))
    wave = torch.from_numpy(np.load(FIXTURES / name / "input.npy"))
    assert list(wave.shape) == INDEX[name]["input"]
    with torch.no_grad():
        z, steps = model.features(wave, torch.tensor([wave.shape[1]] * 2), layer="encoder")
        c, _ = model.features(wave)
    assert list(z[:, :, 0].shape) == INDEX[name]["z"] and steps.tolist() == [137, 137]
    assert list(c[:, :, 0].shape) == INDEX[name]["c"]
    expected_z = torch.from_numpy(np.load(FIXTURES / name / "expected_z.npy"))
    expected_c = torch.from_numpy(np.load(FIXTURES / name / "expected_c.npy"))
    torch.testing.assert_close(z[:, :, 0], expected_z, atol=1e-5, rtol=0)
    torch.testing.assert_close(c[:, :, 0], expected_c, atol=1e-5, rtol=0)
    assert main(["info", str(run)]) == 0
    assert f"context out_dim: {INDEX[name]['c'][2]}" in capsys.readouterr().out


def test_extract_on_a_converted_run_gives_cpc_audio_features(tmp_path):
    run = tmp_path / "run"
    assert main(["convert", "cpc_audio", str(FIXTURES / "big_train"), "--out", str(run)]) == 0
    wave = np.load(FIXTURES / "big_train" / "input.npy")[1]
    (tmp_path / "wav").mkdir()
    sf.write(tmp_path / "wav" / "a.wav", wave, 16000, subtype="FLOAT")
    feats = tmp_path / "feats"
    args = ["extract", "--checkpoint", str(run), "--input", str(tmp_path / "wav")]
    assert main([*args, "--output", str(feats)]) == 0
    _, name, steps, dim = (feats / "index.csv").read_text().splitlines()[1].split(",")
    assert [int(steps), int(dim)] == INDEX["big_train"]["c"][1:]
    expected = np.load(FIXTURES / "big_train" / "expected_c.npy")[1]
    np.testing.assert_allclose(np.load(feats / name), expected, atol=1e-5, rtol=0)


def test_highest_training_checkpoint_is_taken(tmp_path):
    folder = tmp_path / "train"
    shutil.copytree(FIXTURES / "paper_gru_bn", folder)
    older = torch.load(folder / "checkpoint_3.pt", weights_only=True)
    older["gEncoder"] = {k: torch.zeros_like(v) for k, v in older["gEncoder"].items()}
    torch.save(older, folder / "checkpoint_2.pt")
    torch.save(older, folder / "checkpoint_10.pt")  # 10 > 3: numbers, not strings
    zeroed = from_cpc_audio(folder)
    assert all(v.abs().sum() == 0 for k, v in zeroed.state_dict().items() if "conv" in k)
    (folder / "checkpoint_10.pt").unlink()
    model = from_cpc_audio(folder)
    assert model.encoder.layers[0].weight.abs().sum() > 0


def _hub_with(tmp_path: Path, **config: object) -> Path:
    data = torch.load(FIXTURES / "default_hub" / "checkpoint.pt", weights_only=True)
    data["config"].update(config)
    path = tmp_path / "hub.pt"
    torch.save(data, path)
    return path


@pytest.mark.parametrize(
    ("option", "value"),
    [("arMode", "transformer"), ("encoder_type", "mfcc"), ("cpc_mode", "reverse")],
)
def test_unsupported_option_is_refused_in_one_line(tmp_path, capsys, option, value):
    hub = _hub_with(tmp_path, **{option: value})
    out = tmp_path / "run"
    assert main(["convert", "cpc_audio", str(hub), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{option}={value!r}" in err
    assert not out.exists()


def test_pickled_code_is_refused(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    torch.save({"config": {}, "weights": {}, "x": Path("/")}, path)  # an arbitrary object
    assert main(["convert", "cpc_audio", str(path), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "weights_only" in err


def test_existing_output_is_not_overwritten(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "keep.txt").write_text("mine")
    hub = str(FIXTURES / "default_hub" / "checkpoint.pt")
    assert main(["convert", "cpc_audio", hub, "--out", str(tmp_path / "run")]) == 2
    assert (tmp_path / "run" / "keep.txt").read_text() == "mine"
    assert "--out" in capsys.readouterr().err


def test_extract_intermediate_layer_chunked_and_streamed(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["convert", "cpc_audio", str(FIXTURES / "big_train"), "--out", str(run)]) == 0
    wave = np.load(FIXTURES / "big_train" / "input.npy")[0]
    (tmp_path / "wav").mkdir()
    sf.write(tmp_path / "wav" / "a.wav", wave, 16000, subtype="FLOAT")
    model = cpc.load(str(run))
    with torch.no_grad():
        expected = model.features(torch.from_numpy(wave)[None], layer="context.2")[0][0, :, 0]
    base = ["extract", "--checkpoint", str(run), "--input", str(tmp_path / "wav")]
    for i, extra in enumerate([["--chunk-steps", "10"], ["--stream", "10"]]):
        out = tmp_path / f"feats{i}"
        assert main([*base, "--output", str(out), "--layer", "context.2", *extra]) == 0
        name = (out / "index.csv").read_text().splitlines()[1].split(",")[1]
        np.testing.assert_allclose(np.load(out / name), expected.numpy(), atol=1e-5, rtol=0)
    capsys.readouterr()
    assert main([*base, "--output", str(tmp_path / "bad"), "--layer", "context.5"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--layer" in err and "1..4" in err
    assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize(
    ("sampling", "mode"),
    [(None, "batch"), ("samespeaker", "batch"), ("uniform", "batch"), ("samesequence", "sequence")],
)
def test_negatives_follow_cpc_audio_sampling(tmp_path, sampling, mode):
    """CPC_audio draws negatives from the batch unless told 'samesequence': an imported
    model trains on as CPC_audio would, not with this package's speech default."""
    data = torch.load(FIXTURES / "default_hub" / "checkpoint.pt", weights_only=True)
    data["config"].pop("samplingType", None)
    if sampling is not None:
        data["config"]["samplingType"] = sampling
    torch.save(data, tmp_path / "hub.pt")
    assert from_cpc_audio(tmp_path / "hub.pt").loss.negatives == mode
