"""Contrastive Predictive Coding for speech, pen/sensor signals and image patch grids.

One prediction core (:class:`cpc.losses.InfoNCE`) serves every modality: encoders turn
the input into latents ``z`` of shape ``(b, s, p, d)``, a causal context network
summarises them, and a predictor guesses the latents ``k`` steps (or rows) ahead.
"""

from cpc.checkpoints.hub import from_pretrained, push_to_hub, save_pretrained
from cpc.checkpoints.loading import load_model as load
from cpc.checkpoints.pretrained import pretrained
from cpc.losses import InfoNCE
from cpc.models import (
    CPCModel,
    cpc_audio,
    cpc_audio_small,
    cpc_image,
    cpc_image_small,
    cpc_signal,
)
from cpc.version import __version__

__all__ = [
    "CPCModel",
    "InfoNCE",
    "__version__",
    "cpc_audio",
    "cpc_audio_small",
    "cpc_image",
    "cpc_image_small",
    "cpc_signal",
    "from_pretrained",
    "load",
    "pretrained",
    "push_to_hub",
    "save_pretrained",
]
