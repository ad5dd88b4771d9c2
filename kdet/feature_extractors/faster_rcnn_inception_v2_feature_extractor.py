"""Inception v2 Faster R-CNN feature extractor: up to Mixed_4e → RPN, Mixed_5a–5c → RoIs."""

import keras

from kdet.feature_extractors.faster_rcnn_split_body_feature_extractor import (
    FasterRCNNSplitBodyFeatureExtractor,
)
from kdet.feature_extractors.inception_body import inception_body
from kdet.feature_extractors.registry import register_feature_extractor
from kdet.feature_extractors.ssd_inception_feature_extractor import check_no_imagenet_weights
from kdet.layers.conv_hyperparams import ConvHyperparams

# The layer settings the TF OD API gives the body (`_batch_norm_arg_scope` of
# faster_rcnn_inception_v2_feature_extractor.py: batch norm decay 0.9997, epsilon 0.001, with
# scale; slim's defaults otherwise: Xavier-uniform kernels, ReLU, no regularizer).
BODY_HYPERPARAMS = ConvHyperparams(
    kernel_initializer="glorot_uniform",
    activation="relu",
    batch_norm={"momentum": 0.9997, "epsilon": 1e-3, "center": True, "scale": True},
)


@register_feature_extractor("faster_rcnn_inception_v2")
class FasterRCNNInceptionV2FeatureExtractor(FasterRCNNSplitBodyFeatureExtractor):
    """Slim's Inception v2 cut after `Mixed_4e`: the TF OD API's Faster R-CNN Inception v2.

    Proposal features are `Mixed_4e` (stride 16, 576 channels at depth multiplier 1); the box
    classifier runs `Mixed_5a` (stride 2) to `Mixed_5c` on the RoI crops: `[num_rois, 7, 7,
    576]` → `[num_rois, 4, 4, 1024]`, which the meta-architecture then average-pools. The body
    is `kdet.feature_extractors.inception_body`'s (slim's layout and scope names, its first
    convolution the separable 7x7) with `BODY_HYPERPARAMS`, as the TF OD API's TF1
    `FasterRCNNInceptionV2FeatureExtractor` builds it; depths are
    `max(int(depth * depth_multiplier), min_depth)`.

    Args:
        depth_multiplier: float. Width multiplier of the body (a TF OD API constructor
            argument that configs do not set). Defaults to `1.0`.
        min_depth: int. Lower bound on every convolution's depth. Defaults to `16`.
        batch_norm_trainable: bool. Train the batch norms in batch-statistics mode. Defaults
            to `False` (inference mode, the TF OD API default).
        first_stage_features_stride: int. Must be 16. Defaults to `16`.
        backbone_weights: `None` (see `SSDInceptionFeatureExtractor`). Defaults to `None`.
        **kwargs: passed to `keras.layers.Layer`.

    Example:
    ```python
    extractor = kdet.feature_extractors.FasterRCNNInceptionV2FeatureExtractor(
        depth_multiplier=0.25)
    features = extractor.extract_proposal_features(
        extractor.preprocess(tf.zeros([1, 128, 128, 3]))
    )  # [1, 8, 8, 144]
    extractor.extract_box_classifier_features(tf.zeros([5, 7, 7, 144]))  # [5, 4, 4, 256]
    ```

    Reference:
        [Ioffe & Szegedy, 2015](https://arxiv.org/abs/1502.03167); TF OD API
        `object_detection/models/faster_rcnn_inception_v2_feature_extractor.py`.
    """

    def __init__(
        self,
        depth_multiplier=1.0,
        min_depth=16,
        batch_norm_trainable=False,
        first_stage_features_stride=16,
        backbone_weights=None,
        **kwargs,
    ):
        check_no_imagenet_weights(type(self).__name__, backbone_weights)
        super().__init__(
            batch_norm_trainable=batch_norm_trainable,
            first_stage_features_stride=first_stage_features_stride,
            backbone_weights=backbone_weights,
            **kwargs,
        )
        self.depth_multiplier = depth_multiplier
        self.min_depth = min_depth
        self.split_body(
            inception_body(
                "InceptionV2", "Mixed_5c", BODY_HYPERPARAMS, depth_multiplier, min_depth
            ),
            "Mixed_4e",
        )

    def preprocess(self, images):
        return (2.0 / 255.0) * keras.ops.cast(images, "float32") - 1.0

    def get_config(self):
        config = super().get_config()
        config.update({"depth_multiplier": self.depth_multiplier, "min_depth": self.min_depth})
        return config
