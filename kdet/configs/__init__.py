"""Pipeline configs: TF OD API pipeline.config files read into kdet models and training."""

from kdet.configs.pipeline import Pipeline
from kdet.configs.pipeline import eval_dataset
from kdet.configs.pipeline import load_pipeline
from kdet.configs.pipeline import restore_fine_tune_checkpoint
from kdet.configs.pipeline import train_dataset
from kdet.configs.text_format import ConfigError

__all__ = [
    "ConfigError",
    "Pipeline",
    "eval_dataset",
    "load_pipeline",
    "restore_fine_tune_checkpoint",
    "train_dataset",
]
