"""Training: the TF OD API learning-rate schedules."""

from kdet.training.learning_rate_schedules import CosineDecayWithWarmup
from kdet.training.learning_rate_schedules import ExponentialDecayWithBurnin
from kdet.training.learning_rate_schedules import ManualStepping

__all__ = ["CosineDecayWithWarmup", "ExponentialDecayWithBurnin", "ManualStepping"]
