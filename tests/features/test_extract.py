"""Chunked extraction equals whole-file features."""

import numpy as np
import pytest
import soundfile as sf
import torch

import cpc
from cpc.data.audio import AudioFileDataset
from cpc.features.extract import extract_dataset, extract_sequence


def tiny(context: str, frontend: str = "waveform") -> cpc.CPCModel:
    kernels, strides = ((10, 8, 4), (5, 4, 2)) if frontend == "waveform" else ((3,), (1,))
    model = cpc.cpc_audio(
        frontend=frontend,
        channels=16,
        kernels=kernels,
        strides=strides,
        context=context,
        context_dim=12,
        num_offsets=2,
    )
    return model.double().eval()


@pytest.mark.parametrize("context", ["gru", "lstm", "transformer", "conv"])
@pytest.mark.parametrize("chunk", [1, 7, 50])
@pytest.mark.parametrize("frontend", ["waveform", "logmel"])
def test_chunks_equal_whole_file(context, chunk, frontend):
    torch.manual_seed(0)
    model = tiny(context, frontend)
    wave = torch.randn(9000, dtype=torch.float64)
    whole, _ = model.features(wave[None], layer="context")
    for layer, ref in [
        ("context", whole[0, :, 0]),
        ("encoder", model.encoder(wave[None])[0][0, :, 0]),
    ]:
        got = extract_sequence(model, wave, layer, chunk_steps=chunk)
        assert got.shape == ref.shape
        torch.testing.assert_close(got, ref)


def test_too_short_is_named():
    with pytest.raises(ValueError, match="receptive field"):
        extract_sequence(tiny("gru"), torch.randn(100, dtype=torch.float64))


def test_extract_dataset_writes_index(tmp_path):
    for i, n in enumerate([4000, 7000]):
        sf.write(tmp_path / f"a{i}.wav", np.random.default_rng(i).standard_normal(n) * 0.1, 16000)
    model = tiny("gru").float()
    index = extract_dataset(model, AudioFileDataset(tmp_path), tmp_path / "out", chunk_steps=5)
    lines = index.read_text().splitlines()
    assert lines[0] == "path,features,steps,dim" and len(lines) == 3
    feats = np.load(tmp_path / "out" / lines[1].split(",")[1])
    assert feats.shape[1] == 12 and feats.shape[0] == int(lines[1].split(",")[2])


@pytest.mark.parametrize("context", ["gru", "lstm"])
@pytest.mark.parametrize("padding", [None, (3, 2, 1)])
def test_every_context_layer_is_exact_under_chunking(context, padding):
    torch.manual_seed(0)
    model = cpc.cpc_audio(
        channels=8,
        kernels=(10, 8, 4),
        strides=(5, 4, 2),
        padding=padding,
        context=context,
        context_dim=6,
        context_layers=3,
        num_offsets=2,
    )
    model = model.double().eval()
    wave = torch.randn(5000, dtype=torch.float64)
    z = model.encoder(wave[None])[0]
    h = z[0, :, 0]
    for n in (1, 2, 3):  # the slow reference: one nn.GRU/LSTM layer at a time
        rnn = model.context.rnn
        one = type(rnn)(h.shape[-1], 6, batch_first=True).double()
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(one, f"{name}_l0").data = getattr(rnn, f"{name}_l{n - 1}").data
        h = one(h[None])[0][0].detach()
        offline, _ = model.features(wave[None], layer=f"context.{n}")
        torch.testing.assert_close(offline[0, :, 0], h)
        for chunk in (1, 7):
            got = extract_sequence(model, wave, f"context.{n}", chunk_steps=chunk)
            torch.testing.assert_close(got, h)
    torch.testing.assert_close(h, model.features(wave[None])[0][0, :, 0])  # context.3 == context


def test_bad_layer_names_are_refused():
    model = tiny("gru")
    for layer, match in [("context.2", "layers 1..1"), ("ctx", "context.N"), ("context.x", "N")]:
        with pytest.raises(ValueError, match=match):
            extract_sequence(model, torch.randn(3000, dtype=torch.float64), layer)
    with pytest.raises(ValueError, match="GRU/LSTM"):
        tiny("transformer").features(torch.randn(1, 3000, dtype=torch.float64), layer="context.1")


PADDED = [("gru", "context", (3, 2, 1)), ("gru", "encoder", (3, 2, 1)),
          ("transformer", "context", (3, 2, 1)), ("transformer", "encoder", (1, 0, 0))]  # fmt: skip


@pytest.mark.parametrize(("context", "layer", "padding"), PADDED)
def test_padded_encoders_chunked_or_whole_equal_the_whole_file(context, layer, padding):
    torch.manual_seed(0)
    model = cpc.cpc_audio(
        channels=8, kernels=(10, 8, 4), strides=(5, 4, 2), padding=padding, context=context,
        context_dim=8, num_offsets=2,
    ).double().eval()  # fmt: skip
    wave = torch.randn(3000, dtype=torch.float64)
    want = model.features(wave[None], layer=layer)[0][0, :, 0]
    for chunk in (5, None, 0):  # 0: one latent per chunk
        got = extract_sequence(model, wave, layer, chunk_steps=chunk)
        torch.testing.assert_close(got, want)


def test_a_sequence_of_exactly_the_receptive_field_gives_one_feature():
    model = tiny("gru")
    field = model.receptive_field
    wave = torch.randn(field, dtype=torch.float64)
    got = extract_sequence(model, wave, chunk_steps=3)
    torch.testing.assert_close(got, model.features(wave[None])[0][0, :, 0])
    assert got.shape == (1, 12)
    with pytest.raises(ValueError, match=f"{field - 1} samples is shorter"):
        extract_sequence(model, wave[:-1])
