"""Streaming extraction: any piece sizes give the offline features; latency is the field."""

import pytest
import torch

import cpc
from cpc.features.streaming import Streamer
from cpc.models.cpc import CPCModel


def tiny(context="gru", layers=1, padding=None, frontend="waveform", in_channels=1) -> CPCModel:
    torch.manual_seed(0)
    if in_channels > 1:
        model = cpc.cpc_signal(in_channels, channels=8, context=context, context_dim=8)
    elif frontend == "waveform":
        model = cpc.cpc_audio(
            channels=8,
            kernels=(10, 8, 4),
            strides=(5, 4, 2),
            padding=padding,
            norm="layer_unbiased" if padding else "layer",
            context=context,
            context_dim=8,
            context_layers=layers,
            num_offsets=2,
        )
    else:
        model = cpc.cpc_audio(frontend=frontend, channels=8, context=context, context_dim=8)
    return model.double().eval()


def random_pieces(x: torch.Tensor, seed: int, most: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    pieces, start = [], 0
    while start < x.shape[0]:
        n = int(torch.randint(0, most, (1,), generator=g))  # empty pieces too
        pieces.append(x[start : start + n])
        start += n
    return pieces


def streamed(model: CPCModel, pieces: list[torch.Tensor], layer: str) -> torch.Tensor:
    stream = Streamer(model, layer)
    return torch.cat([*(stream.push(p) for p in pieces), stream.flush()])


@pytest.mark.parametrize("context", ["gru", "lstm"])
@pytest.mark.parametrize("padding", [None, (3, 2, 1)])
def test_random_pieces_equal_offline_features(context, padding):
    model = tiny(context, layers=3, padding=padding)
    seed = 0
    x = torch.randn(3001, dtype=torch.float64)
    for layer in ["encoder", "context", "context.2"]:
        offline, _ = model.features(x[None], layer=layer)
        for most in (7, 500):  # pieces far shorter and far longer than a step
            got = streamed(model, random_pieces(x, seed, most), layer)
            assert got.shape == offline[0, :, 0].shape, (layer, most)
            torch.testing.assert_close(got, offline[0, :, 0])


@pytest.mark.parametrize("kind", ["logmel", "signal"])
def test_other_encoders_stream_exactly(kind):
    model = tiny(frontend="logmel") if kind == "logmel" else tiny(in_channels=3)
    x = torch.randn(4000, dtype=torch.float64)
    if kind == "signal":
        x = torch.randn(400, 3, dtype=torch.float64)
    offline, _ = model.features(x[None])
    torch.testing.assert_close(
        streamed(model, random_pieces(x, 3, 90), "context"), offline[0, :, 0]
    )


@pytest.mark.parametrize("padding", [None, (3, 2, 1)])
def test_latency_is_the_receptive_field(padding):
    model = tiny(padding=padding)
    stream = Streamer(model)
    field, left = model.receptive_field, model.encoder.left_padding
    assert stream.latency_samples == field - left
    x = torch.randn(3000, dtype=torch.float64)
    got = 0
    for t in range(x.shape[0]):  # one sample at a time
        got += stream.push(x[t : t + 1]).shape[0]
        # feature j needs samples up to j * D - left + field - 1 and no more
        assert got == max(0, (t + 1 - (field - left)) // model.downsampling + 1), t


def test_flush_starts_a_new_stream():
    model = tiny("lstm", padding=(3, 2, 1))
    x = torch.randn(2000, dtype=torch.float64)
    stream = Streamer(model)
    first = torch.cat([stream.push(x), stream.flush()])
    second = torch.cat([stream.push(x[:999]), stream.push(x[999:]), stream.flush()])
    torch.testing.assert_close(first, second)
    assert stream.flush().shape == (0, 8)  # nothing pushed: nothing out


def test_what_cannot_be_streamed_is_refused():
    with pytest.raises(ValueError, match="GRU/LSTM"):
        Streamer(tiny("transformer"), "context")
    assert Streamer(tiny("transformer"), "encoder").push(torch.zeros(1000)).shape[1] == 8
    with pytest.raises(ValueError, match="top_db"):
        Streamer(tiny(frontend="mfcc"))
    with pytest.raises(ValueError, match=r"layers 1\.\.3"):
        Streamer(tiny(layers=3), "context.4")
