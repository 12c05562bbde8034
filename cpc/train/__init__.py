"""Training: the loop, checkpoints, distributed set-up, schedule, loaders and metrics.

``train(config)`` runs (or resumes) a run; ``load_model(path)`` rebuilds a trained model
from a run directory, a checkpoint directory or a weights file without executing
anything stored in it.
"""

from cpc.checkpoints.store import (
    Checkpoint,
    CheckpointError,
    TrainState,
    latest_checkpoint,
    load_checkpoint,
    load_model,
    read_meta,
    save_checkpoint,
)
from cpc.errors import NonFiniteLossError
from cpc.train.schedule import build_optimizer, lr_at, param_groups
from cpc.train.trainer import TrainResult, train

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "NonFiniteLossError",
    "TrainResult",
    "TrainState",
    "build_optimizer",
    "latest_checkpoint",
    "load_checkpoint",
    "load_model",
    "lr_at",
    "param_groups",
    "read_meta",
    "save_checkpoint",
    "train",
]
