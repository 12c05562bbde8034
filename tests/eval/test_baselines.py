import numpy as np
import pytest
import torch

from cpc.eval.baselines import (
    logmel_features,
    mfcc_features,
    num_frames,
    raw_pixel_features,
    signal_statistics,
)


@pytest.mark.parametrize("t", [400, 401, 559, 560, 16000, 16123])
def test_mfcc_frame_count(t: int) -> None:
    wave = torch.randn(t, generator=torch.Generator().manual_seed(t))
    feats = mfcc_features(wave, 16000)
    assert feats.shape == ((t - 400) // 160 + 1, 13)
    assert num_frames(t) == feats.shape[0]
    assert logmel_features(wave, 16000).shape == (feats.shape[0], 40)


def test_mfcc_deltas_batch_and_locality() -> None:
    wave = torch.randn(2, 4000, generator=torch.Generator().manual_seed(0))
    feats = mfcc_features(wave, deltas=True)
    assert feats.shape == (2, 23, 39)
    assert torch.allclose(feats[1], mfcc_features(wave[1], deltas=True), atol=1e-4)
    # frame j covers samples [j * 160, j * 160 + 400): changing sample 1000 only
    # touches frames 4, 5 and 6.
    changed = wave[0].clone()
    changed[1000] += 5.0
    diff = (logmel_features(changed) - logmel_features(wave[0])).abs().amax(1)
    assert torch.nonzero(diff > 1e-5).flatten().tolist() == [4, 5, 6]
    lengths = torch.tensor([399, 400, 4000])
    assert num_frames(lengths).tolist() == [0, 1, 23]


def test_hop_defaults_follow_sample_rate() -> None:
    wave = np.random.default_rng(0).normal(size=8000).astype(np.float32)
    assert logmel_features(wave, 8000).shape == ((8000 - 200) // 80 + 1, 40)
    with pytest.raises(ValueError, match="shorter"):
        mfcc_features(torch.zeros(100))


def test_raw_pixels() -> None:
    images = torch.rand(3, 2, 8, 6)
    flat = raw_pixel_features(images)
    assert flat.shape == (3, 96)
    assert torch.equal(flat[1], images[1].reshape(-1))
    assert raw_pixel_features(images.numpy(), size=2).shape == (3, 8)


def test_signal_statistics_values_and_padding() -> None:
    x = torch.tensor([[0.0, 1.0], [2.0, 1.0], [4.0, 1.0], [99.0, -99.0]])
    stats = signal_statistics(x, 3, sample_rate=100.0)
    # order: means, stds, mins, maxs, mean |diff| (per channel), duration
    expected = [2, 1, np.sqrt(8 / 3), 0, 0, 1, 4, 1, 2, 0, 0.03]
    assert stats.shape == (11,)
    assert torch.allclose(stats, torch.tensor(expected, dtype=torch.float32))
    batch = torch.stack([x, x.flip(0)])
    out = signal_statistics(batch, torch.tensor([3, 4]))
    assert out.shape == (2, 11)
    assert torch.allclose(out[0], signal_statistics(x[:3]))
    assert out[1, -1] == 4
