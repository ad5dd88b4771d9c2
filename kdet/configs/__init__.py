"""Pipeline configs: TF OD API pipeline.config files read into kdet models and training."""

from kdet.configs.checkpoints import FineTuneRestore
from kdet.configs.checkpoints import restore_fine_tune_checkpoint
from kdet.configs.checkpoints import restore_pipeline_checkpoint
from kdet.configs.checkpoints import restored_pipeline
from kdet.configs.config_paths import ConfigPath
from kdet.configs.config_paths import check_config_paths
from kdet.configs.datasets import check_train_dataset
from kdet.configs.datasets import eval_dataset
from kdet.configs.datasets import train_dataset
from kdet.configs.pipeline import Pipeline
from kdet.configs.pipeline import compiled_pipeline
from kdet.configs.pipeline import load_pipeline
from kdet.configs.text_format import ConfigError

__all__ = [
    "ConfigError",
    "ConfigPath",
    "FineTuneRestore",
    "Pipeline",
    "check_config_paths",
    "check_train_dataset",
    "compiled_pipeline",
    "eval_dataset",
    "load_pipeline",
    "restore_fine_tune_checkpoint",
    "restore_pipeline_checkpoint",
    "restored_pipeline",
    "train_dataset",
]
