"""Element-wise detection losses: per-anchor values, weighted, never normalized.

Models divide the sums by a normalizer that is global across replicas (see
`kdet.models.distribution`).
"""

from kdet.losses.bootstrapped_sigmoid_classification_loss import (
    BootstrappedSigmoidClassificationLoss,
)
from kdet.losses.penalty_reduced_logistic_focal_loss import PenaltyReducedLogisticFocalLoss
from kdet.losses.sigmoid_focal_classification_loss import SigmoidFocalClassificationLoss
from kdet.losses.weighted_dice_classification_loss import WeightedDiceClassificationLoss
from kdet.losses.weighted_l1_localization_loss import WeightedL1LocalizationLoss
from kdet.losses.weighted_l2_localization_loss import WeightedL2LocalizationLoss
from kdet.losses.weighted_sigmoid_classification_loss import WeightedSigmoidClassificationLoss
from kdet.losses.weighted_smooth_l1_localization_loss import WeightedSmoothL1LocalizationLoss
from kdet.losses.weighted_softmax_classification_loss import WeightedSoftmaxClassificationLoss

__all__ = [
    "BootstrappedSigmoidClassificationLoss",
    "PenaltyReducedLogisticFocalLoss",
    "SigmoidFocalClassificationLoss",
    "WeightedDiceClassificationLoss",
    "WeightedL1LocalizationLoss",
    "WeightedL2LocalizationLoss",
    "WeightedSigmoidClassificationLoss",
    "WeightedSmoothL1LocalizationLoss",
    "WeightedSoftmaxClassificationLoss",
]
