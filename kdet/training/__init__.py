"""Training: `train` into a model directory (checkpoints, TensorBoard, resume), `train_pipeline`
(a pipeline config trained as `kdet train` does), the TF OD API
learning-rate schedules, a learning-rate range test (`lr_sweep`), and the TF OD API's
`freeze_variables` / `update_trainable_variables` over readable variable names
(`variable_names`, `select_trainable`). Also the `tf.distribute` strategies of `kdet train
--strategy` (`distribution_strategy`, `mirrored_devices`), the config copy a model directory
keeps (`save_pipeline_config`, `config_copy_callback`), and the names of a model directory's
files (`model_dir`), and quantization-aware training (`QuantizationAwareTraining`, the TF
OD API's `graph_rewriter`)."""

from kdet.training import model_dir  # noqa: F401  (kdet.training.model_dir: the layout's names)
from kdet.training.config_copy import config_copy_callback
from kdet.training.config_copy import save_pipeline_config
from kdet.training.distribution import distribution_strategy
from kdet.training.distribution import mirrored_devices
from kdet.training.learning_rate_schedules import CosineDecayWithWarmup
from kdet.training.learning_rate_schedules import ExponentialDecayWithBurnin
from kdet.training.learning_rate_schedules import ManualStepping
from kdet.training.lr_sweep import lr_sweep
from kdet.training.lr_sweep import plot_lr_sweep
from kdet.training.optimizers import FusedAdam
from kdet.training.pipeline_training import train_pipeline
from kdet.training.quantization import QuantizationAwareTraining
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
    "FusedAdam",
    "ManualStepping",
    "NonFiniteLossError",
    "QuantizationAwareTraining",
    "TrainingInputRanOutError",
    "config_copy_callback",
    "distribution_strategy",
    "latest_checkpoint",
    "lr_sweep",
    "mirrored_devices",
    "plot_lr_sweep",
    "save_pipeline_config",
    "select_trainable",
    "train",
    "train_pipeline",
    "variable_names",
]
