"""Training: `train` into a model directory (checkpoints, TensorBoard, resume), the TF OD API
learning-rate schedules, and a learning-rate range test (`lr_sweep`)."""

from kdet.training.learning_rate_schedules import CosineDecayWithWarmup
from kdet.training.learning_rate_schedules import ExponentialDecayWithBurnin
from kdet.training.learning_rate_schedules import ManualStepping
from kdet.training.lr_sweep import lr_sweep
from kdet.training.lr_sweep import plot_lr_sweep
from kdet.training.trainer import latest_checkpoint
from kdet.training.trainer import train

__all__ = [
    "CosineDecayWithWarmup",
    "ExponentialDecayWithBurnin",
    "ManualStepping",
    "latest_checkpoint",
    "lr_sweep",
    "plot_lr_sweep",
    "train",
]
