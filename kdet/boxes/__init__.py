"""Pure box functions: formats, IoU, clipping, area and box coders."""

from kdet.boxes.box_ops import PADDING_VALUE
from kdet.boxes.box_ops import area
from kdet.boxes.box_ops import clip_boxes
from kdet.boxes.box_ops import convert_format
from kdet.boxes.box_ops import is_padding
from kdet.boxes.box_ops import pairwise_iou
from kdet.boxes.faster_rcnn_box_coder import FasterRcnnBoxCoder

__all__ = [
    "PADDING_VALUE",
    "FasterRcnnBoxCoder",
    "area",
    "clip_boxes",
    "convert_format",
    "is_padding",
    "pairwise_iou",
]
