"""TF1 (TF-Slim name) mapping of kdet's Faster R-CNN NASNet-A extractor (`faster_rcnn_nas`):
what TF1 training and the TF1 zoo's `model.ckpt` name each weight.

The TF OD API's TF1 extractor builds slim's `build_nasnet_large` up to `Cell_11` under
`FirstStageFeatureExtractor/` and reduction cell 1 with cells 12–17 under
`SecondStageFeatureExtractor/`, with no `NASNet` scope of their own. kdet's body layers carry
slim's scopes with `/` written `_` (`kdet.feature_extractors.nasnet_body`):
`cell_3_comb_iter_0_left_separable_5x5_1` ← `cell_3/comb_iter_0/left/separable_5x5_1`
(`depthwise_weights`, `pointwise_weights`), `reduction_cell_1_prev_1x1` ←
`reduction_cell_1/prev_1x1` (`weights`), `conv0` ← `conv0`. slim's NASNet calls
`batch_norm(scope=...)` on its own, so a batch norm's variables sit right under its scope
(`cell_3/beginning_bn/gamma`, `conv0_bn/moving_mean`), not under a convolution's `BatchNorm/`.
"""

import re

import keras

from kdet.checkpoints.mappings.tf1_faster_rcnn import FIRST_STAGE_EXTRACTOR_SCOPE
from kdet.checkpoints.mappings.tf1_faster_rcnn import SECOND_STAGE_EXTRACTOR_SCOPE
from kdet.checkpoints.mappings.tf1_ssd_fpn import SlimBatchNormPair
from kdet.checkpoints.tfod_mapping import BACKBONE
from kdet.checkpoints.tfod_mapping import register_tf1_mapping
from kdet.checkpoints.tfod_mapping import slim_pairs
from kdet.checkpoints.tfod_mapping import slim_scope
from kdet.checkpoints.tfod_mapping import weighted_layers
from kdet.feature_extractors.faster_rcnn_nas_feature_extractor import FasterRCNNNASFeatureExtractor

# A cell layer: the cell's scope, the combination and side of an operation's layers, and the
# layer's own scope (nasnet_body's names for slim's).
_CELL_LAYER = re.compile(
    r"(cell_stem_\d+|reduction_cell_\d+|cell_\d+)_(?:(comb_iter_\d)_(left|right)_)?"
    r"(1x1|beginning_bn|prev_1x1|prev_bn|path[12]_conv|final_path_bn|bn_1"
    r"|separable_\dx\d_\d|bn_sep_\dx\d_\d)"
)
_STEM_LAYERS = ("conv0", "conv0_bn")


def nasnet_scope(layer_name):
    """The TF-Slim NASNet scope of a body layer (`cell_3_comb_iter_0_left_bn_sep_5x5_1` →
    `cell_3/comb_iter_0/left/bn_sep_5x5_1`, `conv0_bn` → `conv0_bn`), or None."""
    if layer_name in _STEM_LAYERS:
        return layer_name
    match = _CELL_LAYER.fullmatch(layer_name)
    return slim_scope(*match.groups()) if match else None


def nasnet_pairs(body, scope):
    """The `SlimLayerPair`s of a NASNet body (a `keras.Model` of `nasnet_body` layers) under
    `scope`: `SlimBatchNormPair`s for its batch norms."""
    return [
        SlimBatchNormPair(pair.layer, pair.path, pair.part)
        if isinstance(pair.layer, keras.layers.BatchNormalization)
        else pair
        for pair in slim_pairs(weighted_layers(body), scope, nasnet_scope, BACKBONE)
    ]


@register_tf1_mapping(FasterRCNNNASFeatureExtractor)
def _faster_rcnn_nas(extractor, scope):
    return nasnet_pairs(
        extractor.proposal_body, slim_scope(scope, FIRST_STAGE_EXTRACTOR_SCOPE)
    ) + nasnet_pairs(
        extractor.box_classifier_body, slim_scope(scope, SECOND_STAGE_EXTRACTOR_SCOPE)
    )
