"""ONNX export of the feature extractor: ``cpc export RUN out.onnx [--layer context]``.

What is exported: the encoder and, for ``--layer context`` / ``context.N``, the context
network up to that layer, in eval mode, as one graph from a batch of equal-length
inputs to features. The predictor and the loss are not exported. Input ``input``:
``(batch, samples)`` for a waveform model, ``(batch, samples, channels)`` for signals,
float32; output ``features``: ``(batch, steps, dim)`` float32, with ``steps`` given by
the encoder's length formula (``(t - receptive_field) // downsampling + 1`` unpadded).
Batch and time are dynamic axes. Files of different lengths go one at a time (no
lengths input: padding a batch would change nothing for unpadded encoders, but the
caller would still need to cut each output at its own length).

The graph is written by torch's TorchScript-based exporter (``dynamo=False``) at ONNX
opset :data:`OPSET`: standard ``Conv``, ``ReduceMean``/``Sqrt`` (norms),
``BatchNormalization``, ``Relu``, and the ``GRU``/``LSTM`` operators. Image-grid models
and the spectral front-ends (the exporter cannot write their complex STFT) are not
exported; transformer and causal-convolution contexts are traced as ordinary operators
but are not covered by the tests.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from cpc.models.cpc import CPCModel
from cpc.models.encoders import ConvEncoder

#: The ONNX opset written (ONNX Runtime 1.17 and later run it).
OPSET = 17


class FeatureGraph(nn.Module):
    """The exported computation: input -> ``model.features(x, layer=layer)`` as (b, s, d)."""

    def __init__(self, model: CPCModel, layer: str) -> None:
        super().__init__()
        model.context_layer(layer)  # checks the name
        self.model = model.eval()
        self.layer = layer

    def forward(self, x: Tensor) -> Tensor:
        feats, _ = self.model.features(x, layer=self.layer)
        return feats[:, :, 0]  # (b, s, 1, d) -> (b, s, d)


def example_input(model: CPCModel, signal_channels: int | None) -> Tensor:
    """A dummy input of a few steps, in the model's input layout."""
    t = int(model.receptive_field) + 8 * model.downsampling
    if signal_channels is None:
        return torch.zeros(1, t)
    return torch.zeros(1, t, signal_channels)


def export_onnx(model: CPCModel, path: str | Path, layer: str = "context") -> Path:
    """Write ``path`` (ONNX); returns it. See the module docstring for what is exported."""
    if not isinstance(model.encoder, ConvEncoder):
        raise ValueError(
            f"only waveform and signal encoders are exported, not {type(model.encoder).__name__}"
            " (torch's ONNX exporter cannot write the spectral front-end's complex STFT)"
        )
    channels = model.encoder.in_channels
    x = example_input(model, None if channels == 1 else channels)
    axes = {0: "batch", 1: "samples"}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's notes about RNNs and batch size
        torch.onnx.export(
            FeatureGraph(model, layer),
            (x,),
            str(path),
            input_names=["input"],
            output_names=["features"],
            dynamic_axes={"input": axes, "features": {0: "batch", 1: "steps"}},
            opset_version=OPSET,
            dynamo=False,
        )
    return path
