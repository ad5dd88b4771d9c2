"""The Faster R-CNN extractors of the TF OD API reference models: ResNets 0.0625 wide.

The TF OD API's Faster R-CNN `feature_extractor` message has no width field; the reference
generator (`tools/tfod_reference`) made its ResNet bodies 0.0625 wide through the TF OD API's
Python builders. A config whose `type` is `reference_faster_rcnn_resnet50_keras` (with this
module imported: `kdet … --import tfod_reference_extractors`) describes the
`faster_rcnn_resnet50` reference's model: its pipeline.config with that one field changed.
"""

from kdet.feature_extractors import register_feature_extractor
from kdet.feature_extractors.faster_rcnn_resnet_feature_extractor import (
    FasterRCNNResNet50FeatureExtractor,
)

# The width the reference generator gave the TF OD API's ResNet bodies.
RESNET_DEPTH_MULTIPLIER = 0.0625


@register_feature_extractor("reference_faster_rcnn_resnet50")
class ReferenceFasterRCNNResNet50(FasterRCNNResNet50FeatureExtractor):
    """`faster_rcnn_resnet50` at the references' width."""

    def __init__(self, depth_multiplier=RESNET_DEPTH_MULTIPLIER, **kwargs):
        super().__init__(depth_multiplier=depth_multiplier, **kwargs)
