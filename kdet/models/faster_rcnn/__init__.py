"""Faster R-CNN: the TF OD API two-stage meta-architecture and its heads."""

from kdet.models.faster_rcnn.box_classifier_head import BoxClassifierHead
from kdet.models.faster_rcnn.faster_rcnn import FasterRCNN
from kdet.models.faster_rcnn.rpn_head import RPNHead

__all__ = ["BoxClassifierHead", "FasterRCNN", "RPNHead"]
