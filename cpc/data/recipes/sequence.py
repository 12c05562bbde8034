"""What the sequence modalities (audio, signals) share: windows, padding, chunked
extraction, and the settings of the 1-D convolutional encoder.
"""

from __future__ import annotations

from dataclasses import dataclass

from cpc.config.ranges import WIDTH, Range, ranged
from cpc.data.recipe import Recipe
from cpc.errors import ConfigError
from cpc.models.encoders import Norm


@dataclass
class ConvEncoderFields:
    """``model.*`` keys of the strided 1-D convolutional encoder (audio and signals).

    None: the modality's builder default (:func:`~cpc.models.builders.cpc_audio`,
    :func:`~cpc.models.builders.cpc_signal`).
    """

    channels: int | None = ranged(WIDTH)
    """Width of the 1-D encoder (CPC paper: 512)."""
    kernels: list[int] | None = ranged(WIDTH)
    """Kernel size of each convolution, one per layer."""
    strides: list[int] | None = ranged(WIDTH)
    """Stride of each convolution; their product is the downsampling."""
    norm: Norm | None = None
    """Per-step norm of the 1-D encoder; ``layer_unbiased`` is CPC_audio's (imports)."""
    padding: list[int] | None = ranged(Range(0, 65_536))
    """Zeros on both sides of each layer's input (CPC_audio: [3, 2, 1, 1, 1]); None:
    unpadded (this package's default)."""

    def __post_init__(self) -> None:
        if (
            self.kernels is not None
            and self.strides is not None
            and len(self.kernels) != len(self.strides)
        ):
            raise ConfigError(
                f"model.kernels {self.kernels} and model.strides {self.strides} "
                "need one entry per layer"
            )


class SequenceRecipe(Recipe):
    """A recipe whose items are variable-length streams along time.

    Training items are :class:`~cpc.data.windows.WindowDataset` windows collated by
    :func:`~cpc.data.collate.pad_collate`; extraction writes one ``.npy`` of features
    per file, computed in chunks (:func:`cpc.features.extract.extract_dataset`).
    """

    layout = "sequence"
