"""Detection layers: resizers, anchor generators, NMS, RPN proposals, RoI cropping, batch norm."""

from kdet.layers.anchor_generator import AnchorGenerator
from kdet.layers.conv_hyperparams import ConvHyperparams
from kdet.layers.crop_and_resize_roi_pooler import CropAndResizeRoIPooler
from kdet.layers.fixed_shape_resizer import FixedShapeResizer
from kdet.layers.fused_batch_normalization import FusedBatchNormalization
from kdet.layers.fused_batch_normalization import clone_with_fused_batch_norm
from kdet.layers.grid_anchor_generator import GridAnchorGenerator
from kdet.layers.image_resizer import ImageResizer
from kdet.layers.keep_aspect_ratio_resizer import KeepAspectRatioResizer
from kdet.layers.multi_class_non_max_suppression import MultiClassNonMaxSuppression
from kdet.layers.multi_level_roi_align import MultiLevelRoIAlign
from kdet.layers.multiscale_grid_anchor_generator import MultiscaleGridAnchorGenerator
from kdet.layers.proposal_generator import ProposalGenerator
from kdet.layers.ssd_anchor_generator import SSDAnchorGenerator

__all__ = [
    "AnchorGenerator",
    "ConvHyperparams",
    "CropAndResizeRoIPooler",
    "FixedShapeResizer",
    "FusedBatchNormalization",
    "GridAnchorGenerator",
    "ImageResizer",
    "KeepAspectRatioResizer",
    "MultiClassNonMaxSuppression",
    "MultiLevelRoIAlign",
    "MultiscaleGridAnchorGenerator",
    "ProposalGenerator",
    "SSDAnchorGenerator",
    "clone_with_fused_batch_norm",
]
