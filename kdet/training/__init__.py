"""Training: `train` into a model directory (checkpoints, TensorBoard, resume), TF OD API
learning-rate schedules."""

from kdet.training.learning_rate_schedules import CosineDecayWithWarmup
from kdet.training.learning_rate_schedules import ExponentialDecayWithBurnin
from kdet.training.learning_rate_schedules import ManualStepping
from kdet.training.trainer import latest_checkpoint
from kdet.training.trainer import train

__all__ = [
    "CosineDecayWithWarmup",
    "ExponentialDecayWithBurnin",
    "ManualStepping",
    "latest_checkpoint",
    "train",
]
