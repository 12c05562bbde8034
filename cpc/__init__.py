"""Contrastive Predictive Coding for speech, pen/sensor signals and image patch grids.

One prediction core (:class:`cpc.losses.InfoNCE`) serves every modality: encoders turn
the input into latents ``z`` of shape ``(b, s, p, d)``, a causal context network
summarises them, and a predictor guesses the latents ``k`` steps (or rows) ahead.
"""

from cpc.losses import InfoNCE
from cpc.models import (
    CPCModel,
    cpc_audio,
    cpc_audio_small,
    cpc_image,
    cpc_image_small,
    cpc_signal,
)

__version__ = "0.1.0"


def load(path: str) -> CPCModel:
    """A ready model (eval mode) from a run dir, checkpoint dir or weights file.

    The config saved with the weights rebuilds the model; nothing in the file is
    executed (weights are safetensors, metadata JSON).
    """
    from cpc.train.checkpoint import load_model

    return load_model(path)


__all__ = [
    "CPCModel",
    "InfoNCE",
    "__version__",
    "cpc_audio",
    "cpc_audio_small",
    "cpc_image",
    "cpc_image_small",
    "cpc_signal",
    "load",
]
