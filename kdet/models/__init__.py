"""Detection meta-architectures on the shared `ObjectDetector` base."""

from kdet.models.center_net import CenterNet
from kdet.models.center_net import DeepMACMaskTask
from kdet.models.center_net import KeypointEstimationTask
from kdet.models.faster_rcnn import RFCN
from kdet.models.faster_rcnn import ContextRCNN
from kdet.models.faster_rcnn import FasterRCNN
from kdet.models.faster_rcnn import MaskRCNN
from kdet.models.object_detector import ObjectDetector
from kdet.models.results import Results
from kdet.models.ssd import SSD

__all__ = [
    "RFCN",
    "SSD",
    "CenterNet",
    "ContextRCNN",
    "DeepMACMaskTask",
    "FasterRCNN",
    "KeypointEstimationTask",
    "MaskRCNN",
    "ObjectDetector",
    "Results",
]
