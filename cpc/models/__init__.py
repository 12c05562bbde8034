"""Model parts and builders."""

from cpc.models.builders import (
    cpc_audio,
    cpc_audio_small,
    cpc_image,
    cpc_image_small,
    cpc_signal,
    make_context,
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
    "cpc_audio",
    "cpc_audio_small",
    "cpc_image",
    "cpc_image_small",
    "cpc_signal",
    "make_context",
]
