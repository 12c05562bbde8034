"""soxr resampling: lengths, streaming equals whole, random-access stretches, bounded cost."""

from __future__ import annotations

import resource
import time

import numpy as np
import pytest
import soundfile as sf
import soxr

from cpc.data.blocks import AudioBlocks
from cpc.data.resample import StreamResampler, resample, resampled_length, source_span
from cpc.errors import DataError

RATES = [8000, 11127, 22050, 44100, 44101, 48000, 16000]


def noise(n: int, seed: int = 0) -> np.ndarray:
    return (0.3 * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)


@pytest.mark.parametrize("rate", RATES)
def test_length_formula_matches_soxr(rate: int) -> None:
    for n in [0, 1, 2, 3, 5, 7, 441, 1000, 44101, 123457]:
        got = len(resample(noise(n), rate, 16000))
        assert got == resampled_length(n, rate, 16000), (rate, n)
    for src, dst, n in [(32000, 16000, 1), (32000, 16000, 5), (44100, 22050, 9)]:  # halves
        assert len(soxr.resample(noise(n), src, dst)) == resampled_length(n, src, dst)


@pytest.mark.parametrize("rate", [8000, 11127, 44101])
def test_stream_equals_whole(rate: int) -> None:
    x = noise(3 * rate + 17)
    whole = resample(x, rate, 16000)
    stream = StreamResampler(rate, 16000)
    rng = np.random.default_rng(1)
    parts, at = [], 0
    while at < len(x):
        size = int(rng.integers(1, 5000))
        parts.append(stream.push(x[at : at + size]))
        at += size
    parts.append(stream.finish())
    np.testing.assert_array_equal(np.concatenate(parts), whole)


@pytest.mark.parametrize("rate", [8000, 11127, 44100, 44101, 48000])
def test_random_access_stretch_equals_the_whole_file_slice(rate: int) -> None:
    x = noise(5 * rate + 3)
    whole = resample(x, rate, 16000)
    for offset, count in [(0, 4000), (7, 100), (16000 * 2 + 5, 4000), (len(whole) - 50, 4000)]:
        span = source_span(len(x), rate, 16000, offset, count)
        assert span.start >= 0 and span.stop - span.start <= 2 * rate + 4 * count  # bounded read
        stretch = resample(x[span.start : span.stop], rate, 16000)[span.skip :][: span.count]
        np.testing.assert_allclose(stretch, whole[offset : offset + count], atol=1e-5)


@pytest.mark.parametrize("rate", [44101, 11127])
def test_odd_rates_cost_bounded_time_and_memory(rate: int) -> None:
    """torchaudio's exact-ratio filter needed 5.6 GB (44101 Hz) or 6.3 GB and 21 s (11127
    Hz) for one second; here ten seconds take well under a second and a few MB."""
    x = noise(10 * rate)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB
    start = time.perf_counter()
    y = resample(x, rate, 16000)
    seconds = time.perf_counter() - start
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak) / 1024
    assert len(y) == 160_000
    assert seconds < 2.0, seconds  # about 0.02 s on an idle core
    assert grown_mb < 100, grown_mb


def test_audio_blocks_equal_the_whole_file(tmp_path) -> None:
    x = np.stack([noise(3 * 11127 + 5, 1), noise(3 * 11127 + 5, 2)], axis=1)  # stereo
    sf.write(tmp_path / "a.wav", x, 11127, subtype="FLOAT")
    blocks = AudioBlocks(tmp_path / "a.wav", 16000, block_seconds=0.37)
    got = np.concatenate(list(blocks))
    assert len(got) == blocks.length
    np.testing.assert_array_equal(got, resample(x.mean(axis=1, dtype=np.float32), 11127, 16000))


def test_audio_blocks_name_a_nan_and_where(tmp_path) -> None:
    x = noise(16000 * 3)
    x[int(16000 * 2.5)] = np.nan
    sf.write(tmp_path / "nan.wav", x, 16000, subtype="FLOAT")
    with pytest.raises(DataError, match=r"non-finite: .* at 2\.50 s"):
        list(AudioBlocks(tmp_path / "nan.wav", 16000, block_seconds=1.0))


def test_audio_blocks_unreadable_header(tmp_path) -> None:
    (tmp_path / "x.wav").write_bytes(b"RIFF0000WAVEjunk")
    with pytest.raises(DataError, match="unreadable"):
        AudioBlocks(tmp_path / "x.wav", 16000)
