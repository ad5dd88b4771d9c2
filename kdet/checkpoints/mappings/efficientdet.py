"""TF2 checkpoint mapping of kdet's EfficientDet extractors (`ssd_efficientnet-b0_bifpn_keras`
… `b7`); their weight-shared box predictor maps as in `ssd_fpn.py`.

The TF OD API's `SSDEfficientNetBiFPNKerasFeatureExtractor` keeps its EfficientNet twice: the
whole classification model as `classification_backbone` and the model up to the level maps as
`_efficientnet`. A checkpoint names each variable once, by the first of those paths: the body's
layers are `_efficientnet/layer_with_weights-N` (the order of kdet's body), and only the top
convolution, its batch norm and the ImageNet classifier, which detection never reads, are left
under `classification_backbone/` (`TFODRestore.unused` lists them).

Its `KerasBiFpnFeatureMaps` (`_bifpn_stage`) keeps, per node `i` in the order of
`kdet.feature_extractors.bifpn.bifpn_nodes`, the layers of each input `j` in
`node_input_blocks/i/j/1/k` (the 1x1 convolution and batch norm of a body map), the fusion
weights in `node_combine_op/i` and `node_post_combine_block/i/k` (activation, separable
convolution, batch norm).

A TF2 classification checkpoint (`fine_tune_checkpoint_type: "classification"`, the one the
EfficientDet configs name) is `tf.train.Checkpoint(feature_extractor=<the whole Keras
EfficientNet classification model>)`, which `model_lib_v2` restores into the extractor's
`classification_backbone`: every layer, but detection computes only with the first ones (up to
level 5's `stack_6/block_0`), kdet's body. kdet reads those and reports the rest unused: the
top convolution, its batch norm and the classifier, and from B1 up the last stage's further
blocks (`efficientnet_classification_layers` counts the whole model).
"""

import math

from keras.src.applications.efficientnet import DEFAULT_BLOCKS_ARGS

from kdet.checkpoints.tfod_mapping import BACKBONE
from kdet.checkpoints.tfod_mapping import EXTRACTOR
from kdet.checkpoints.tfod_mapping import body_layers
from kdet.checkpoints.tfod_mapping import paired
from kdet.checkpoints.tfod_mapping import register_tf2_classification_backbone
from kdet.checkpoints.tfod_mapping import register_tf2_mapping
from kdet.checkpoints.tfod_mapping import weighted_layers
from kdet.feature_extractors.ssd_efficientnet_bifpn_feature_extractor import EFFICIENTNETS
from kdet.feature_extractors.ssd_efficientnet_bifpn_feature_extractor import (
    SSDEfficientNetBiFPNFeatureExtractor,
)


@register_tf2_mapping(SSDEfficientNetBiFPNFeatureExtractor)
def _ssd_efficientnet_bifpn(extractor, prefix, shapes):
    pairs = paired(
        weighted_layers(extractor.body), shapes, f"{prefix}/_efficientnet", BACKBONE
    )
    return pairs + bifpn_pairs(extractor.bifpn, shapes, f"{prefix}/_bifpn_stage")


def efficientnet_classification_layers(extractor):
    """The number of layers with weights of the whole EfficientNet classification model of the
    extractor's version (the TF OD API's `efficientnet_model.EfficientNet`, as `keras.
    applications` builds it with its top): the stem convolution and batch norm; per block an
    expansion convolution and batch norm (but with expansion ratio 1), the depthwise
    convolution and batch norm, the squeeze-and-excitation reduce and expand convolutions and
    the projection and its batch norm; the top convolution, its batch norm and the classifier.
    131 for B0, 185 for B1 (counted on the TF OD API's models)."""
    _, depth_coefficient, _ = EFFICIENTNETS[extractor.efficientnet_version]
    count = 2 + 3
    for block in DEFAULT_BLOCKS_ARGS:
        per_block = 4 + 2 * (block["expand_ratio"] != 1) + 2 * (0 < block["se_ratio"] <= 1)
        count += per_block * math.ceil(depth_coefficient * block["repeats"])
    return count


register_tf2_classification_backbone(
    SSDEfficientNetBiFPNFeatureExtractor, checkpoint_layers=efficientnet_classification_layers
)(body_layers)


def bifpn_pairs(bifpn, shapes, prefix):
    """A `kdet.feature_extractors.BiFPN` beside the TF OD API's `KerasBiFpnFeatureMaps` under
    `prefix`."""
    pairs = []
    for index, (blocks, fusion, post) in enumerate(
        zip(bifpn.input_blocks, bifpn.fusions, bifpn.post_fusion_blocks)
    ):
        for position, block in enumerate(blocks):
            pairs += paired(
                weighted_layers(block),
                shapes,
                f"{prefix}/node_input_blocks/{index}/{position}/1",
                EXTRACTOR,
            )
        if fusion is not None:
            pairs += paired(
                weighted_layers(fusion), shapes, f"{prefix}/node_combine_op/{index}", EXTRACTOR
            )
            pairs += paired(
                weighted_layers(post),
                shapes,
                f"{prefix}/node_post_combine_block/{index}",
                EXTRACTOR,
            )
    return pairs
