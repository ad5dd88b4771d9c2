"""Faster R-CNN: the TF OD API two-stage meta-architecture, its stages and their heads (and
Mask R-CNN, its third, mask stage; R-FCN, its position-sensitive second stage; Context R-CNN,
its attention into context features)."""

from kdet.models.faster_rcnn.box_classifier_head import BoxClassifierHead
from kdet.models.faster_rcnn.context_attention import ContextAttention
from kdet.models.faster_rcnn.context_attention import ContextProjection
from kdet.models.faster_rcnn.context_rcnn import ContextRCNN
from kdet.models.faster_rcnn.faster_rcnn import FasterRCNN
from kdet.models.faster_rcnn.faster_rcnn import default_roi_cropper
from kdet.models.faster_rcnn.mask_head import MaskHead
from kdet.models.faster_rcnn.mask_rcnn import MaskRCNN
from kdet.models.faster_rcnn.position_sensitive_crop import position_sensitive_crop_regions
from kdet.models.faster_rcnn.region_proposal_network import RegionProposalNetwork
from kdet.models.faster_rcnn.region_proposal_network import default_anchor_generator
from kdet.models.faster_rcnn.rfcn import RFCN
from kdet.models.faster_rcnn.rfcn_box_predictor import RFCNBoxPredictor
from kdet.models.faster_rcnn.roi_heads import RoIHeads
from kdet.models.faster_rcnn.roi_heads import default_non_max_suppression
from kdet.models.faster_rcnn.rpn_head import RPNHead

__all__ = [
    "RFCN",
    "BoxClassifierHead",
    "ContextAttention",
    "ContextProjection",
    "ContextRCNN",
    "FasterRCNN",
    "MaskHead",
    "MaskRCNN",
    "RFCNBoxPredictor",
    "RPNHead",
    "RegionProposalNetwork",
    "RoIHeads",
    "default_anchor_generator",
    "default_non_max_suppression",
    "default_roi_cropper",
    "position_sensitive_crop_regions",
]
