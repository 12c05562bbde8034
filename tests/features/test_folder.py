"""Long recordings to feature files: blocks in, rows out, equal to whole-file features."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from cpc.data.blocks import AudioBlocks
from cpc.data.resample import resample
from cpc.errors import DataError
from cpc.features.folder import write_features
from cpc.models.builders import cpc_audio

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(context: str) -> torch.nn.Module:
    torch.manual_seed(0)
    model = cpc_audio(
        channels=16, context_dim=16, kernels=(10, 8, 4), strides=(5, 4, 2), context=context,
        num_offsets=2, num_negatives=4,
    )  # fmt: skip
    return model.eval()


CASES = [("gru", "context"), ("gru", "encoder"), ("conv", "context")]


@pytest.mark.parametrize(("context", "layer"), CASES)
def test_blocks_to_npy_equal_whole_file_features(tmp_path, context, layer) -> None:
    rng = np.random.default_rng(0)
    x = (0.3 * rng.standard_normal(8000 * 7 + 13)).astype(np.float32)  # 7 s at 8 kHz
    sf.write(tmp_path / "tel.wav", x, 8000, subtype="FLOAT")
    model = tiny(context)
    blocks = AudioBlocks(tmp_path / "tel.wav", 16000, block_seconds=0.61)
    steps, dim = write_features(model, blocks, blocks.length, tmp_path / "f.npy", layer, 97)
    got = np.load(tmp_path / "f.npy", mmap_mode="r")
    whole = torch.from_numpy(resample(x, 8000, 16000))
    with torch.no_grad():
        want = model.features(whole[None], layer=layer)[0][0, :, 0].numpy()
    assert got.shape == want.shape == (steps, dim)
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-4)


def test_a_file_failing_half_way_leaves_no_features(tmp_path) -> None:
    x = (0.3 * np.random.default_rng(0).standard_normal(16000 * 4)).astype(np.float32)
    x[16000 * 3] = np.inf
    sf.write(tmp_path / "bad.wav", x, 16000, subtype="FLOAT")
    blocks = AudioBlocks(tmp_path / "bad.wav", 16000, block_seconds=1.0)
    with pytest.raises(DataError, match="non-finite"):
        write_features(tiny("gru"), blocks, blocks.length, tmp_path / "f.npy")
    assert not (tmp_path / "f.npy").exists()


def test_too_short_input_is_refused(tmp_path) -> None:
    with pytest.raises(ValueError, match="receptive field"):
        write_features(tiny("gru"), [np.zeros(50, np.float32)], 50, tmp_path / "f.npy")
    assert not (tmp_path / "f.npy").exists()
