"""MobileNetV2 FPN Faster R-CNN feature extractor: an FPNLite pyramid, two fc layers per RoI."""

import keras

from kdet.feature_extractors.faster_rcnn_fpn_feature_extractor import (
    FasterRCNNFPNFeatureExtractor,
)
from kdet.feature_extractors.mobilenet_v2_body import mobilenet_v2_body
from kdet.feature_extractors.registry import register_feature_extractor
from kdet.feature_extractors.ssd_mobilenet_v2_fpn_feature_extractor import LEVEL_ENDPOINTS


@register_feature_extractor("faster_rcnn_mobilenet_v2_fpn")
class FasterRCNNMobileNetV2FPNFeatureExtractor(FasterRCNNFPNFeatureExtractor):
    """MobileNetV2 with a light feature pyramid: a fast Faster R-CNN FPN body.

    Not in the TF OD API; the kdet counterpart of torchvision's
    `fasterrcnn_mobilenet_v3_large_320_fpn`. The body is the "same"-padded
    `keras.applications.MobileNetV2` of `kdet.feature_extractors.mobilenet_v2_body` (with its
    1280-channel `Conv_1`, so ImageNet weights and the body of the `ssd_mobilenet_v2_coco` zoo
    model restore in full); levels 2..5 read `block_2_add`, `block_5_add`, `block_12_add` and
    `out_relu`, the maps of the SSD MobileNetV2 FPN extractor. The defaults make an FPNLite
    pyramid: levels 3..6 (P3..P5 for the RoI crops, P6 for the RPN only), 128 channels,
    separable 3x3 convolutions. A 320x320 input gives maps of 40, 20, 10 and 5 pixels. For the
    three levels of torchvision's model (strides 16, 32, 64) pass `fpn_min_level=4`. The box
    classifier is two fully connected layers of 1024 units on the flattened 7x7 crops, see
    `FasterRCNNFPNFeatureExtractor`.

    Args:
        depth_multiplier: float. MobileNetV2 `alpha`; the pyramid depth is not scaled.
            Defaults to `1.0`.
        fpn_min_level: int. Finest pyramid level, one of 2..5. Defaults to `3`.
        fpn_max_level: int. Coarsest pyramid level; levels above 5 are stride-2 layers.
            Defaults to `6`.
        additional_layer_depth: int. Channels of every pyramid map. Defaults to `128`.
        use_depthwise: bool. Separable 3x3 convolutions in the pyramid (FPNLite) instead of
            plain ones. Defaults to `True`.
        batch_norm_trainable: bool. Train the batch norms in batch-statistics mode. Defaults
            to `False` (inference mode, the TF OD API default).
        first_stage_features_stride: int. 8 or 16, unused by the pyramid. Defaults to `16`.
        backbone_weights: `None` or `"imagenet"` (`keras.applications` weights, downloaded
            on first use). Defaults to `None`.
        **kwargs: `conv_hyperparams` and `override_base_feature_extractor_hyperparams` (see
            `FasterRCNNFPNFeatureExtractor`; with the override the body is set up as
            `kdet.feature_extractors.mobilenet_v2_body` describes) and `keras.layers.Layer`
            arguments.

    Example:
    ```python
    extractor = kdet.feature_extractors.build_feature_extractor("faster_rcnn_mobilenet_v2_fpn")
    maps = extractor.extract_proposal_features(extractor.preprocess(tf.zeros([1, 320, 320, 3])))
    [m.shape[1] for m in maps]  # [40, 20, 10, 5]
    extractor.extract_box_classifier_features(tf.zeros([5, 7, 7, 128]))  # [5, 1024]
    ```

    Reference:
        [Sandler et al., 2018](https://arxiv.org/abs/1801.04381);
        [Lin et al., 2017](https://arxiv.org/abs/1612.03144).
    """

    def __init__(
        self,
        depth_multiplier=1.0,
        fpn_min_level=3,
        fpn_max_level=6,
        additional_layer_depth=128,
        use_depthwise=True,
        batch_norm_trainable=False,
        first_stage_features_stride=16,
        backbone_weights=None,
        **kwargs,
    ):
        super().__init__(
            fpn_min_level,
            fpn_max_level,
            additional_layer_depth,
            batch_norm_trainable=batch_norm_trainable,
            first_stage_features_stride=first_stage_features_stride,
            backbone_weights=backbone_weights,
            **kwargs,
        )
        self.depth_multiplier = depth_multiplier
        self.use_depthwise = use_depthwise
        self.attach_body(
            mobilenet_v2_body(
                depth_multiplier, backbone_weights, hyperparams=self.body_hyperparams
            ),
            LEVEL_ENDPOINTS,
            use_depthwise=use_depthwise,
        )

    def preprocess(self, images):
        return (2.0 / 255.0) * keras.ops.cast(images, "float32") - 1.0

    def get_config(self):
        config = super().get_config()
        config.update(
            {"depth_multiplier": self.depth_multiplier, "use_depthwise": self.use_depthwise}
        )
        return config
