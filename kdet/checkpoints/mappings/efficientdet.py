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
"""

from kdet.checkpoints.tfod_mapping import BACKBONE
from kdet.checkpoints.tfod_mapping import EXTRACTOR
from kdet.checkpoints.tfod_mapping import paired
from kdet.checkpoints.tfod_mapping import register_tf2_mapping
from kdet.checkpoints.tfod_mapping import weighted_layers
from kdet.feature_extractors.ssd_efficientnet_bifpn_feature_extractor import (
    SSDEfficientNetBiFPNFeatureExtractor,
)


@register_tf2_mapping(SSDEfficientNetBiFPNFeatureExtractor)
def _ssd_efficientnet_bifpn(extractor, prefix, shapes):
    pairs = paired(
        weighted_layers(extractor.body), shapes, f"{prefix}/_efficientnet", BACKBONE
    )
    return pairs + bifpn_pairs(extractor.bifpn, shapes, f"{prefix}/_bifpn_stage")


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
