"""CenterNet ("objects as points") meta-architecture, its heads, targets and keypoint tasks."""

from kdet.models.center_net.center_net import CenterNet
from kdet.models.center_net.center_net_prediction_head import CenterNetPredictionHead
from kdet.models.center_net.deepmac import DeepMACMaskNetwork
from kdet.models.center_net.deepmac import DeepMACMaskTask
from kdet.models.center_net.keypoint_estimation_task import KeypointEstimationTask

__all__ = [
    "CenterNet",
    "CenterNetPredictionHead",
    "DeepMACMaskNetwork",
    "DeepMACMaskTask",
    "KeypointEstimationTask",
]
