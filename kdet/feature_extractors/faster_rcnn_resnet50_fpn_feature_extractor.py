"""ResNet V1 FPN Faster R-CNN feature extractors (ResNet50, 101, 152): pyramid levels 2..6,
two fc layers per RoI."""

from kdet.feature_extractors.faster_rcnn_fpn_feature_extractor import FasterRCNNFPNFeatureExtractor
from kdet.feature_extractors.kernel_regularization import clone_body
from kdet.feature_extractors.registry import register_feature_extractor
from kdet.feature_extractors.resnet_v1_body import RESNETS
from kdet.feature_extractors.resnet_v1_body import ResNetBodyOptions
from kdet.feature_extractors.resnet_v1_body import resnet_v1_body
from kdet.feature_extractors.resnet_v1_body import restore_keras_resnet
from kdet.feature_extractors.resnet_v1_body import tf_od_api_resnet_hyperparams
from kdet.feature_extractors.ssd_resnet50_v1_fpn_feature_extractor import RESNET_LEVEL_ENDPOINTS


class FasterRCNNResNetFPNFeatureExtractor(ResNetBodyOptions, FasterRCNNFPNFeatureExtractor):
    """ResNet V1 with a feature pyramid (TF OD API `faster_rcnn_resnet{50,101,152}_fpn_keras`).

    Subclasses set `depth` (50, 101 or 152). The body is the TF OD API's TF2 ResNet V1 of that
    depth (`kdet.feature_extractors.resnet_v1_body`: no convolution biases, "SAME" first
    max-pool, its batch norms, `depth_multiplier`), or `keras.applications.ResNet{depth}` as
    it is with `tf_od_api_body=False` (extractors saved before 2026-12); levels 2..5 read the
    outputs of its stages 2..5 (C2..C5: `conv2_block3_out`, `conv3_block4_out`,
    `conv4_block6_out` and `conv5_block3_out` in ResNet50, `conv4_block23_out` in ResNet101,
    `conv3_block8_out` and `conv4_block36_out` in ResNet152; the TF OD API's
    `_RESNET_MODEL_OUTPUT_LAYERS`, `kdet.feature_extractors.ssd_resnet50_v1_fpn_feature_extractor.
    RESNET_LEVEL_ENDPOINTS`). A plain (not
    separable) `kdet.feature_extractors.FeaturePyramid` turns levels `fpn_min_level..5` into
    pyramid maps of `additional_layer_depth` channels and adds stride-2 layers up to
    `fpn_max_level`; with the defaults P2..P5 feed the RPN and the RoI crops, P6 the RPN only
    (as in FPN and torchvision). A 128x128 input gives maps of 32, 16, 8, 4 and 2 pixels. The
    box classifier is two fully connected layers of 1024 units on the flattened 7x7 crops, see
    `FasterRCNNFPNFeatureExtractor`.

    `preprocess` subtracts the ImageNet channel means in RGB order (the TF OD API resnet_v1
    rule); the `keras.applications` ImageNet weights expect BGR, see
    `FasterRCNNResNet50FeatureExtractor`. TF2 checkpoints of the TF OD API's
    `FasterRCNNResnet{50,101,152}FpnKerasFeatureExtractor` load (`kdet.checkpoints`).

    Args:
        fpn_min_level: int. Finest pyramid level, one of 2..5. Defaults to `2`.
        fpn_max_level: int. Coarsest pyramid level; levels above 5 are stride-2 layers.
            Defaults to `6`.
        additional_layer_depth: int. Channels of every pyramid map. Defaults to `256`.
        batch_norm_trainable: bool. Train the batch norms in batch-statistics mode. Defaults
            to `False` (inference mode, the TF OD API default).
        first_stage_features_stride: int. 8 or 16, unused by the pyramid. Defaults to `16`.
        backbone_weights: `None` or `"imagenet"` (`keras.applications` weights, downloaded
            on first use; into the TF OD API body only at `depth_multiplier` 1, their
            convolution biases folded into the batch norms). Defaults to `None`.
        depth_multiplier: float. Width multiplier of the TF OD API body. Defaults to `1.0`.
        min_depth: int. The fewest filters of a convolution of the TF OD API body. Defaults
            to `8`.
        tf_od_api_body: bool. The TF OD API's body; `False`: `keras.applications`'.
            Defaults to `True`.
        **kwargs: `conv_hyperparams` and `override_base_feature_extractor_hyperparams` (see
            `FasterRCNNFPNFeatureExtractor`; with the override every kernel, batch norm and
            ReLU of the body is set up by `conv_hyperparams`, as the TF OD API's
            `keras_models/resnet_v1.py` does) and `keras.layers.Layer` arguments.

    Example:
    ```python
    extractor = kdet.feature_extractors.build_feature_extractor("faster_rcnn_resnet50_fpn")
    maps = extractor.extract_proposal_features(extractor.preprocess(tf.zeros([1, 128, 128, 3])))
    [m.shape[1] for m in maps]  # [32, 16, 8, 4, 2]
    extractor.extract_box_classifier_features(tf.zeros([5, 7, 7, 256]))  # [5, 1024]
    ```

    Reference:
        [Lin et al., 2017](https://arxiv.org/abs/1612.03144); TF OD API
        `object_detection/models/faster_rcnn_resnet_v1_fpn_keras_feature_extractor.py`.
    """

    depth = None

    def __init__(
        self,
        fpn_min_level=2,
        fpn_max_level=6,
        additional_layer_depth=256,
        batch_norm_trainable=False,
        first_stage_features_stride=16,
        backbone_weights=None,
        depth_multiplier=1.0,
        min_depth=8,
        tf_od_api_body=True,
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
        self.min_depth = min_depth
        self.tf_od_api_body = bool(tf_od_api_body)
        if self.tf_od_api_body:
            # Without the override: the TF OD API's own ResNet settings, its default weight
            # decay included (this extractor of the TF OD API passes none).
            resnet = resnet_v1_body(
                self.depth,
                depth_multiplier,
                min_depth,
                hyperparams=self.body_hyperparams or tf_od_api_resnet_hyperparams(1e-4),
                weights=backbone_weights,
            )
        else:
            if depth_multiplier != 1.0:
                raise ValueError(
                    f"depth_multiplier is {depth_multiplier}, but the keras.applications body "
                    "(tf_od_api_body=False) has none: use tf_od_api_body=True"
                )
            resnet = clone_body(
                RESNETS[self.depth](
                    input_shape=(None, None, 3), include_top=False, weights=backbone_weights
                ),
                hyperparams=self.body_hyperparams,
                keep_weights=backbone_weights is not None,
            )
        self.attach_body(resnet, RESNET_LEVEL_ENDPOINTS[self.depth])

    def restore_from_classification_checkpoint(self, source):
        """Copies weights from a classification model into the body's layers of the same
        name (a `keras.applications` ResNet's convolution biases folded into the batch
        norms of the TF OD API body, `kdet.feature_extractors.resnet_v1_body.
        copy_folding_conv_biases`)."""
        if not self.tf_od_api_body:
            return super().restore_from_classification_checkpoint(source)
        return restore_keras_resnet(source, [self.body])


@register_feature_extractor("faster_rcnn_resnet50_fpn")
class FasterRCNNResNet50FPNFeatureExtractor(FasterRCNNResNetFPNFeatureExtractor):
    """ResNet50 V1 FPN Faster R-CNN: TF OD API `faster_rcnn_resnet50_fpn_keras`. See
    `FasterRCNNResNetFPNFeatureExtractor`."""

    depth = 50


@register_feature_extractor("faster_rcnn_resnet101_fpn")
class FasterRCNNResNet101FPNFeatureExtractor(FasterRCNNResNetFPNFeatureExtractor):
    """ResNet101 V1 FPN Faster R-CNN: TF OD API `faster_rcnn_resnet101_fpn_keras`. See
    `FasterRCNNResNetFPNFeatureExtractor`."""

    depth = 101


@register_feature_extractor("faster_rcnn_resnet152_fpn")
class FasterRCNNResNet152FPNFeatureExtractor(FasterRCNNResNetFPNFeatureExtractor):
    """ResNet152 V1 FPN Faster R-CNN: TF OD API `faster_rcnn_resnet152_fpn_keras`. See
    `FasterRCNNResNetFPNFeatureExtractor`."""

    depth = 152
