"""Detection layers: image resizers, anchor generators and multi-class NMS."""

from kdet.layers.anchor_generator import AnchorGenerator
from kdet.layers.fixed_shape_resizer import FixedShapeResizer
from kdet.layers.grid_anchor_generator import GridAnchorGenerator
from kdet.layers.image_resizer import ImageResizer
from kdet.layers.keep_aspect_ratio_resizer import KeepAspectRatioResizer
from kdet.layers.multi_class_non_max_suppression import MultiClassNonMaxSuppression
from kdet.layers.multiscale_grid_anchor_generator import MultiscaleGridAnchorGenerator
from kdet.layers.ssd_anchor_generator import SSDAnchorGenerator

__all__ = [
    "AnchorGenerator",
    "FixedShapeResizer",
    "GridAnchorGenerator",
    "ImageResizer",
    "KeepAspectRatioResizer",
    "MultiClassNonMaxSuppression",
    "MultiscaleGridAnchorGenerator",
    "SSDAnchorGenerator",
]
