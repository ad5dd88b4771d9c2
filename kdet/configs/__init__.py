"""Pipeline configs: TF OD API pipeline.config files read into kdet models and training."""

from kdet.configs.pipeline import ConfigPath
from kdet.configs.pipeline import FineTuneRestore
from kdet.configs.pipeline import Pipeline
from kdet.configs.pipeline import check_config_paths
from kdet.configs.pipeline import check_train_dataset
from kdet.configs.pipeline import compiled_pipeline
from kdet.configs.pipeline import eval_dataset
from kdet.configs.pipeline import load_pipeline
from kdet.configs.pipeline import restore_fine_tune_checkpoint
from kdet.configs.pipeline import restore_pipeline_checkpoint
from kdet.configs.pipeline import restored_pipeline
from kdet.configs.pipeline import train_dataset
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
