"""MobileNetV2 Faster R-CNN feature extractor: block 13's expansion → RPN, the rest → RoIs."""

import keras

from kdet.feature_extractors.faster_rcnn_split_body_feature_extractor import (
    FasterRCNNSplitBodyFeatureExtractor,
)
from kdet.feature_extractors.mobilenet_v2_body import mobilenet_v2_body
from kdet.feature_extractors.registry import register_feature_extractor


@register_feature_extractor("faster_rcnn_mobilenet_v2")
class FasterRCNNMobileNetV2FeatureExtractor(FasterRCNNSplitBodyFeatureExtractor):
    """MobileNetV2 cut at stride 16: a small Faster R-CNN body for CPU-sized experiments.

    Not in the TF OD API; it applies the ResNet split to MobileNetV2. Proposal features are
    `block_13_expand_relu` (stride 16, 576 channels at depth multiplier 1) — the map the SSD
    MobileNetV2 extractor reads first, so the COCO-trained body of the `ssd_mobilenet_v2_coco`
    zoo model restores by layer name into both stages. The box classifier runs the rest of the
    body, `block_13_depthwise` (stride 2) to `out_relu`, on the RoI crops:
    `[num_rois, 7, 7, 576]` → `[num_rois, 4, 4, 1280]`; the meta-architecture then
    average-pools. The body is the "same"-padded `keras.applications.MobileNetV2` of
    `kdet.feature_extractors.mobilenet_v2_body`.

    Args:
        depth_multiplier: float. MobileNetV2 `alpha`. Defaults to `1.0`.
        batch_norm_trainable: bool. Train the batch norms in batch-statistics mode. Defaults
            to `False` (inference mode, the TF OD API default).
        first_stage_features_stride: int. Must be 16. Defaults to `16`.
        backbone_weights: `None` or `"imagenet"` (`keras.applications` weights, downloaded
            on first use). Defaults to `None`.
        **kwargs: passed to `keras.layers.Layer`.

    Example:
    ```python
    extractor = kdet.feature_extractors.build_feature_extractor("faster_rcnn_mobilenet_v2")
    features = extractor.extract_proposal_features(
        extractor.preprocess(tf.zeros([1, 128, 128, 3]))
    )  # [1, 8, 8, 576]
    extractor.extract_box_classifier_features(tf.zeros([5, 7, 7, 576]))  # [5, 4, 4, 1280]
    ssd = kdet.zoo.load("ssd_mobilenet_v2_coco")
    extractor.restore_from_classification_checkpoint(ssd.feature_extractor.body)
    ```

    Reference:
        [Sandler et al., 2018](https://arxiv.org/abs/1801.04381).
    """

    def __init__(
        self,
        depth_multiplier=1.0,
        batch_norm_trainable=False,
        first_stage_features_stride=16,
        backbone_weights=None,
        **kwargs,
    ):
        super().__init__(
            batch_norm_trainable=batch_norm_trainable,
            first_stage_features_stride=first_stage_features_stride,
            backbone_weights=backbone_weights,
            **kwargs,
        )
        self.depth_multiplier = depth_multiplier
        self.split_body(
            mobilenet_v2_body(depth_multiplier, backbone_weights), "block_13_expand_relu"
        )

    def preprocess(self, images):
        return (2.0 / 255.0) * keras.ops.cast(images, "float32") - 1.0

    def get_config(self):
        config = super().get_config()
        config["depth_multiplier"] = self.depth_multiplier
        return config
