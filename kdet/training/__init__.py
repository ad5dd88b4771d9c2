"""Training: `train` into a model directory (checkpoints, TensorBoard, resume), the TF OD API
learning-rate schedules, a learning-rate range test (`lr_sweep`), and the TF OD API's
`freeze_variables` / `update_trainable_variables` over readable variable names
(`variable_names`, `select_trainable`)."""

from kdet.training.learning_rate_schedules import CosineDecayWithWarmup
from kdet.training.learning_rate_schedules import ExponentialDecayWithBurnin
from kdet.training.learning_rate_schedules import ManualStepping
from kdet.training.lr_sweep import lr_sweep
from kdet.training.lr_sweep import plot_lr_sweep
from kdet.training.trainer import CheckpointWriteError
from kdet.training.trainer import NonFiniteLossError
from kdet.training.trainer import TrainingInputRanOutError
from kdet.training.trainer import latest_checkpoint
from kdet.training.trainer import train
from kdet.training.variable_selection import select_trainable
from kdet.training.variable_selection import variable_names

__all__ = [
    "CheckpointWriteError",
    "CosineDecayWithWarmup",
    "ExponentialDecayWithBurnin",
    "NonFiniteLossError",
    "ManualStepping",
    "TrainingInputRanOutError",
    "latest_checkpoint",
    "lr_sweep",
    "plot_lr_sweep",
    "select_trainable",
    "train",
    "variable_names",
]
