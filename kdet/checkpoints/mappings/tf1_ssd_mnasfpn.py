"""TF1 (TF-Slim name) mapping of kdet's SSD MobileNetV2 MnasFPN extractor
(`ssd_mobilenet_v2_mnasfpn`): what the TF1 zoo's
`ssd_mobilenet_v2_mnasfpn_shared_box_predictor_320x320_coco_sync` names each weight.

The body lives under `FeatureExtractor/MobilenetV2/`, named as in the TF1 SSD MobileNetV2
(`kdet.checkpoints.mappings.tf1_ssd.mobilenet_v2_scope`); the head under
`FeatureExtractor/MnasFPN/`: `C6_Conv1x1`, and per cell `i`, block `j`, input `k`
`cell_i/block_j/input_k/Conv1x1` (a `Conv2D` and its batch norm) and `cell_i/block_j/SepConv`
(a `SeparableConv2D`: `depthwise_weights`, `pointwise_weights`, and its batch norm).
"""

from kdet.checkpoints.mappings.tf1_ssd import MOBILENET_V2_SCOPE
from kdet.checkpoints.mappings.tf1_ssd import mobilenet_v2_scope
from kdet.checkpoints.tfod_mapping import BACKBONE
from kdet.checkpoints.tfod_mapping import EXTRACTOR
from kdet.checkpoints.tfod_mapping import SlimLayerPair
from kdet.checkpoints.tfod_mapping import register_tf1_mapping
from kdet.checkpoints.tfod_mapping import slim_pairs
from kdet.checkpoints.tfod_mapping import slim_scope
from kdet.checkpoints.tfod_mapping import weighted_layers
from kdet.feature_extractors.ssd_mobilenet_v2_mnasfpn_feature_extractor import (
    SSDMobileNetV2MnasFPNFeatureExtractor,
)

# Slim scope of the MnasFPN head (`SSDMobileNetV2MnasFPNFeatureExtractor.extract_features`).
MNASFPN_SCOPE = "MnasFPN"


def mnasfpn_scopes(head):
    """`[(layer owning weights, slim scope within MnasFPN/)]` of a built `MnasFPN`."""
    scoped = [(layer, "C6_Conv1x1") for layer in weighted_layers_of(head.c6_conv)]
    for cell_index, blocks in enumerate(head.blocks):
        for block_index, block in enumerate(blocks):
            block_scope = f"cell_{cell_index}/block_{block_index}"
            for input_index, resample in enumerate(block.resamples):
                scoped += [
                    (layer, f"{block_scope}/input_{input_index}/Conv1x1")
                    for layer in weighted_layers_of(resample.conv)
                ]
            scoped += [
                (layer, f"{block_scope}/SepConv")
                for layer in (block.separable_conv, block.batch_norm)
                if layer is not None
            ]
    return scoped


def weighted_layers_of(conv_batch_norm):
    """The convolution and batch norm (if any) of a `kdet.layers.ConvBatchNorm`."""
    return [layer for layer in (conv_batch_norm.conv, conv_batch_norm.batch_norm) if layer]


@register_tf1_mapping(SSDMobileNetV2MnasFPNFeatureExtractor)
def _ssd_mobilenet_v2_mnasfpn(extractor, scope):
    body = slim_pairs(
        weighted_layers(extractor.body), slim_scope(scope, MOBILENET_V2_SCOPE),
        mobilenet_v2_scope, BACKBONE,
    )
    head_scope = slim_scope(scope, MNASFPN_SCOPE)
    return body + [
        SlimLayerPair(layer, slim_scope(head_scope, name), EXTRACTOR)
        for layer, name in mnasfpn_scopes(extractor.mnasfpn)
    ]
