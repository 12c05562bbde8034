"""Time-domain augmentation: each op does what it says, and draws are reproducible."""

import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from cpc.config import ConfigError, load_config
from cpc.data.audio import AudioWindowDataset
from cpc.data.augment import (
    AUGMENTATIONS,
    WaveAugment,
    add_noise,
    band_reject,
    pitch_ratio,
    pitch_shift,
    reverberate,
    room_response,
)
from cpc.data.recipes.audio import AudioData

RATE = 16000


def sine(freq: float, n: int = 8192, rate: int = RATE) -> torch.Tensor:
    return 0.1 * torch.sin(2 * math.pi * freq * torch.arange(n) / rate)


def band_energy(x: torch.Tensor, low: float, high: float, rate: int = RATE) -> float:
    spectrum = torch.fft.rfft(x).abs() ** 2
    freqs = torch.fft.rfftfreq(x.shape[-1], 1 / rate)
    return float(spectrum[(freqs >= low) & (freqs < high)].sum())


def peak_frequency(x: torch.Tensor, rate: int = RATE) -> float:
    return float(torch.fft.rfftfreq(x.shape[-1], 1 / rate)[torch.fft.rfft(x).abs().argmax()])


@pytest.mark.parametrize("rate", [8000, 16000, 44100])
@pytest.mark.parametrize("cents", [-300, 170, 300])
def test_pitch_shift_moves_a_tone_and_keeps_the_length(rate, cents):
    x = sine(440.0, 8192, rate)
    y = pitch_shift(x, rate, cents)
    assert y.shape == x.shape
    ratio = float(pitch_ratio(cents))
    assert abs(ratio - 2 ** (cents / 1200)) < 0.01 and pitch_ratio(cents).denominator <= 20
    bin_width = rate / x.shape[-1]
    assert abs(peak_frequency(y, rate) - 440.0 * ratio) <= bin_width


def test_band_reject_removes_its_band_only():
    x = torch.randn(32000, generator=torch.Generator().manual_seed(0))
    y = band_reject(x, RATE, 1000.0, q=2.0)  # 500 Hz wide
    near = band_energy(y, 875, 1125) / band_energy(x, 875, 1125)  # the central half
    far = band_energy(y, 4000, 6000) / band_energy(x, 4000, 6000)
    assert near < 0.05, near
    assert 0.9 < far < 1.1, far


@pytest.mark.parametrize("snr", [5.0, 20.0])
def test_noise_is_added_at_the_requested_snr(snr):
    x = sine(300.0, 32000)
    y = add_noise(x, snr, 0.0, torch.Generator().manual_seed(0))
    measured = 10 * math.log10(float(x.pow(2).mean() / (y - x).pow(2).mean()))
    assert abs(measured - snr) < 0.01


def test_noise_slope_colours_the_spectrum():
    x = sine(300.0, 32000)
    white = add_noise(x, 0.0, 0.0, torch.Generator().manual_seed(0)) - x
    brown = add_noise(x, 0.0, 2.0, torch.Generator().manual_seed(0)) - x
    low_high = [band_energy(n, 0, 500) / band_energy(n, 4000, 8000) for n in (white, brown)]
    assert low_high[0] < 0.3 < 100 < low_high[1]


def test_reverb_is_causal_decays_and_keeps_the_level():
    response = room_response(RATE, rt60=0.3, drr_db=3.0, generator=torch.Generator().manual_seed(0))
    assert response[0] == 1 and response.shape == (round(0.3 * RATE),)
    tail = response[1:].pow(2)
    assert abs(10 * math.log10(float(tail.sum())) + 3.0) < 1e-3  # direct-to-reverberant
    tenth = tail.shape[0] // 10
    assert tail[-tenth:].sum() < 1e-3 * tail[:tenth].sum()  # 60 dB down at the end
    click = torch.zeros(16000)
    click[4000] = 1.0
    y = reverberate(click, response)
    assert y.shape == click.shape
    assert y[:4000].abs().max() < 1e-6, "reverberation reached back in time"
    assert y[4001:8000].pow(2).sum() > 0.1 * y[4000] ** 2
    assert torch.isclose(y.pow(2).mean(), click.pow(2).mean(), rtol=1e-4)


def test_chain_is_a_function_of_the_generator_seed():
    x = torch.randn(10240, generator=torch.Generator().manual_seed(1)) * 0.1
    chain = WaveAugment(AUGMENTATIONS, RATE)
    a = chain(x, np.random.default_rng([0, 3, 5]))
    b = chain(x, np.random.default_rng([0, 3, 5]))
    c = chain(x, np.random.default_rng([0, 4, 5]))
    assert torch.equal(a, b)
    assert a.shape == x.shape and not torch.allclose(a, c)
    assert torch.isfinite(a).all()
    with pytest.raises(ValueError, match="'chorus'"):
        WaveAugment(("noise", "chorus"), RATE)
    assert WaveAugment.of([], RATE) is None


def test_window_dataset_augments_reproducibly_and_keeps_padding(tmp_path: Path):
    rng = np.random.default_rng(0)
    sf.write(tmp_path / "long.wav", 0.1 * rng.standard_normal(RATE), RATE)
    sf.write(tmp_path / "short.wav", 0.1 * rng.standard_normal(3000), RATE)
    chain = WaveAugment(("pitch", "reverb", "noise"), RATE)

    def items(epoch: int, augment: WaveAugment | None = chain) -> list[torch.Tensor]:
        data = AudioWindowDataset(tmp_path, RATE, 4000, seed=3, augment=augment)
        data.set_epoch(epoch)
        return [data[i]["x"] for i in range(len(data))]

    first, again, later, plain = items(0), items(0), items(1), items(0, None)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    short = next(i for i, x in enumerate(plain) if x[3000:].abs().max() == 0)
    assert torch.equal(plain[short], items(1, None)[short]), "the short clip's window is fixed"
    assert not torch.equal(first[short], later[short]), "the augmentation must change by epoch"
    assert not torch.equal(first[short], plain[short])
    assert first[short][3000:].abs().max() == 0, "padding must stay zero"


def test_config_names_a_bad_op(tmp_path: Path):
    with pytest.raises(ConfigError, match=r"data.wave_augment\[1\]='echo'"):
        load_config(None, ["data.wave_augment=[noise, echo]"])
    with pytest.raises(ConfigError, match="twice"):
        load_config(None, ["data.wave_augment=[noise, noise]"])
    data = load_config(None, ["data.wave_augment=[pitch, reverb]"]).data
    assert data.fields_as(AudioData).wave_augment == [
        "pitch",
        "reverb",
    ]
