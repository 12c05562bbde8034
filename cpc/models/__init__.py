"""Model parts and builders."""

from cpc.models.builders import (
    cpc_audio,
    cpc_audio_small,
    cpc_image,
    cpc_image_small,
    cpc_signal,
    make_context,
    make_predictor,
)
from cpc.models.context import (
    CausalConvContext,
    MaskedConvContext,
    RecurrentContext,
    TransformerContext,
)
from cpc.models.cpc import CPCModel, CPCOutput
from cpc.models.encoders import ConvEncoder, PatchGridEncoder, SpectralEncoder
from cpc.models.predictor import Predictor
from cpc.models.transformer_head import TransformerHead

__all__ = [
    "CPCModel",
    "CPCOutput",
    "CausalConvContext",
    "ConvEncoder",
    "MaskedConvContext",
    "PatchGridEncoder",
    "Predictor",
    "RecurrentContext",
    "SpectralEncoder",
    "TransformerContext",
    "TransformerHead",
    "cpc_audio",
    "cpc_audio_small",
    "cpc_image",
    "cpc_image_small",
    "cpc_signal",
    "make_context",
    "make_predictor",
]
